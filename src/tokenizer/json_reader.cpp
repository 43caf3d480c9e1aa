#include "tokenizer/json_reader.hpp"

namespace mii::detail::tok {

std::string json_value::preview() const {
  std::string text = simdjson::minify(element_);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

std::string_view json_value::kind() const {
  switch (element_.type()) {
    case simdjson::dom::element_type::ARRAY: return "array";
    case simdjson::dom::element_type::OBJECT: return "object";
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE: return "number";
    case simdjson::dom::element_type::STRING: return "string";
    case simdjson::dom::element_type::BOOL: return "boolean";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
  }
  return "value";
}

void json_value::fail_type(std::string_view expected) const {
  fail("expected ", expected, ", got ", kind(), " ", preview());
}

std::string_view json_value::as_string() const {
  std::string_view s;
  if (element_.get_string().get(s) != simdjson::SUCCESS) fail_type("a string");
  return s;
}

bool json_value::as_bool() const {
  bool b;
  if (element_.get_bool().get(b) != simdjson::SUCCESS) fail_type("true or false");
  return b;
}

std::int64_t json_value::as_int() const {
  std::int64_t v;
  if (element_.get_int64().get(v) == simdjson::SUCCESS) return v;
  double d;
  // 9.2e18 keeps the conversion below defined (|d| < 2^63).
  if (element_.get_double().get(d) == simdjson::SUCCESS && d > -9.2e18 && d < 9.2e18 &&
      d == static_cast<double>(static_cast<std::int64_t>(d)))
    return static_cast<std::int64_t>(d);
  fail_type("an integer");
}

double json_value::as_number() const {
  double d;
  if (element_.get_double().get(d) == simdjson::SUCCESS) return d;
  std::int64_t v;
  if (element_.get_int64().get(v) == simdjson::SUCCESS) return static_cast<double>(v);
  fail_type("a number");
}

simdjson::dom::array json_value::array() const {
  simdjson::dom::array a;
  if (element_.get_array().get(a) != simdjson::SUCCESS) fail_type("an array");
  return a;
}

simdjson::dom::object json_value::object() const {
  simdjson::dom::object o;
  if (element_.get_object().get(o) != simdjson::SUCCESS) fail_type("an object");
  return o;
}

json_value json_value::at(std::string_view key) const {
  const simdjson::dom::object obj = object();
  for (auto field : obj) {
    if (field.key == key) {
      json_value v(field.value, *origin_, child_path(key));
      if (v.is_null()) v.fail("required field is null");
      return v;
    }
  }
  fail("missing required field '", key, "' in ", preview());
}

std::optional<json_value> json_value::find(std::string_view key) const {
  const simdjson::dom::object obj = object();
  for (auto field : obj) {
    if (field.key == key) {
      if (field.value.is_null()) return std::nullopt;
      return json_value(field.value, *origin_, child_path(key));
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> json_value::optional_string(std::string_view key) const {
  if (auto v = find(key)) return v->as_string();
  return std::nullopt;
}

bool json_value::bool_or(std::string_view key, bool fallback) const {
  if (auto v = find(key)) return v->as_bool();
  return fallback;
}

std::int64_t json_value::int_or(std::string_view key, std::int64_t fallback) const {
  if (auto v = find(key)) return v->as_int();
  return fallback;
}

std::size_t json_value::array_size() const { return array().size(); }

json_value json_value::element(std::size_t index) const {
  simdjson::dom::element e;
  if (array().at(index).get(e) != simdjson::SUCCESS) fail("no element ", index);
  return json_value(e, *origin_, index_path(index));
}

}  // namespace mii::detail::tok
