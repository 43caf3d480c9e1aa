// Thin wrapper over the simdjson DOM that remembers where each value sits in tokenizer.json, so
// that every error names the file, the field path (e.g. `model.merges[12]`) and the bad value.
// Internal: only src/ includes this (simdjson must stay out of the public headers).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <simdjson.h>

#include "mii/error.hpp"

namespace mii::detail::tok {

class json_value {
 public:
  json_value(simdjson::dom::element element, const std::string& origin, std::string path = {})
      : element_(element), origin_(&origin), path_(std::move(path)) {}

  // The path of this value from the document root, e.g. "pre_tokenizer.pretokenizers[1].type".
  std::string path() const { return path_.empty() ? std::string("<root>") : path_; }
  std::string child_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  std::string index_path(std::size_t index) const {
    return path_ + "[" + std::to_string(index) + "]";
  }
  // A short JSON rendering of the value, for error messages.
  std::string preview() const;
  // "string", "number", "boolean", "null", "array", "object".
  std::string_view kind() const;

  bool is_null() const { return element_.is_null(); }
  bool is_string() const { return element_.is_string(); }
  bool is_array() const { return element_.is_array(); }
  bool is_object() const { return element_.is_object(); }

  std::string_view as_string() const;
  bool as_bool() const;
  std::int64_t as_int() const;
  double as_number() const;

  // A required member of an object: fails naming the field when absent (or null unless
  // `allow_null`).
  json_value at(std::string_view key) const;
  // An optional member: nullopt when absent or null.
  std::optional<json_value> find(std::string_view key) const;
  std::string_view string_at(std::string_view key) const { return at(key).as_string(); }
  std::optional<std::string_view> optional_string(std::string_view key) const;
  bool bool_or(std::string_view key, bool fallback) const;
  std::int64_t int_or(std::string_view key, std::int64_t fallback) const;

  std::size_t array_size() const;
  json_value element(std::size_t index) const;  // index < array_size()
  template <class F>
  void for_each_element(F&& f) const {
    const simdjson::dom::array arr = array();
    std::size_t index = 0;
    for (simdjson::dom::element e : arr) {
      f(json_value(e, *origin_, index_path(index)));
      ++index;
    }
  }
  template <class F>
  void for_each_field(F&& f) const {
    const simdjson::dom::object obj = object();
    for (auto field : obj) f(field.key, json_value(field.value, *origin_, child_path(field.key)));
  }

  simdjson::dom::element raw() const { return element_; }
  simdjson::dom::array array() const;
  simdjson::dom::object object() const;
  const std::string& origin() const { return *origin_; }

  // Throws mii::error "<file>: field '<path>': <message>".
  template <class... Args>
  [[noreturn]] void fail(Args&&... message) const {
    mii::fail(*origin_, ": field '", path(), "': ", std::forward<Args>(message)...);
  }
  [[noreturn]] void fail_type(std::string_view expected) const;

 private:
  simdjson::dom::element element_;
  const std::string* origin_;
  std::string path_;  // empty for the document root
};

}  // namespace mii::detail::tok
