// The methods of Python's str, dict, list and tuple that templates call ("x".startswith(...),
// message.get("content"), d.items()). Under transformers' ImmutableSandboxedEnvironment the
// methods that modify a dict or list in place are refused, so they are too here; list.pop and
// list.clear are not on jinja2's list of modifying methods, and work.
#include <algorithm>
#include <cstring>

#include "chat/evaluator.hpp"
#include "chat/filters.hpp"
#include "chat/py_format.hpp"
#include "chat/py_text.hpp"

namespace mii::detail::jinja {
namespace {

using method_impl = value (*)(evaluator& ev, const value& self, call_args& args);

class bound_method final : public callable {
 public:
  bound_method(value self, std::string_view name, method_impl fn) : self_(std::move(self)), name_(name), fn_(fn) {}
  value call(evaluator& ev, call_args& args) const override { return fn_(ev, self_, args); }
  std::string repr() const override { return "<built-in method " + name_ + " of " + type_name(self_) + " object>"; }

 private:
  value self_;
  std::string name_;
  method_impl fn_;
};

struct method_entry {
  std::string_view name;
  method_impl fn;  // null: Python has it but mii does not implement it
};

// ---- str ---------------------------------------------------------------------------------

std::optional<std::string> optional_text(const arg_binder& a, std::size_t i, std::string_view fn) {
  const value* v = a.get(i);
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) raise(std::string(fn) + " arg must be None or str");
  return v->str();
}

std::string text_arg(const arg_binder& a, std::size_t i, std::string_view fn) {
  const value& v = a.required(i);
  if (!v.is_string()) raise(std::string(fn) + "() argument must be str, not " + type_name(v));
  return v.str();
}

value str_strip_impl(const value& self, call_args& args, const char* fn, bool left, bool right) {
  arg_binder a(fn, args, {"chars"});
  return value::string(py_strip(self.str(), optional_text(a, 0, fn), left, right));
}
value str_strip(evaluator&, const value& s, call_args& a) { return str_strip_impl(s, a, "strip", true, true); }
value str_lstrip(evaluator&, const value& s, call_args& a) { return str_strip_impl(s, a, "lstrip", true, false); }
value str_rstrip(evaluator&, const value& s, call_args& a) { return str_strip_impl(s, a, "rstrip", false, true); }

value split_impl(const value& self, call_args& args, bool right) {
  arg_binder a(right ? "rsplit" : "split", args, {"sep", "maxsplit"});
  std::vector<value> parts;
  for (auto& p : py_split(self.str(), optional_text(a, 0, "split"), a.integer(1, -1), right))
    parts.push_back(value::string(std::move(p)));
  return value::list(std::move(parts));
}
value str_split(evaluator&, const value& s, call_args& a) { return split_impl(s, a, false); }
value str_rsplit(evaluator&, const value& s, call_args& a) { return split_impl(s, a, true); }

value str_splitlines(evaluator&, const value& self, call_args& args) {
  arg_binder a("splitlines", args, {"keepends"});
  std::vector<value> lines;
  for (auto& l : py_splitlines(self.str(), a.flag(0, false))) lines.push_back(value::string(std::move(l)));
  return value::list(std::move(lines));
}

// startswith/endswith take a str or a tuple of str, and optional start/end (a slice of self).
value affix_impl(const value& self, call_args& args, bool prefix) {
  const char* fn = prefix ? "startswith" : "endswith";
  arg_binder a(fn, args, {"affix", "start", "end"});
  const value& affix = a.required(0);
  std::vector<std::string> options;
  if (affix.is_string()) {
    options.push_back(affix.str());
  } else if (affix.type() == kind::tuple) {
    for (const value& v : affix.items().items) {
      if (!v.is_string()) raise(std::string("tuple for ") + fn + " must only contain str, not " + type_name(v));
      options.push_back(v.str());
    }
  } else {
    raise(std::string(fn) + " first arg must be str or a tuple of str, not " + type_name(affix));
  }
  std::string_view text = self.str();
  std::string window;
  if (a.has(1) || a.has(2)) {
    const std::u32string chars = to_u32(text);
    const auto n = static_cast<long long>(chars.size());
    long long start = a.integer(1, 0), end = a.integer(2, n);
    if (start < 0) start = std::max(0LL, start + n);
    if (end < 0) end = std::max(0LL, end + n);
    end = std::min(end, n);
    if (start > n) return value::boolean(false);
    window = start < end ? from_u32(std::u32string_view(chars).substr(static_cast<std::size_t>(start),
                                                                        static_cast<std::size_t>(end - start)))
                         : std::string();
    text = window;
  }
  for (const auto& o : options) {
    if (o.size() > text.size()) continue;
    if (prefix ? text.compare(0, o.size(), o) == 0 : text.compare(text.size() - o.size(), o.size(), o) == 0)
      return value::boolean(true);
  }
  return value::boolean(false);
}
value str_startswith(evaluator&, const value& s, call_args& a) { return affix_impl(s, a, true); }
value str_endswith(evaluator&, const value& s, call_args& a) { return affix_impl(s, a, false); }

value str_replace(evaluator&, const value& self, call_args& args) {
  arg_binder a("replace", args, {"old", "new", "count"});
  const std::string old = text_arg(a, 0, "replace"), new_ = text_arg(a, 1, "replace");
  const long long count = a.integer(2, -1);
  const std::size_t occurrences = old.empty() ? char_count(self.str()) + 1 : static_cast<std::size_t>(py_count(self.str(), old, 0, static_cast<long long>(self.str().size())));
  if (new_.size() > old.size() && occurrences > 0 &&
      self.str().size() + occurrences * (new_.size() - old.size()) > max_string_bytes)
    raise("replace() makes a string over the limit of " + std::to_string(max_string_bytes) + " bytes");
  return value::string(py_replace(self.str(), old, new_, count));
}

value find_impl(const value& self, call_args& args, const char* fn, bool right, bool must_find) {
  arg_binder a(fn, args, {"sub", "start", "end"});
  const std::string sub = text_arg(a, 0, fn);
  const long long r = py_find(self.str(), sub, a.integer(1, 0), a.integer(2, static_cast<long long>(self.str().size()) + 1), right);
  if (r < 0 && must_find) raise("substring not found");
  return value::integer(r);
}
value str_find(evaluator&, const value& s, call_args& a) { return find_impl(s, a, "find", false, false); }
value str_rfind(evaluator&, const value& s, call_args& a) { return find_impl(s, a, "rfind", true, false); }
value str_index(evaluator&, const value& s, call_args& a) { return find_impl(s, a, "index", false, true); }
value str_rindex(evaluator&, const value& s, call_args& a) { return find_impl(s, a, "rindex", true, true); }

value str_count(evaluator&, const value& self, call_args& args) {
  arg_binder a("count", args, {"sub", "start", "end"});
  const std::string sub = text_arg(a, 0, "count");
  return value::integer(py_count(self.str(), sub, a.integer(1, 0), a.integer(2, static_cast<long long>(self.str().size()) + 1)));
}

template <std::string (*F)(std::string_view)>
value str_map(evaluator&, const value& self, call_args& args) {
  arg_binder a("str method", args, {});
  return value::string(F(self.str()));
}

template <bool (*F)(char32_t)>
value str_all(evaluator&, const value& self, call_args& args) {
  arg_binder a("str method", args, {});
  const std::u32string chars = to_u32(self.str());
  return value::boolean(!chars.empty() && std::all_of(chars.begin(), chars.end(), F));
}

value str_isascii(evaluator&, const value& self, call_args& args) {
  arg_binder a("isascii", args, {});
  return value::boolean(is_ascii(self.str()));
}
value str_islower(evaluator&, const value& self, call_args& args) {
  arg_binder a("islower", args, {});
  return value::boolean(py_islower(self.str()));
}
value str_isupper(evaluator&, const value& self, call_args& args) {
  arg_binder a("isupper", args, {});
  return value::boolean(py_isupper(self.str()));
}

value str_join(evaluator& ev, const value& self, call_args& args) {
  arg_binder a("join", args, {"iterable"});
  const std::vector<value> items = ev.items_of(a.required(0));
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!items[i].is_string())
      raise("sequence item " + std::to_string(i) + ": expected str instance, " + type_name(items[i]) + " found");
    if (i) out += self.str();
    out += items[i].str();
    if (out.size() > max_string_bytes) raise("join() makes a string over the limit of " + std::to_string(max_string_bytes) + " bytes");
  }
  ev.charge(out.size());
  return value::string(std::move(out));
}

// center / ljust / rjust / zfill
value justify(const value& self, call_args& args, const char* fn, char how) {
  arg_binder a(fn, args, {"width", "fillchar"});
  const std::int64_t width = a.integer(0, 0);
  std::string fill = " ";
  if (a.has(1)) {
    const value& f = *a.get(1);
    if (!f.is_string() || char_count(f.str()) != 1) raise("The fill character must be exactly one character long");
    fill = f.str();
  }
  const auto len = static_cast<std::int64_t>(char_count(self.str()));
  if (width <= len) return self;
  if (static_cast<std::uint64_t>(width) * fill.size() > max_string_bytes)
    raise(std::string(fn) + "() width is over the limit of " + std::to_string(max_string_bytes) + " bytes");
  const auto missing = static_cast<std::size_t>(width - len);
  auto rep = [&](std::size_t n) {
    std::string r;
    for (std::size_t i = 0; i < n; ++i) r += fill;
    return r;
  };
  const std::string& s = self.str();
  switch (how) {
    case 'l': return value::string(s + rep(missing));
    case 'r': return value::string(rep(missing) + s);
    case 'z': {
      const bool sign = !s.empty() && (s[0] == '-' || s[0] == '+');
      return value::string((sign ? s.substr(0, 1) : "") + std::string(missing, '0') + s.substr(sign ? 1 : 0));
    }
    default: {
      // Python centers with the extra fill on the right when the padding is odd, unless the
      // width is odd and the string's length even (str.center's rule: left = pad/2 + (pad & width & 1)).
      const std::size_t left = missing / 2 + (missing & static_cast<std::size_t>(width) & 1);
      return value::string(rep(left) + s + rep(missing - left));
    }
  }
}
value str_center(evaluator&, const value& s, call_args& a) { return justify(s, a, "center", 'c'); }
value str_ljust(evaluator&, const value& s, call_args& a) { return justify(s, a, "ljust", 'l'); }
value str_rjust(evaluator&, const value& s, call_args& a) { return justify(s, a, "rjust", 'r'); }
value str_zfill(evaluator&, const value& self, call_args& args) {
  arg_binder a("zfill", args, {"width"});
  call_args forwarded;
  forwarded.positional.push_back(value::integer(a.integer(0, 0)));
  return justify(self, forwarded, "zfill", 'z');
}

value partition_impl(const value& self, call_args& args, bool right) {
  arg_binder a(right ? "rpartition" : "partition", args, {"sep"});
  const std::string sep = text_arg(a, 0, "partition");
  if (sep.empty()) raise("empty separator");
  const std::string& s = self.str();
  const std::size_t at = right ? s.rfind(sep) : s.find(sep);
  if (at == std::string::npos) {
    return right ? value::tuple({value::string(""), value::string(""), self})
                 : value::tuple({self, value::string(""), value::string("")});
  }
  return value::tuple({value::string(s.substr(0, at)), value::string(sep), value::string(s.substr(at + sep.size()))});
}
value str_partition(evaluator&, const value& s, call_args& a) { return partition_impl(s, a, false); }
value str_rpartition(evaluator&, const value& s, call_args& a) { return partition_impl(s, a, true); }

value str_removeprefix(evaluator&, const value& self, call_args& args) {
  arg_binder a("removeprefix", args, {"prefix"});
  const std::string p = text_arg(a, 0, "removeprefix");
  const std::string& s = self.str();
  return s.compare(0, p.size(), p) == 0 && p.size() <= s.size() ? value::string(s.substr(p.size())) : self;
}
value str_removesuffix(evaluator&, const value& self, call_args& args) {
  arg_binder a("removesuffix", args, {"suffix"});
  const std::string p = text_arg(a, 0, "removesuffix");
  const std::string& s = self.str();
  if (!p.empty() && p.size() <= s.size() && s.compare(s.size() - p.size(), p.size(), p) == 0)
    return value::string(s.substr(0, s.size() - p.size()));
  return self;
}

value str_format(evaluator&, const value& self, call_args& args) { return value::string(brace_format(self.str(), args)); }

std::string casefold(std::string_view s) { return py_lower(s); }

constexpr method_entry str_methods[] = {
    {"capitalize", str_map<py_capitalize>}, {"casefold", str_map<casefold>}, {"center", str_center},
    {"count", str_count}, {"encode", nullptr}, {"endswith", str_endswith}, {"expandtabs", nullptr},
    {"find", str_find}, {"format", str_format}, {"format_map", nullptr}, {"index", str_index},
    {"isalnum", str_all<py_isalnum>}, {"isalpha", str_all<py_isalpha>}, {"isascii", str_isascii},
    {"isdecimal", str_all<py_isdigit>}, {"isdigit", str_all<py_isdigit>}, {"isidentifier", nullptr},
    {"islower", str_islower}, {"isnumeric", str_all<py_isnumeric>}, {"isprintable", nullptr},
    {"isspace", str_all<py_isspace>}, {"istitle", nullptr}, {"isupper", str_isupper}, {"join", str_join},
    {"ljust", str_ljust}, {"lower", str_map<py_lower>}, {"lstrip", str_lstrip}, {"maketrans", nullptr},
    {"partition", str_partition}, {"removeprefix", str_removeprefix}, {"removesuffix", str_removesuffix},
    {"replace", str_replace}, {"rfind", str_rfind}, {"rindex", str_rindex}, {"rjust", str_rjust},
    {"rpartition", str_rpartition}, {"rsplit", str_rsplit}, {"rstrip", str_rstrip}, {"split", str_split},
    {"splitlines", str_splitlines}, {"startswith", str_startswith}, {"strip", str_strip},
    {"swapcase", str_map<py_swapcase>}, {"title", str_map<py_title>}, {"translate", nullptr},
    {"upper", str_map<py_upper>}, {"zfill", str_zfill},
};

// ---- dict ---------------------------------------------------------------------------------

value dict_get(evaluator&, const value& self, call_args& args) {
  arg_binder a("get", args, {"key", "default"});
  const value& key = a.required(0);
  if (!is_hashable(key)) raise("unhashable type: '" + type_name(key) + "'");
  if (const value* v = self.dict().find(key)) return *v;
  return a.has(1) ? *a.get(1) : value::none();
}

value dict_view(const value& self, call_args& args, const char* fn, list_view view) {
  arg_binder a(fn, args, {});
  std::vector<value> out;
  for (const auto& [k, v] : self.dict().entries) {
    if (view == list_view::dict_keys) out.push_back(k);
    else if (view == list_view::dict_values) out.push_back(v);
    else out.push_back(value::tuple({k, v}));
  }
  value l = value::list(std::move(out));
  l.items().view = view;
  return l;
}
value dict_items(evaluator&, const value& s, call_args& a) { return dict_view(s, a, "items", list_view::dict_items); }
value dict_keys(evaluator&, const value& s, call_args& a) { return dict_view(s, a, "keys", list_view::dict_keys); }
value dict_values(evaluator&, const value& s, call_args& a) { return dict_view(s, a, "values", list_view::dict_values); }
value dict_copy(evaluator&, const value& self, call_args& args) {
  arg_binder a("copy", args, {});
  return value::dict(std::make_shared<dict_data>(self.dict()));
}

constexpr method_entry dict_methods[] = {
    {"copy", dict_copy}, {"fromkeys", nullptr}, {"get", dict_get}, {"items", dict_items},
    {"keys", dict_keys}, {"values", dict_values},
};
constexpr std::string_view dict_mutators[] = {"clear", "pop", "popitem", "setdefault", "update"};

// ---- list / tuple -------------------------------------------------------------------------

value seq_count(evaluator&, const value& self, call_args& args) {
  arg_binder a("count", args, {"value"});
  const value& x = a.required(0);
  std::int64_t n = 0;
  for (const value& v : self.items().items) n += py_equal(v, x);
  return value::integer(n);
}

value seq_index(evaluator&, const value& self, call_args& args) {
  arg_binder a("index", args, {"value", "start", "stop"});
  const value& x = a.required(0);
  const auto& items = self.items().items;
  const auto n = static_cast<std::int64_t>(items.size());
  std::int64_t start = a.integer(1, 0), stop = a.integer(2, n);
  if (start < 0) start = std::max<std::int64_t>(0, start + n);
  if (stop < 0) stop = std::max<std::int64_t>(0, stop + n);
  for (std::int64_t i = start; i < std::min(stop, n); ++i)
    if (py_equal(items[static_cast<std::size_t>(i)], x)) return value::integer(i);
  raise(py_repr(x) + " is not in " + type_name(self));
}

value list_copy(evaluator&, const value& self, call_args& args) {
  arg_binder a("copy", args, {});
  return value::list(self.items().items);
}

value list_pop(evaluator&, const value& self, call_args& args) {
  arg_binder a("pop", args, {"index"});
  auto& items = self.items().items;
  if (items.empty()) raise("pop from empty list");
  std::int64_t i = a.integer(0, -1);
  const auto n = static_cast<std::int64_t>(items.size());
  if (i < 0) i += n;
  if (i < 0 || i >= n) raise("pop index out of range");
  value v = items[static_cast<std::size_t>(i)];
  items.erase(items.begin() + i);
  return v;
}

value list_clear(evaluator&, const value& self, call_args& args) {
  arg_binder a("clear", args, {});
  self.items().items.clear();
  return value::none();
}

constexpr method_entry list_methods[] = {
    {"clear", list_clear}, {"copy", list_copy}, {"count", seq_count}, {"index", seq_index}, {"pop", list_pop},
};
constexpr std::string_view list_mutators[] = {"append", "extend", "insert", "remove", "reverse", "sort"};
constexpr method_entry tuple_methods[] = {{"count", seq_count}, {"index", seq_index}};

template <std::size_t N>
const method_entry* find_method(const method_entry (&table)[N], std::string_view name) {
  for (const auto& m : table)
    if (m.name == name) return &m;
  return nullptr;
}

template <std::size_t N>
bool is_one_of(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

value unsafe(const value& object, const std::string& name) {
  auto info = std::make_shared<undefined_info>();
  info->unsafe = true;
  info->name = py_repr_string(name);
  info->hint = "access to attribute '" + name + "' of '" + type_name(object) + "' object is unsafe.";
  return value::undefined(std::move(info));
}

// A method Python has but mii does not implement: calling it says so.
class missing_method final : public callable {
 public:
  missing_method(std::string type, std::string name) : type_(std::move(type)), name_(std::move(name)) {}
  value call(evaluator&, call_args&) const override {
    raise(type_ + "." + name_ + "() is not supported by mii's template engine");
  }
  std::string repr() const override { return "<built-in method " + name_ + " of " + type_ + " object>"; }

 private:
  std::string type_, name_;
};

value bind(const value& object, const method_entry* m) {
  if (!m->fn) return value::function(std::make_shared<missing_method>(type_name(object), std::string(m->name)));
  return value::function(std::make_shared<bound_method>(object, m->name, m->fn));
}

}  // namespace

value builtin_attribute(const value& object, const std::string& name, bool& found) {
  found = true;
  switch (object.type()) {
    case kind::string:
      if (const method_entry* m = find_method(str_methods, name)) return bind(object, m);
      break;
    case kind::dict:
      if (const method_entry* m = find_method(dict_methods, name)) return bind(object, m);
      if (is_one_of(dict_mutators, name)) return unsafe(object, name);
      break;
    case kind::list:
      if (object.items().view != list_view::plain) break;  // views have no methods templates use
      if (const method_entry* m = find_method(list_methods, name)) return bind(object, m);
      if (is_one_of(list_mutators, name)) return unsafe(object, name);
      break;
    case kind::tuple:
      if (const method_entry* m = find_method(tuple_methods, name)) return bind(object, m);
      break;
    default: break;
  }
  found = false;
  return {};
}

}  // namespace mii::detail::jinja
