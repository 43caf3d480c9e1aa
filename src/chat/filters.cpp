// jinja2 3.1's built-in filters (jinja2/filters.py), with transformers' replacement for tojson.
// Filters that return generators in jinja2 (map, select..., unique, batch, items, reverse of a
// list) return one-pass iterators here, so that `x|select(...)` is true even when empty and has
// no length, exactly as in Python.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "chat/evaluator.hpp"
#include "chat/filters.hpp"
#include "chat/json_values.hpp"
#include "chat/py_format.hpp"
#include "chat/py_text.hpp"

namespace mii::detail::jinja {
namespace {

// ---- helpers --------------------------------------------------------------------------------

std::vector<value> attribute_path(const value& attribute) {
  // "a.b.0" looks up a, then b, then index 0 (digit parts become integers).
  std::vector<value> parts;
  if (attribute.is_none()) return parts;
  if (!attribute.is_string()) {
    parts.push_back(attribute);
    return parts;
  }
  for (auto& p : py_split(attribute.str(), std::string("."), -1, false)) {
    const bool digits = !p.empty() && std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
    std::int64_t n = 0;
    if (digits && std::from_chars(p.data(), p.data() + p.size(), n).ec == std::errc()) parts.push_back(value::integer(n));
    else parts.push_back(value::string(std::move(p)));
  }
  return parts;
}

value lower_if_string(const value& v) { return v.is_string() ? value::string(py_lower(v.str())) : v; }

// jinja2's make_attrgetter: item lookups (environment.getitem) along a dotted path.
value get_path(evaluator& ev, value item, const std::vector<value>& path, const value* fallback = nullptr) {
  for (const value& part : path) {
    item = ev.item(item, part);
    if (fallback && item.is_undefined()) item = *fallback;
  }
  return item;
}

std::vector<std::vector<value>> multi_paths(const value& attribute) {
  std::vector<std::vector<value>> paths;
  if (attribute.is_string()) {
    for (auto& a : py_split(attribute.str(), std::string(","), -1, false)) paths.push_back(attribute_path(value::string(a)));
  } else {
    paths.push_back(attribute_path(attribute));
  }
  return paths;
}

value text_value(std::string s) { return value::string(std::move(s)); }

// ---- string filters -------------------------------------------------------------------------

value f_upper(evaluator& ev, const value& v, call_args& args) {
  arg_binder("upper", args, {});
  return text_value(py_upper(py_str(v)));
}
value f_lower(evaluator& ev, const value& v, call_args& args) {
  arg_binder("lower", args, {});
  return text_value(py_lower(py_str(v)));
}
value f_capitalize(evaluator& ev, const value& v, call_args& args) {
  arg_binder("capitalize", args, {});
  return text_value(py_capitalize(py_str(v)));
}

// jinja2's title is not str.title: words start after runs of '-', whitespace, '(', '{', '[', '<'.
value f_title(evaluator& ev, const value& v, call_args& args) {
  arg_binder("title", args, {});
  const std::u32string s = to_u32(py_str(v));
  auto separator = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c); };
  std::u32string out;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = i;
    const bool sep = separator(s[i]);
    while (j < s.size() && separator(s[j]) == sep) ++j;
    if (sep) {
      out.append(s, i, j - i);
    } else {
      append_upper(out, s[i]);
      out += to_u32(py_lower(from_u32(std::u32string_view(s).substr(i + 1, j - i - 1))));
    }
    i = j;
  }
  return text_value(from_u32(out));
}

value f_trim(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("trim", args, {"chars"});
  std::optional<std::string> chars;
  if (a.has(0) && !a.get(0)->is_none()) {
    if (!a.get(0)->is_string()) raise("strip arg must be None or str");
    chars = a.get(0)->str();
  }
  return text_value(py_strip(py_str(v), chars, true, true));
}

value f_replace(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("replace", args, {"old", "new", "count"});
  const std::string s = py_str(v), old = py_str(a.required(0)), new_ = py_str(a.required(1));
  const std::int64_t count = a.integer(2, -1);
  const std::size_t hits = old.empty() ? char_count(s) + 1 : static_cast<std::size_t>(py_count(s, old, 0, static_cast<long long>(s.size())));
  if (new_.size() > old.size() && s.size() + hits * (new_.size() - old.size()) > max_string_bytes)
    raise("replace makes a string over the limit of " + std::to_string(max_string_bytes) + " bytes");
  (void)ev;
  return text_value(py_replace(s, old, new_, count));
}

value f_string(evaluator& ev, const value& v, call_args& args) {
  arg_binder("string", args, {});
  return v.is_string() ? v : text_value(py_str(v));
}

value f_safe(evaluator& ev, const value& v, call_args& args) {
  arg_binder("safe", args, {});
  return v.is_string() ? v : text_value(py_str(v));
}

value f_escape(evaluator& ev, const value& v, call_args& args) {
  arg_binder("escape", args, {});
  std::string out;
  for (char c : py_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return text_value(std::move(out));
}

value f_center(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("center", args, {"width"});
  const std::string s = py_str(v);
  const std::int64_t width = a.integer(0, 80);
  const auto len = static_cast<std::int64_t>(char_count(s));
  if (width <= len) return text_value(s);
  if (static_cast<std::uint64_t>(width) > max_string_bytes) raise("center width is over the limit of " + std::to_string(max_string_bytes));
  const std::int64_t missing = width - len;
  const std::int64_t left = missing / 2 + (missing & width & 1);
  return text_value(std::string(static_cast<std::size_t>(left), ' ') + s + std::string(static_cast<std::size_t>(missing - left), ' '));
}

value f_indent(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("indent", args, {"width", "first", "blank"});
  if (!v.is_string()) {
    if (v.is_undefined()) fail_undefined(v);
    raise("unsupported operand type(s) for +=: '" + type_name(v) + "' and 'str'");
  }
  std::string indention;
  if (a.has(0) && a.get(0)->is_string()) {
    indention = a.get(0)->str();
  } else {
    const std::int64_t w = a.integer(0, 4);
    if (w > 0 && static_cast<std::uint64_t>(w) > max_string_bytes) raise("indent width is over the limit");
    indention = std::string(w > 0 ? static_cast<std::size_t>(w) : 0, ' ');
  }
  const std::vector<std::string> lines = py_splitlines(v.str() + "\n", false);
  std::string out;
  auto add = [&](std::string_view piece) {
    out += piece;
    if (out.size() > max_string_bytes) raise("indent makes a string over the limit of " + std::to_string(max_string_bytes) + " bytes");
  };
  if (a.flag(2, false)) {
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (i) {
        add("\n");
        add(indention);
      }
      add(lines[i]);
    }
  } else {
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (i) {
        add("\n");
        if (!lines[i].empty()) add(indention);
      }
      add(lines[i]);
    }
  }
  if (a.flag(1, false)) out = indention + out;
  return text_value(std::move(out));
}

value f_wordcount(evaluator& ev, const value& v, call_args& args) {
  arg_binder("wordcount", args, {});
  const std::u32string s = to_u32(py_str(v));
  std::int64_t words = 0;
  bool in_word = false;
  for (char32_t c : s) {
    const bool w = c == '_' || py_isalnum(c);  // Python's \w
    if (w && !in_word) ++words;
    in_word = w;
  }
  return value::integer(words);
}

value f_format(evaluator& ev, const value& v, call_args& args) {
  if (!args.positional.empty() && !args.keywords.empty())
    raise("can't handle positional and keyword arguments at the same time");
  if (!args.keywords.empty()) {
    auto d = std::make_shared<dict_data>();
    for (const auto& [k, x] : args.keywords) d->set(value::string(k), x);
    return text_value(percent_format(py_str(v), value::dict(d)));
  }
  return text_value(percent_format(py_str(v), value::tuple(args.positional)));
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
value f_tojson(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
  json_dump_options o;
  o.ensure_ascii = a.flag(0, false);
  if (a.has(1) && !a.get(1)->is_none()) {
    const value& indent = *a.get(1);
    if (indent.is_string()) {
      o.indent = indent.str();
    } else if (indent.is_integral()) {
      const std::int64_t n = indent.as_int();
      if (n > 0 && static_cast<std::uint64_t>(n) > max_string_bytes) raise("tojson indent is over the limit");
      o.indent = std::string(n > 0 ? static_cast<std::size_t>(n) : 0, ' ');
    } else {
      raise("can't multiply sequence by non-int of type '" + type_name(indent) + "'");
    }
    o.item_separator = ",";
  }
  if (a.has(2) && !a.get(2)->is_none()) {
    const value& sep = *a.get(2);
    if (!sep.is_sequence_like() || sep.items().items.size() != 2 || !sep.items().items[0].is_string() ||
        !sep.items().items[1].is_string())
      raise("tojson separators must be a pair of strings (item separator, key separator)");
    o.item_separator = sep.items().items[0].str();
    o.key_separator = sep.items().items[1].str();
  }
  o.sort_keys = a.flag(3, false);
  return text_value(json_dumps(v, o));
}

// ---- numbers --------------------------------------------------------------------------------

// Python's int(str, base) and float(str): surrounding whitespace, a sign, '_' between digits.
std::optional<std::int64_t> parse_python_int(const std::string& text, std::int64_t base) {
  std::string s = py_strip(text, std::nullopt, true, true);
  if (s.empty()) return std::nullopt;
  bool negative = false;
  std::size_t i = 0;
  if (s[0] == '+' || s[0] == '-') {
    negative = s[0] == '-';
    ++i;
  }
  if (base == 0 || base == 16 || base == 8 || base == 2) {
    if (i + 1 < s.size() && s[i] == '0') {
      const char p = static_cast<char>(s[i + 1] | 0x20);
      const std::int64_t prefixed = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
      if (prefixed && (base == 0 || base == prefixed)) {
        base = prefixed;
        i += 2;
        if (i < s.size() && s[i] == '_') ++i;
      }
    }
    if (base == 0) base = 10;
  }
  if (base < 2 || base > 36) return std::nullopt;  // Python raises ValueError, which jinja2's int filter catches
  std::string digits;
  bool last_underscore = true;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_') {
      if (last_underscore) return std::nullopt;
      last_underscore = true;
      continue;
    }
    last_underscore = false;
    digits.push_back(c);
  }
  if (last_underscore || digits.empty()) return std::nullopt;
  std::uint64_t magnitude = 0;
  const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, static_cast<int>(base));
  if (r.ptr != digits.data() + digits.size()) return std::nullopt;
  if (r.ec != std::errc() || magnitude > (negative ? 9223372036854775808ULL : 9223372036854775807ULL))
    raise("integer " + text + " does not fit in 64 bits (mii's integers are 64-bit)");
  return negative ? static_cast<std::int64_t>(0 - magnitude) : static_cast<std::int64_t>(magnitude);
}

std::optional<double> parse_python_float(const std::string& text) {
  std::string s = py_strip(text, std::nullopt, true, true);
  std::string lower = py_lower(s);
  std::string_view body = lower;
  double sign = 1;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    sign = body[0] == '-' ? -1 : 1;
    body.remove_prefix(1);
  }
  if (body == "inf" || body == "infinity") return sign * HUGE_VAL;
  if (body == "nan") return std::nan("");
  std::string digits;
  char prev = 0;
  for (char c : s) {
    if (c == '_') {
      if (!(prev >= '0' && prev <= '9')) return std::nullopt;
    } else {
      if (prev == '_' && !(c >= '0' && c <= '9')) return std::nullopt;
      if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) return std::nullopt;
      digits.push_back(c);
    }
    prev = c;
  }
  if (prev == '_' || digits.empty()) return std::nullopt;
  const char* b = digits.data();
  const char* e = b + digits.size();
  if (*b == '+') ++b;
  double d = 0;
  const auto r = std::from_chars(b, e, d);
  if (r.ptr != e) return std::nullopt;
  if (r.ec == std::errc::result_out_of_range) {
    const std::size_t x = digits.find_first_of("eE");
    const bool tiny = x != std::string::npos && digits[x + 1] == '-';
    const bool negative = digits[0] == '-';
    d = tiny ? (negative ? -0.0 : 0.0) : (negative ? -HUGE_VAL : HUGE_VAL);
  }
  return d;
}

std::int64_t float_to_int(double d) {
  if (std::isinf(d)) raise("cannot convert float infinity to integer");
  const double t = std::trunc(d);
  if (t < -9223372036854775808.0 || t >= 9223372036854775808.0) raise("integer result does not fit in 64 bits (mii's integers are 64-bit)");
  return static_cast<std::int64_t>(t);
}

value f_int(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("int", args, {"default", "base"});
  const value fallback = a.has(0) ? *a.get(0) : value::integer(0);
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_integral()) return value::integer(v.as_int());
  if (v.is_float()) {
    if (std::isnan(v.as_float())) return fallback;
    return value::integer(float_to_int(v.as_float()));
  }
  if (v.is_string()) {
    if (auto i = parse_python_int(v.str(), a.integer(1, 10))) return value::integer(*i);
    // jinja2 retries with int(float(value)), so "42.23"|int is 42.
    if (auto d = parse_python_float(v.str())) {
      if (std::isnan(*d)) return fallback;
      return value::integer(float_to_int(*d));
    }
  }
  return fallback;
}

value f_float(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("float", args, {"default"});
  const value fallback = a.has(0) ? *a.get(0) : value::floating(0.0);
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_number()) return value::floating(v.as_float());
  if (v.is_string())
    if (auto d = parse_python_float(v.str())) return value::floating(*d);
  return fallback;
}

value f_abs(evaluator& ev, const value& v, call_args& args) {
  arg_binder("abs", args, {});
  if (v.is_integral()) {
    const std::int64_t i = v.as_int();
    return value::integer(i < 0 ? checked_sub(0, i) : i);
  }
  if (v.is_float()) return value::floating(std::fabs(v.as_float()));
  raise("bad operand type for abs(): '" + type_name(v) + "'");
}

// Python's round(x, n): correctly rounded, ties to even on the exact binary value (printf with
// %.*f rounds the same way).
double round_float(double x, std::int64_t digits) {
  if (!std::isfinite(x) || digits > 330) return x;
  if (digits >= 0) {
    char buf[1024];  // %.330f of 1e308: 309 digits, the point, 330 decimals
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(digits), x);
    return std::strtod(buf, nullptr);
  }
  if (digits < -330) return std::copysign(0.0, x);
  const double scale = std::pow(10.0, static_cast<double>(-digits));
  const double y = x / scale;
  double r = std::nearbyint(y);
  return std::copysign(r * scale, x);
}

value f_round(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("round", args, {"precision", "method"});
  const std::int64_t precision = a.integer(0, 0);
  const std::string method = a.text(1, "common");
  if (method != "common" && method != "ceil" && method != "floor") raise("method must be common, ceil or floor");
  if (!v.is_number()) {
    if (method == "common") raise("type " + type_name(v) + " doesn't define __round__ method");
    raise("unsupported operand type(s) for *: '" + type_name(v) + "' and 'int'");
  }
  if (method == "common") {
    if (v.is_integral()) {
      if (precision >= 0) return value::integer(v.as_int());
      return value::integer(static_cast<std::int64_t>(round_float(static_cast<double>(v.as_int()), precision)));
    }
    return value::floating(round_float(v.as_float(), precision));
  }
  // math.ceil/floor(value * 10**precision) / 10**precision: always a float.
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double scaled = v.as_float() * scale;
  const double r = method == "ceil" ? std::ceil(scaled) : std::floor(scaled);
  return value::floating(r / scale);
}

// ---- sequences --------------------------------------------------------------------------------

value f_length(evaluator& ev, const value& v, call_args& args) {
  arg_binder("length", args, {});
  return value::integer(py_len(v));
}

value f_list(evaluator& ev, const value& v, call_args& args) {
  arg_binder("list", args, {});
  return value::list(ev.items_of(v));
}

value f_first(evaluator& ev, const value& v, call_args& args) {
  arg_binder("first", args, {});
  if (v.is_sequence_like() && v.items().indexable()) {
    if (!v.items().items.empty()) return v.items().items.front();
  } else if (const std::vector<value> items = ev.items_of(v); !items.empty()) {
    return items.front();
  }
  auto info = std::make_shared<undefined_info>();
  info->hint = "No first item, sequence was empty.";
  return value::undefined(std::move(info));
}

value f_last(evaluator& ev, const value& v, call_args& args) {
  arg_binder("last", args, {});
  if (v.is_sequence_like() && v.items().view == list_view::iterator)
    raise("'" + type_name(v) + "' object is not reversible");
  if (v.is_sequence_like() && v.items().indexable()) {
    if (!v.items().items.empty()) return v.items().items.back();
  } else if (const std::vector<value> items = ev.items_of(v); !items.empty()) {
    return items.back();
  }
  auto info = std::make_shared<undefined_info>();
  info->hint = "No last item, sequence was empty.";
  return value::undefined(std::move(info));
}

value f_join(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("join", args, {"d", "attribute"});
  const std::string sep = a.text(0, "");
  std::vector<value> items = ev.items_of(v);
  if (a.has(1) && !a.get(1)->is_none()) {
    const std::vector<value> path = attribute_path(*a.get(1));
    for (value& item : items) item = get_path(ev, item, path);
  }
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += py_str(items[i]);
    if (out.size() > max_string_bytes) raise("join makes a string over the limit of " + std::to_string(max_string_bytes) + " bytes");
  }
  return text_value(std::move(out));
}

value f_default(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("default", args, {"default_value", "boolean"});
  if (v.is_undefined() || (a.flag(1, false) && !truthy(v))) return a.has(0) ? *a.get(0) : text_value("");
  return v;
}

value f_items(evaluator& ev, const value& v, call_args& args) {
  arg_binder("items", args, {});
  return make_generator([v] {
    std::vector<value> pairs;
    if (v.is_undefined()) return pairs;
    if (!v.is_dict()) raise("Can only get item pairs from a mapping.");
    for (const auto& [k, x] : v.dict().entries) pairs.push_back(value::tuple({k, x}));
    return pairs;
  }, "do_items");
}

value f_dictsort(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("dictsort", args, {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) {
    if (v.is_undefined()) fail_undefined(v);
    raise("'" + type_name(v) + "' object has no attribute 'items'");
  }
  const bool case_sensitive = a.flag(0, false);
  const std::string by = a.text(1, "key");
  if (by != "key" && by != "value") raise("You can only sort by either \"key\" or \"value\"");
  const bool reverse = a.flag(2, false);
  const std::size_t pos = by == "key" ? 0 : 1;
  struct entry {
    value key, pair;
  };
  std::vector<entry> entries;
  for (const auto& [k, x] : v.dict().entries) {
    const value& sort_on = pos == 0 ? k : x;
    entries.push_back({case_sensitive ? sort_on : lower_if_string(sort_on), value::tuple({k, x})});
  }
  std::stable_sort(entries.begin(), entries.end(), [&](const entry& l, const entry& r) {
    return reverse ? py_less(r.key, l.key) : py_less(l.key, r.key);
  });
  std::vector<value> out;
  for (auto& e : entries) out.push_back(std::move(e.pair));
  return value::list(std::move(out));
}

value f_sort(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("sort", args, {"reverse", "case_sensitive", "attribute"});
  const bool reverse = a.flag(0, false), case_sensitive = a.flag(1, false);
  const auto paths = multi_paths(a.has(2) ? *a.get(2) : value::none());
  struct entry {
    value key, item;
  };
  std::vector<entry> entries;
  for (value& item : ev.items_of(v)) {
    std::vector<value> key;
    for (const auto& path : paths) {
      value k = get_path(ev, item, path);
      key.push_back(case_sensitive ? k : lower_if_string(k));
    }
    entries.push_back({value::list(std::move(key)), std::move(item)});
  }
  std::stable_sort(entries.begin(), entries.end(), [&](const entry& l, const entry& r) {
    return reverse ? py_less(r.key, l.key) : py_less(l.key, r.key);
  });
  std::vector<value> out;
  for (auto& e : entries) out.push_back(std::move(e.item));
  return value::list(std::move(out));
}

value f_unique(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("unique", args, {"case_sensitive", "attribute"});
  const bool case_sensitive = a.flag(0, false);
  std::vector<value> path = attribute_path(a.has(1) ? *a.get(1) : value::none());
  return make_generator([&ev, v, case_sensitive, path = std::move(path)] {
    std::vector<value> seen, out;
    for (value& item : ev.items_of(v)) {
      ev.step();
      value key = get_path(ev, item, path);
      if (!case_sensitive) key = lower_if_string(key);
      if (!is_hashable(key)) raise("unhashable type: '" + type_name(key) + "'");
      if (std::none_of(seen.begin(), seen.end(), [&](const value& s) { return py_equal(s, key); })) {
        seen.push_back(std::move(key));
        out.push_back(std::move(item));
      }
    }
    return out;
  }, "do_unique");
}

value min_max(evaluator& ev, const value& v, call_args& args, bool want_max) {
  arg_binder a(want_max ? "max" : "min", args, {"case_sensitive", "attribute"});
  const bool case_sensitive = a.flag(0, false);
  const std::vector<value> path = attribute_path(a.has(1) ? *a.get(1) : value::none());
  const std::vector<value> items = ev.items_of(v);
  if (items.empty()) {
    auto info = std::make_shared<undefined_info>();
    info->hint = "No aggregated item, sequence was empty.";
    return value::undefined(std::move(info));
  }
  auto key = [&](const value& item) {
    value k = get_path(ev, item, path);
    return case_sensitive ? k : lower_if_string(k);
  };
  std::size_t best = 0;
  value best_key = key(items[0]);
  for (std::size_t i = 1; i < items.size(); ++i) {
    value k = key(items[i]);
    // Python's min/max keep the first of equal items.
    if (want_max ? py_less(best_key, k) : py_less(k, best_key)) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}
value f_min(evaluator& ev, const value& v, call_args& args) { return min_max(ev, v, args, false); }
value f_max(evaluator& ev, const value& v, call_args& args) { return min_max(ev, v, args, true); }

value f_sum(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("sum", args, {"attribute", "start"});
  value total = a.has(1) ? *a.get(1) : value::integer(0);
  if (total.is_string()) raise("sum() can't sum strings [use ''.join(seq) instead]");
  const std::vector<value> path = attribute_path(a.has(0) ? *a.get(0) : value::none());
  for (const value& item : ev.items_of(v)) {
    ev.step();
    total = binary_op("+", total, get_path(ev, item, path));
  }
  return total;
}

value f_reverse(evaluator& ev, const value& v, call_args& args) {
  arg_binder("reverse", args, {});
  if (v.is_string()) {
    std::u32string s = to_u32(v.str());
    std::reverse(s.begin(), s.end());
    return text_value(from_u32(s));
  }
  if (v.is_sequence_like() && v.items().view == list_view::iterator) {
    // reversed() refuses a generator; jinja2 then makes a list and reverses it.
    std::vector<value> items = ev.items_of(v);
    std::reverse(items.begin(), items.end());
    return value::list(std::move(items));
  }
  if (!(v.is_sequence_like() || v.is_dict() || v.is_undefined())) raise("argument must be iterable");
  std::vector<value> items = ev.items_of(v);
  std::reverse(items.begin(), items.end());
  const char* type = v.is_undefined() ? "reversed"
                     : v.is_dict()    ? "dict_reversekeyiterator"
                     : v.type() == kind::tuple ? "reversed"
                                               : "list_reverseiterator";
  return make_iterator(std::move(items), type);
}

value f_batch(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("batch", args, {"linecount", "fill_with"});
  const value& count = a.required(0);
  const value fill = a.has(1) ? *a.get(1) : value::none();
  return make_generator([&ev, v, count, fill] {
    // len(tmp) == linecount is never true for a non-integer count: then all items make one batch.
    const bool integral = count.is_integral();
    const std::int64_t n = integral ? count.as_int() : -1;
    std::vector<value> batches, current;
    for (value& item : ev.items_of(v)) {
      if (integral && static_cast<std::int64_t>(current.size()) == n) {
        batches.push_back(value::list(std::move(current)));
        current.clear();
      }
      current.push_back(std::move(item));
    }
    if (!current.empty()) {
      if (!fill.is_none()) {
        if (!integral) raise("'<' not supported between instances of 'int' and '" + type_name(count) + "'");
        if (n > static_cast<std::int64_t>(max_list_items)) raise("batch size over the limit of " + std::to_string(max_list_items));
        while (static_cast<std::int64_t>(current.size()) < n) current.push_back(fill);
      }
      batches.push_back(value::list(std::move(current)));
    }
    return batches;
  }, "do_batch");
}

std::vector<value> slice_items(evaluator& ev, const value& v, const value& slices_v, const value& fill);

value f_slice(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("slice", args, {"slices", "fill_with"});
  a.required(0);
  const value slices_v = *a.get(0);
  const value fill = a.has(1) ? *a.get(1) : value::none();
  return make_generator([&ev, v, slices_v, fill] { return slice_items(ev, v, slices_v, fill); }, "sync_do_slice");
}

std::vector<value> slice_items(evaluator& ev, const value& v, const value& slices_v, const value& fill) {
  if (!slices_v.is_integral()) raise("'" + type_name(slices_v) + "' object cannot be interpreted as an integer");
  const std::int64_t slices = slices_v.as_int();
  if (slices == 0) raise("integer division or modulo by zero");
  if (slices < 0 || slices > static_cast<std::int64_t>(max_list_items)) raise("slice count out of range");
  const std::vector<value> seq = ev.items_of(v);
  const auto length = static_cast<std::int64_t>(seq.size());
  const std::int64_t per = length / slices, extra = length % slices;
  std::int64_t offset = 0;
  std::vector<value> out;
  for (std::int64_t k = 0; k < slices; ++k) {
    const std::int64_t start = offset + k * per;
    if (k < extra) ++offset;
    const std::int64_t end = offset + (k + 1) * per;
    std::vector<value> part(seq.begin() + start, seq.begin() + end);
    if (!fill.is_none() && k >= extra) part.push_back(fill);
    out.push_back(value::list(std::move(part)));
  }
  return out;
}

value f_attr(evaluator& ev, const value& v, call_args& args) {
  arg_binder a("attr", args, {"name"});
  const std::string name = py_str(a.required(0));
  if (v.is_dict()) {
    bool found = false;
    value m = builtin_attribute(v, name, found);
    if (found) return m;
    auto info = std::make_shared<undefined_info>();
    info->owner = "dict object";
    info->name = py_repr_string(name);
    return value::undefined(std::move(info));
  }
  return ev.attribute(v, name);
}

// map(attribute='x', default=...) or map('filter', args...): a generator, so that its errors
// appear only when something consumes it, as in jinja2.
std::vector<value> map_items(evaluator& ev, const value& v, call_args& args) {
  std::vector<value> out;
  if (!truthy(v)) return out;
  if (args.positional.empty() && args.keyword("attribute")) {
    const value* fallback = args.keyword("default");
    for (const auto& [k, _] : args.keywords)
      if (k != "attribute" && k != "default") raise("Unexpected keyword argument '" + k + "'");
    const std::vector<value> path = attribute_path(*args.keyword("attribute"));
    for (value& item : ev.items_of(v)) out.push_back(get_path(ev, item, path, fallback && !fallback->is_none() ? fallback : nullptr));
    return out;
  }
  if (args.positional.empty()) raise("map requires a filter argument");
  const std::string name = py_str(args.positional.front());
  call_args rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keywords = args.keywords;
  for (value& item : ev.items_of(v)) {
    call_args each = rest;
    out.push_back(ev.filter(name, item, each));
  }
  return out;
}

value f_map(evaluator& ev, const value& v, call_args& args) {
  return make_generator([&ev, v, args]() mutable { return map_items(ev, v, args); }, "sync_do_map");
}

// select / reject / selectattr / rejectattr
std::vector<value> select_items(evaluator& ev, const value& v, call_args& args, bool attr, bool keep_when) {
  if (!truthy(v)) return {};
  std::size_t off = 0;
  std::vector<value> path;
  if (attr) {
    if (args.positional.empty()) raise("Missing parameter for attribute name");
    path = attribute_path(args.positional.front());
    off = 1;
  }
  std::optional<std::string> test;
  call_args test_args;
  if (args.positional.size() > off) {
    test = py_str(args.positional[off]);
    test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(off + 1), args.positional.end());
  }
  test_args.keywords = args.keywords;
  std::vector<value> out;
  for (value& item : ev.items_of(v)) {
    ev.step();
    const value subject = get_path(ev, item, path);
    bool ok;
    if (test) {
      call_args each = test_args;
      ok = ev.test(*test, subject, each);
    } else {
      ok = truthy(subject);
    }
    if (ok == keep_when) out.push_back(std::move(item));
  }
  return out;
}

value select_impl(evaluator& ev, const value& v, call_args& args, bool attr, bool keep_when) {
  return make_generator([&ev, v, args, attr, keep_when]() mutable { return select_items(ev, v, args, attr, keep_when); },
                        "select_or_reject");
}
value f_select(evaluator& ev, const value& v, call_args& a) { return select_impl(ev, v, a, false, true); }
value f_reject(evaluator& ev, const value& v, call_args& a) { return select_impl(ev, v, a, false, false); }
value f_selectattr(evaluator& ev, const value& v, call_args& a) { return select_impl(ev, v, a, true, true); }
value f_rejectattr(evaluator& ev, const value& v, call_args& a) { return select_impl(ev, v, a, true, false); }

constexpr filter_entry filters[] = {
    {"abs", f_abs}, {"attr", f_attr}, {"batch", f_batch}, {"capitalize", f_capitalize}, {"center", f_center},
    {"count", f_length}, {"d", f_default}, {"default", f_default}, {"dictsort", f_dictsort}, {"e", f_escape},
    {"escape", f_escape}, {"filesizeformat", nullptr}, {"first", f_first}, {"float", f_float},
    {"forceescape", f_escape}, {"format", f_format}, {"groupby", nullptr}, {"indent", f_indent}, {"int", f_int},
    {"join", f_join}, {"last", f_last}, {"length", f_length}, {"list", f_list}, {"lower", f_lower},
    {"items", f_items}, {"map", f_map}, {"min", f_min}, {"max", f_max}, {"pprint", nullptr}, {"random", nullptr},
    {"reject", f_reject}, {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse},
    {"round", f_round}, {"safe", f_safe}, {"select", f_select}, {"selectattr", f_selectattr}, {"slice", f_slice},
    {"sort", f_sort}, {"string", f_string}, {"striptags", nullptr}, {"sum", f_sum}, {"title", f_title},
    {"trim", f_trim}, {"truncate", nullptr}, {"unique", f_unique}, {"upper", f_upper}, {"urlencode", nullptr},
    {"urlize", nullptr}, {"wordcount", f_wordcount}, {"wordwrap", nullptr}, {"xmlattr", nullptr},
    {"tojson", f_tojson},
};

}  // namespace

const filter_entry* find_filter(std::string_view name) {
  for (const auto& f : filters)
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace mii::detail::jinja
