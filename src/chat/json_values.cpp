#include "chat/json_values.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <mii/error.hpp>

#include "chat/py_text.hpp"

namespace mii::detail::jinja {

std::string widen_big_integers(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 16);
  bool in_string = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < json.size()) out.push_back(json[++i]);
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out.push_back(c);
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      std::size_t j = i + (c == '-' ? 1 : 0);
      const std::size_t digits_start = j;
      while (j < json.size() && json[j] >= '0' && json[j] <= '9') ++j;
      out.append(json.substr(i, j - i));
      const bool integer = !(j < json.size() && (json[j] == '.' || json[j] == 'e' || json[j] == 'E'));
      if (integer && j - digits_start > 18) out += ".0";  // may not fit in 64 bits: read as a float
      i = j - 1;
      continue;
    }
    out.push_back(c);
  }
  return out;
}

value from_json(simdjson::dom::element e, const std::string& origin) {
  using t = simdjson::dom::element_type;
  switch (e.type()) {
    case t::NULL_VALUE: return value::none();
    case t::BOOL: return value::boolean(bool(e.get_bool()));
    case t::INT64: return value::integer(std::int64_t(e.get_int64()));
    case t::UINT64:
      fail(origin, ": the integer ", std::uint64_t(e.get_uint64()),
           " does not fit in 64 bits signed (mii's template integers are 64-bit)");
    case t::DOUBLE: return value::floating(double(e.get_double()));
    case t::STRING: return value::string(std::string(std::string_view(e.get_string())));
    case t::ARRAY: {
      std::vector<value> items;
      for (simdjson::dom::element item : simdjson::dom::array(e)) items.push_back(from_json(item, origin));
      return value::list(std::move(items));
    }
    case t::OBJECT: {
      auto d = std::make_shared<dict_data>();
      for (auto field : simdjson::dom::object(e)) d->set(value::string(std::string(field.key)), from_json(field.value, origin));
      return value::dict(std::move(d));
    }
  }
  return {};
}

namespace {

class json_writer {
 public:
  explicit json_writer(const json_dump_options& o) : o_(o) {}

  void write(const value& v, int level) {
    value_depth_guard depth;
    if (out.size() > max_string_bytes)
      raise("tojson makes more than the limit of " + std::to_string(max_string_bytes) + " bytes");
    switch (v.type()) {
      case kind::none: out += "null"; return;
      case kind::boolean: out += v.as_bool() ? "true" : "false"; return;
      case kind::integer: out += std::to_string(v.as_int()); return;
      case kind::floating: out += float_text(v.as_float()); return;
      case kind::string: write_string(v.str()); return;
      case kind::list:
        if (v.items().view != list_view::plain) break;
        [[fallthrough]];
      case kind::tuple: write_array(v.items().items, level); return;
      case kind::dict: write_object(v.dict(), level); return;
      default: break;
    }
    raise("Object of type " + type_name(v) + " is not JSON serializable");
  }

  std::string out;

 private:
  static std::string float_text(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    return py_float_repr(d);
  }

  void write_string(std::string_view s) {
    out.push_back('"');
    for (std::size_t i = 0; i < s.size();) {
      const char32_t c = next_char(s, i);
      switch (c) {
        case '"': out += "\\\""; continue;
        case '\\': out += "\\\\"; continue;
        case '\n': out += "\\n"; continue;
        case '\r': out += "\\r"; continue;
        case '\t': out += "\\t"; continue;
        case '\b': out += "\\b"; continue;
        case '\f': out += "\\f"; continue;
        default: break;
      }
      char buf[16];
      if (c < 0x20 || (o_.ensure_ascii && c >= 0x7F)) {
        if (c >= 0x10000) {
          const char32_t v = c - 0x10000;
          std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 | (v >> 10)),
                        static_cast<unsigned>(0xDC00 | (v & 0x3FF)));
        } else {
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
        }
        out += buf;
      } else {
        append_char(out, c);
      }
    }
    out.push_back('"');
  }

  void newline(int level) {
    out.push_back('\n');
    for (int i = 0; i < level; ++i) {
      out += *o_.indent;
      if (out.size() > max_string_bytes)
        raise("tojson makes more than the limit of " + std::to_string(max_string_bytes) + " bytes");
    }
  }

  void write_array(const std::vector<value>& items, int level) {
    if (items.empty()) {
      out += "[]";
      return;
    }
    out.push_back('[');
    if (o_.indent) newline(level + 1);
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i) {
        out += o_.item_separator;
        if (o_.indent) newline(level + 1);
      }
      write(items[i], level + 1);
    }
    if (o_.indent) newline(level);
    out.push_back(']');
  }

  std::string key_text(const value& k) {
    switch (k.type()) {
      case kind::string: return k.str();
      case kind::boolean: return k.as_bool() ? "true" : "false";
      case kind::none: return "null";
      case kind::integer: return std::to_string(k.as_int());
      case kind::floating: return float_text(k.as_float());
      default: raise("keys must be str, int, float, bool or None, not " + type_name(k));
    }
  }

  void write_object(const dict_data& d, int level) {
    if (d.entries.empty()) {
      out += "{}";
      return;
    }
    std::vector<const std::pair<value, value>*> entries;
    for (const auto& e : d.entries) entries.push_back(&e);
    if (o_.sort_keys)
      std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return py_less(a->first, b->first); });
    out.push_back('{');
    if (o_.indent) newline(level + 1);
    bool first = true;
    for (const auto* e : entries) {
      if (!first) {
        out += o_.item_separator;
        if (o_.indent) newline(level + 1);
      }
      first = false;
      write_string(key_text(e->first));
      out += o_.key_separator;
      write(e->second, level + 1);
    }
    if (o_.indent) newline(level);
    out.push_back('}');
  }

  const json_dump_options& o_;
};

}  // namespace

std::string json_dumps(const value& v, const json_dump_options& options) {
  json_writer w(options);
  w.write(v, 0);
  return std::move(w.out);
}

}  // namespace mii::detail::jinja
