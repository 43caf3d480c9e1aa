#include "serve/json_fields.hpp"

#include <algorithm>
#include <cmath>

#include "io/json_reader.hpp"
#include "serve/request_error.hpp"

namespace mii::serve {

std::string preview(simdjson::dom::element e) { return detail::json_preview(e); }
std::string_view type_name(simdjson::dom::element e) { return detail::json_type_name(e); }

std::optional<std::int64_t> as_int(simdjson::dom::element e) {
  if (e.is_int64()) return std::int64_t(e);
  if (e.is_double()) {
    const double d = double(e);
    // Range first: converting a double outside int64 (1e30) to an integer is undefined.
    if (d >= -9.2e18 && d <= 9.2e18 && d == std::trunc(d)) return std::int64_t(d);
  }
  return std::nullopt;
}

field_reader::field_reader(simdjson::dom::element e, std::string path) : path_(std::move(path)) {
  if (e.get(obj_)) {
    if (path_.empty())
      throw request_error(400, "the request body must be a JSON object, got " + std::string(type_name(e)) + " " +
                                   preview(e));
    throw request_error(400, "'" + path_ + "' must be a JSON object, got " + std::string(type_name(e)) + " " + preview(e),
                        path_);
  }
  std::vector<std::string_view> keys;
  for (auto field : obj_) keys.push_back(field.key);
  std::vector<std::string_view> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end())
    throw request_error(400, "'" + param(*dup) + "' appears more than once in the request; give it once", param(*dup));
}

std::string field_reader::param(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void field_reader::wrong_type(std::string_view key, std::string_view expected, simdjson::dom::element got) const {
  throw request_error(400, "'" + param(key) + "' must be " + std::string(expected) + ", got " +
                               std::string(type_name(got)) + " " + preview(got),
                      param(key));
}

void field_reader::invalid(std::string_view key, std::string_view what) const {
  throw request_error(400, "'" + param(key) + "' " + std::string(what), param(key));
}

std::optional<simdjson::dom::element> field_reader::take(std::string_view key) {
  taken_.emplace_back(key);
  simdjson::dom::element e;
  if (obj_.at_key(key).get(e) || e.is_null()) return std::nullopt;
  return e;
}

std::optional<std::int64_t> field_reader::take_int(std::string_view key) {
  const auto e = take(key);
  if (!e) return std::nullopt;
  if (auto v = as_int(*e)) return v;
  wrong_type(key, "an integer", *e);
}

std::optional<double> field_reader::take_number(std::string_view key) {
  const auto e = take(key);
  if (!e) return std::nullopt;
  if (e->is_int64()) return double(std::int64_t(*e));
  if (e->is_uint64()) return double(std::uint64_t(*e));
  if (e->is_double()) return double(*e);
  wrong_type(key, "a number", *e);
}

std::optional<bool> field_reader::take_bool(std::string_view key) {
  const auto e = take(key);
  if (!e) return std::nullopt;
  if (e->is_bool()) return bool(*e);
  wrong_type(key, "true or false", *e);
}

std::optional<std::string> field_reader::take_string(std::string_view key) {
  const auto e = take(key);
  if (!e) return std::nullopt;
  if (e->is_string()) return std::string(std::string_view(*e));
  wrong_type(key, "a string", *e);
}

std::optional<std::vector<std::string>> field_reader::take_string_or_list(std::string_view key) {
  const auto e = take(key);
  if (!e) return std::nullopt;
  if (e->is_string()) return std::vector<std::string>{std::string(std::string_view(*e))};
  simdjson::dom::array arr;
  if (e->get(arr)) wrong_type(key, "a string or a list of strings", *e);
  std::vector<std::string> out;
  std::size_t i = 0;
  for (simdjson::dom::element x : arr) {
    if (!x.is_string()) {
      const std::string p = param(key) + "[" + std::to_string(i) + "]";
      throw request_error(400, "'" + p + "' must be a string, got " + std::string(type_name(x)) + " " + preview(x), p);
    }
    out.emplace_back(std::string_view(x));
    ++i;
  }
  return out;
}

void field_reader::finish() const {
  for (auto field : obj_) {
    if (std::find(taken_.begin(), taken_.end(), field.key) != taken_.end()) continue;
    throw request_error(400,
                        "unknown field '" + param(field.key) +
                            "': mii-serve refuses parameters it does not know rather than ignore them "
                            "(docs/serving.md lists the supported ones)",
                        param(field.key));
  }
}

}  // namespace mii::serve
