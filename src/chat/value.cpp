#include "chat/value.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "chat/py_text.hpp"

namespace mii::detail::jinja {

void raise(std::string message) { throw eval_failure{std::move(message)}; }

std::string cat(std::initializer_list<std::string_view> parts) {
  std::size_t n = 0;
  for (auto p : parts) n += p.size();
  std::string out;
  out.reserve(n);
  for (auto p : parts) out += p;
  return out;
}

namespace {
thread_local int value_depth = 0;  // one render runs on one thread
}  // namespace

value_depth_guard::value_depth_guard() {
  if (++value_depth > max_value_depth) {
    --value_depth;
    raise("maximum recursion depth exceeded: a value nests deeper than " + std::to_string(max_value_depth) + " levels");
  }
}
value_depth_guard::~value_depth_guard() { --value_depth; }

value value::missing(std::string name) {
  auto info = std::make_shared<undefined_info>();
  info->name = py_repr_string(name);
  return undefined(std::move(info));
}

value value::list(std::vector<value> items) {
  auto l = std::make_shared<list_data>();
  l->items = std::move(items);
  return value(std::move(l));
}

value value::tuple(std::vector<value> items) {
  auto l = std::make_shared<list_data>();
  l->items = std::move(items);
  l->tuple = true;
  return value(std::move(l));
}

value value::empty_dict() { return value(std::make_shared<dict_data>()); }

value make_generator(std::function<std::vector<value>()> produce, std::string_view name) {
  value v = make_iterator({}, "generator", name);
  v.items().produce = std::move(produce);
  return v;
}

value make_iterator(std::vector<value> items, std::string_view type, std::string_view name) {
  value v = value::list(std::move(items));
  v.items().view = list_view::iterator;
  v.items().iterator_type = type;
  v.items().iterator_name = name;
  return v;
}

kind value::type() const {
  switch (data_.index()) {
    case 0: return kind::undefined;
    case 1: return kind::none;
    case 2: return kind::boolean;
    case 3: return kind::integer;
    case 4: return kind::floating;
    case 5: return kind::string;
    case 6: return std::get<list_ptr>(data_)->tuple ? kind::tuple : kind::list;
    case 7: return kind::dict;
    case 8: return kind::namespace_;
    case 9: return kind::callable;
    default: return kind::loop;
  }
}

double value::as_float() const {
  if (is_float()) return std::get<double>(data_);
  return static_cast<double>(as_int());
}

const void* value::identity() const {
  switch (data_.index()) {
    case 5: return std::get<string_ptr>(data_).get();
    case 6: return std::get<list_ptr>(data_).get();
    case 7: return std::get<dict_ptr>(data_).get();
    case 8: return std::get<namespace_data*>(data_);
    case 9: return std::get<callable_ptr>(data_).get();
    case 10: return std::get<std::shared_ptr<loop_state>>(data_).get();
    default: return nullptr;
  }
}

const value* dict_data::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k.is_string() && k.str() == key) return &v;
  return nullptr;
}

const value* dict_data::find(const value& key) const {
  if (key.is_string()) return find(std::string_view(key.str()));
  for (const auto& [k, v] : entries)
    if (py_equal(k, key)) return &v;
  return nullptr;
}

void dict_data::set(value key, value v) {
  for (auto& [k, old] : entries) {
    if (py_equal(k, key)) {
      old = std::move(v);
      return;
    }
  }
  if (entries.size() >= max_list_items) raise("dict has more than the limit of " + std::to_string(max_list_items) + " items");
  entries.emplace_back(std::move(key), std::move(v));
}

const value* call_args::keyword(std::string_view name) const {
  for (const auto& [k, v] : keywords)
    if (k == name) return &v;
  return nullptr;
}

bool truthy(const value& v) {
  switch (v.type()) {
    case kind::undefined:
    case kind::none: return false;
    case kind::boolean: return v.as_bool();
    case kind::integer: return v.as_int() != 0;
    case kind::floating: return v.as_float() != 0.0;
    case kind::string: return !v.str().empty();
    case kind::list:
      return v.items().view == list_view::iterator || !v.items().items.empty();
    case kind::tuple: return !v.items().items.empty();
    case kind::dict: return !v.dict().entries.empty();
    case kind::loop: return !v.loop_data().items.empty();
    default: return true;
  }
}

std::string type_name(const value& v) {
  switch (v.type()) {
    case kind::undefined: return "Undefined";
    case kind::none: return "NoneType";
    case kind::boolean: return "bool";
    case kind::integer: return "int";
    case kind::floating: return "float";
    case kind::string: return "str";
    case kind::list:
      switch (v.items().view) {
        case list_view::dict_keys: return "dict_keys";
        case list_view::dict_values: return "dict_values";
        case list_view::dict_items: return "dict_items";
        case list_view::range: return "range";
        case list_view::iterator: return std::string(v.items().iterator_type);
        default: return "list";
      }
    case kind::tuple: return "tuple";
    case kind::dict: return "dict";
    case kind::namespace_: return "Namespace";
    case kind::callable: return "function";
    case kind::loop: return "LoopContext";
  }
  return "object";
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view s(buf, static_cast<std::size_t>(r.ptr - buf));
  std::string out;
  if (s.front() == '-') {
    out.push_back('-');
    s.remove_prefix(1);
  }
  const std::size_t e = s.find('e');
  std::string digits;
  for (char c : s.substr(0, e))
    if (c != '.') digits.push_back(c);
  int exp = 0;
  std::string_view exp_text = s.substr(e + 1);
  if (!exp_text.empty() && exp_text.front() == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp);
  // Python's repr switches to exponent notation outside 1e-5 <= |d| < 1e16.
  if (exp < -4 || exp >= 16) {
    out.push_back(digits[0]);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1);
    }
    out.push_back('e');
    out.push_back(exp < 0 ? '-' : '+');
    const int a = exp < 0 ? -exp : exp;
    if (a < 10) out.push_back('0');
    out += std::to_string(a);
  } else if (exp < 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-exp - 1), '0');
    out += digits;
  } else {
    const std::size_t int_len = static_cast<std::size_t>(exp) + 1;
    if (digits.size() <= int_len) {
      out += digits;
      out.append(int_len - digits.size(), '0');
      out += ".0";
    } else {
      out.append(digits, 0, int_len);
      out.push_back('.');
      out.append(digits, int_len);
    }
  }
  return out;
}

namespace {

// repr() of containers, with Python's guard against printing a namespace inside itself.
class repr_writer {
 public:
  std::string out;

  void write(const value& v) {
    value_depth_guard depth;
    check();
    switch (v.type()) {
      case kind::string: out += py_repr_string(v.str()); break;
      case kind::undefined: out += "Undefined"; break;
      case kind::list:
      case kind::tuple: write_list(v.items()); break;
      case kind::dict: write_dict(v.dict()); break;
      case kind::namespace_: {
        namespace_data& ns = v.ns_data();
        out += "<Namespace ";
        if (!active_.insert(&ns).second) {
          out += "{...}";
        } else {
          write_dict(ns.attrs);
          active_.erase(&ns);
        }
        out += ">";
        break;
      }
      default: out += py_str(v);
    }
  }

 private:
  void check() const {
    if (out.size() > max_string_bytes)
      raise("printing a value makes more than the limit of " + std::to_string(max_string_bytes) + " bytes");
  }

  void write_list(const list_data& l) {
    switch (l.view) {
      case list_view::iterator:
        // Python shows an address here, which no two runs share.
        out += cat({"<", l.iterator_type, " object", l.iterator_name.empty() ? "" : " ", l.iterator_name, ">"});
        return;
      case list_view::range:
        out += "range(" + std::to_string(l.range_start) + ", " + std::to_string(l.range_stop);
        if (l.range_step != 1) out += ", " + std::to_string(l.range_step);
        out += ")";
        return;
      case list_view::dict_keys: out += "dict_keys("; break;
      case list_view::dict_values: out += "dict_values("; break;
      case list_view::dict_items: out += "dict_items("; break;
      default: break;
    }
    out += l.tuple ? "(" : "[";
    for (std::size_t i = 0; i < l.items.size(); ++i) {
      if (i) out += ", ";
      write(l.items[i]);
    }
    if (l.tuple && l.items.size() == 1) out += ",";
    out += l.tuple ? ")" : "]";
    if (l.view != list_view::plain) out += ")";
  }

  void write_dict(const dict_data& d) {
    out += "{";
    for (std::size_t i = 0; i < d.entries.size(); ++i) {
      if (i) out += ", ";
      write(d.entries[i].first);
      out += ": ";
      write(d.entries[i].second);
    }
    out += "}";
  }

  std::unordered_set<const namespace_data*> active_;
};

}  // namespace

std::string py_repr(const value& v) {
  repr_writer w;
  w.write(v);
  return std::move(w.out);
}

std::string py_str(const value& v) {
  switch (v.type()) {
    case kind::undefined: return "";
    case kind::none: return "None";
    case kind::boolean: return v.as_bool() ? "True" : "False";
    case kind::integer: return std::to_string(v.as_int());
    case kind::floating: return py_float_repr(v.as_float());
    case kind::string: return v.str();
    case kind::callable: return v.fn().repr();
    case kind::loop: {
      const loop_state& l = v.loop_data();
      return "<LoopContext " + std::to_string(l.index0 + 1) + "/" + std::to_string(l.items.size()) + ">";
    }
    default: return py_repr(v);
  }
}

namespace {

bool int_equals_float(std::int64_t i, double f) {
  if (!std::isfinite(f) || f != std::floor(f)) return false;
  if (f < -9223372036854775808.0 || f >= 9223372036854775808.0) return false;
  return static_cast<std::int64_t>(f) == i;
}

bool sequence_equal(const list_data& a, const list_data& b) {
  if (a.tuple != b.tuple || a.items.size() != b.items.size()) return false;
  for (std::size_t i = 0; i < a.items.size(); ++i)
    if (!py_equal(a.items[i], b.items[i])) return false;
  return true;
}

}  // namespace

bool py_equal(const value& a, const value& b) {
  value_depth_guard depth;
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    if (a.is_float() && b.is_float()) return a.as_float() == b.as_float();
    return a.is_float() ? int_equals_float(b.as_int(), a.as_float()) : int_equals_float(a.as_int(), b.as_float());
  }
  const kind ka = a.type(), kb = b.type();
  if (ka != kb) return false;
  switch (ka) {
    case kind::undefined:
    case kind::none: return true;
    case kind::string: return a.str() == b.str();
    case kind::list:
      if (a.items().view == list_view::iterator || b.items().view == list_view::iterator) return a.identity() == b.identity();
      return a.identity() == b.identity() || sequence_equal(a.items(), b.items());
    case kind::tuple: return a.identity() == b.identity() || sequence_equal(a.items(), b.items());
    case kind::dict: {
      const dict_data &da = a.dict(), &db = b.dict();
      if (da.entries.size() != db.entries.size()) return false;
      for (const auto& [k, v] : da.entries) {
        const value* other = db.find(k);
        if (!other || !py_equal(v, *other)) return false;
      }
      return true;
    }
    default: return a.identity() == b.identity();
  }
}

namespace {

template <class T>
bool ordered(std::string_view op, const T& a, const T& b) {
  if (op == "<") return a < b;
  if (op == "<=") return a <= b;
  if (op == ">") return a > b;
  return a >= b;
}

bool orderable(const value& a, const value& b) {
  if (a.is_number() && b.is_number()) return true;
  if (a.is_string() && b.is_string()) return true;
  return a.is_sequence_like() && b.is_sequence_like() && a.items().tuple == b.items().tuple &&
         a.items().view == list_view::plain && b.items().view == list_view::plain;
}

}  // namespace

bool py_compare(const value& a, const value& b, std::string_view op) {
  value_depth_guard depth;
  if (op == "==") return py_equal(a, b);
  if (op == "!=") return !py_equal(a, b);
  if (!orderable(a, b)) {
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    raise(cat({"'", op, "' not supported between instances of '", type_name(a), "' and '", type_name(b), "'"}));
  }
  if (a.is_number()) {
    if (a.is_integral() && b.is_integral()) return ordered(op, a.as_int(), b.as_int());
    if (a.is_float() && b.is_float()) return ordered(op, a.as_float(), b.as_float());
    // int against float: exact, as Python compares them (no rounding of large ints).
    const bool a_float = a.is_float();
    const double f = a_float ? a.as_float() : b.as_float();
    const std::int64_t i = a_float ? b.as_int() : a.as_int();
    if (std::isnan(f)) return false;
    long double lf = f, li = static_cast<long double>(i);
    return a_float ? ordered(op, lf, li) : ordered(op, li, lf);
  }
  if (a.is_string()) return ordered(op, a.str(), b.str());  // UTF-8 byte order is code point order
  const auto &x = a.items().items, &y = b.items().items;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i)
    if (!py_equal(x[i], y[i])) return py_compare(x[i], y[i], op);
  return ordered(op, x.size(), y.size());
}

bool is_hashable(const value& v) {
  value_depth_guard depth;
  switch (v.type()) {
    case kind::list:
    case kind::dict: return false;
    case kind::tuple:
      for (const value& item : v.items().items)
        if (!is_hashable(item)) return false;
      return true;
    default: return true;
  }
}

std::string undefined_message(const value& v) {
  const undefined_info* why = v.is_undefined() ? v.undefined_why() : nullptr;
  if (!why) return "value is undefined";
  if (!why->hint.empty()) return why->hint;
  if (why->owner.empty()) return why->name + " is undefined";
  if (why->element) return why->owner + " has no element " + why->name;
  return "'" + why->owner + "' has no attribute " + why->name;
}

void fail_undefined(const value& v) { raise(undefined_message(v)); }

std::vector<value> iterate(const value& v) {
  switch (v.type()) {
    case kind::undefined: return {};
    case kind::string: {
      const std::string& s = v.str();
      std::vector<value> chars;
      chars.reserve(s.size());
      for (std::size_t i = 0; i < s.size();) {
        const std::size_t start = i;
        next_char(s, i);
        chars.push_back(value::string(s.substr(start, i - start)));
      }
      return chars;
    }
    case kind::list:
      if (v.items().view == list_view::iterator) {
        list_data& it = v.items();
        if (it.produce) {
          auto produce = std::move(it.produce);
          it.produce = nullptr;
          return produce();  // consumed at once: a second loop over it sees nothing
        }
        // One pass, as a Python iterator: a second loop over it sees nothing.
        std::vector<value> rest = std::move(it.items);
        it.items.clear();
        return rest;
      }
      return v.items().items;
    case kind::tuple: return v.items().items;
    case kind::dict: {
      std::vector<value> keys;
      keys.reserve(v.dict().entries.size());
      for (const auto& [k, _] : v.dict().entries) keys.push_back(k);
      return keys;
    }
    case kind::loop: {
      const loop_state& l = v.loop_data();
      return std::vector<value>(l.items.begin() + static_cast<std::ptrdiff_t>(std::min(l.index0 + 1, l.items.size())),
                                l.items.end());
    }
    default: raise("'" + type_name(v) + "' object is not iterable");
  }
}

std::int64_t py_len(const value& v) {
  switch (v.type()) {
    case kind::undefined: return 0;
    case kind::string: return static_cast<std::int64_t>(char_count(v.str()));
    case kind::list:
      if (v.items().view == list_view::iterator) break;
      return static_cast<std::int64_t>(v.items().items.size());
    case kind::tuple: return static_cast<std::int64_t>(v.items().items.size());
    case kind::dict: return static_cast<std::int64_t>(v.dict().entries.size());
    case kind::loop: return static_cast<std::int64_t>(v.loop_data().items.size());
    default: break;
  }
  raise("object of type '" + type_name(v) + "' has no len()");
}

namespace {
[[noreturn]] void overflow() { raise("integer result does not fit in 64 bits (mii's integers are 64-bit)"); }
}  // namespace

std::int64_t checked_add(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_add_overflow(a, b, &r)) overflow();
  return r;
}
std::int64_t checked_sub(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) overflow();
  return r;
}
std::int64_t checked_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) overflow();
  return r;
}

}  // namespace mii::detail::jinja
