#include "io/json_reader.hpp"

#include <cmath>

#include <mii/error.hpp>

namespace mii::detail {

json_document json_document::from_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(path.string(), ": file not found");
  simdjson::padded_string text;
  if (auto err = simdjson::padded_string::load(path.string()).get(text))
    fail(path.string(), ": cannot read: ", simdjson::error_message(err));
  json_document doc;
  doc.origin_ = path.string();
  doc.text_ = std::move(text);
  doc.parser_ = std::make_unique<simdjson::dom::parser>();
  if (auto err = doc.parser_->parse(doc.text_).get(doc.root_))
    fail(doc.origin_, ": malformed JSON: ", simdjson::error_message(err));
  return doc;
}

json_document json_document::from_string(std::string_view text, std::string origin) {
  json_document doc;
  doc.origin_ = std::move(origin);
  doc.text_ = simdjson::padded_string(text);
  doc.parser_ = std::make_unique<simdjson::dom::parser>();
  if (auto err = doc.parser_->parse(doc.text_).get(doc.root_))
    fail(doc.origin_, ": malformed JSON: ", simdjson::error_message(err));
  return doc;
}

std::string_view json_type_name(simdjson::dom::element e) {
  using t = simdjson::dom::element_type;
  switch (e.type()) {
    case t::ARRAY: return "array";
    case t::OBJECT: return "object";
    case t::INT64:
    case t::UINT64: return "integer";
    case t::DOUBLE: return "number";
    case t::STRING: return "string";
    case t::BOOL: return "boolean";
    case t::NULL_VALUE: return "null";
  }
  return "value";
}

std::string json_preview(simdjson::dom::element e) {
  std::string s = simdjson::minify(e);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

json_object json_object::expect(simdjson::dom::element e, std::string origin, std::string path) {
  simdjson::dom::object obj;
  if (e.get(obj))
    fail(origin, ": ", path.empty() ? std::string("top level") : "field '" + path + "'",
         " must be a JSON object, got ", json_type_name(e), " ", json_preview(e));
  return json_object(obj, std::move(origin), std::move(path));
}

std::string json_object::field_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void json_object::missing(std::string_view key) const {
  fail(origin_, ": required field '", field_path(key), "' is missing");
}

void json_object::bad(std::string_view key, std::string_view expected, simdjson::dom::element got) const {
  fail(origin_, ": field '", field_path(key), "' must be ", expected, ", got ", json_type_name(got), " ",
       json_preview(got));
}

void json_object::invalid(std::string_view key, std::string_view why) const {
  fail(origin_, ": field '", field_path(key), "' ", why);
}

std::optional<simdjson::dom::element> json_object::raw(std::string_view key) const {
  simdjson::dom::element e;
  if (obj_.at_key(key).get(e) || e.is_null()) return std::nullopt;
  return e;
}

bool json_object::has(std::string_view key) const { return raw(key).has_value(); }

std::optional<std::int64_t> json_object::get_int(std::string_view key) const {
  auto e = raw(key);
  if (!e) return std::nullopt;
  if (e->is_int64()) return std::int64_t(*e);
  if (e->is_uint64()) bad(key, "an integer that fits in 64 bits", *e);
  // Integers written as 4096.0 by some tools are accepted when exact.
  if (e->is_double()) {
    const double d = double(*e);
    // Range first: converting a double outside int64 (1e30) to an integer is undefined.
    if (d >= -9.2e18 && d <= 9.2e18 && d == std::trunc(d)) return std::int64_t(d);
  }
  bad(key, "an integer", *e);
}

std::optional<double> json_object::get_number(std::string_view key) const {
  auto e = raw(key);
  if (!e) return std::nullopt;
  if (e->is_number()) {
    double d;
    if (!e->get_double().get(d)) return d;
    if (e->is_int64()) return double(std::int64_t(*e));
    return double(std::uint64_t(*e));
  }
  bad(key, "a number", *e);
}

std::optional<bool> json_object::get_bool(std::string_view key) const {
  auto e = raw(key);
  if (!e) return std::nullopt;
  if (e->is_bool()) return bool(*e);
  bad(key, "true or false", *e);
}

std::optional<std::string> json_object::get_string(std::string_view key) const {
  auto e = raw(key);
  if (!e) return std::nullopt;
  if (e->is_string()) return std::string(std::string_view(*e));
  bad(key, "a string", *e);
}

std::optional<std::vector<std::int64_t>> json_object::get_int_list(std::string_view key) const {
  auto e = raw(key);
  if (!e) return std::nullopt;
  if (e->is_int64()) return std::vector<std::int64_t>{std::int64_t(*e)};
  simdjson::dom::array arr;
  if (e->get(arr)) bad(key, "an integer or a list of integers", *e);
  std::vector<std::int64_t> out;
  for (simdjson::dom::element x : arr) {
    if (!x.is_int64()) bad(key, "a list of integers", *e);
    out.push_back(std::int64_t(x));
  }
  return out;
}

std::optional<std::vector<double>> json_object::get_number_list(std::string_view key) const {
  auto e = raw(key);
  if (!e) return std::nullopt;
  simdjson::dom::array arr;
  if (e->get(arr)) bad(key, "a list of numbers", *e);
  std::vector<double> out;
  for (simdjson::dom::element x : arr) {
    double d;
    if (x.is_int64()) {
      d = double(std::int64_t(x));
    } else if (x.get_double().get(d)) {
      bad(key, "a list of numbers", *e);
    }
    out.push_back(d);
  }
  return out;
}

std::optional<std::vector<std::string>> json_object::get_string_list(std::string_view key) const {
  auto e = raw(key);
  if (!e) return std::nullopt;
  simdjson::dom::array arr;
  if (e->get(arr)) bad(key, "a list of strings", *e);
  std::vector<std::string> out;
  for (simdjson::dom::element x : arr) {
    if (!x.is_string()) bad(key, "a list of strings", *e);
    out.emplace_back(std::string_view(x));
  }
  return out;
}

std::optional<json_object> json_object::get_object(std::string_view key) const {
  auto e = raw(key);
  if (!e) return std::nullopt;
  return expect(*e, origin_, field_path(key));
}

}  // namespace mii::detail
