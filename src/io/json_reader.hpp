// Typed access to JSON objects with errors that name the file, the field path and the value.
// Internal (src/): simdjson stays out of the public headers.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

namespace mii::detail {

// Parses a whole JSON file or string; keeps the parser alive as long as the document.
class json_document {
 public:
  static json_document from_file(const std::filesystem::path& path);
  static json_document from_string(std::string_view text, std::string origin);

  simdjson::dom::element root() const { return root_; }
  const std::string& origin() const { return origin_; }

 private:
  std::unique_ptr<simdjson::dom::parser> parser_;
  simdjson::padded_string text_;
  simdjson::dom::element root_;
  std::string origin_;
};

// Short rendering of a JSON value for error messages (strings quoted, long values cut).
std::string json_preview(simdjson::dom::element e);
std::string_view json_type_name(simdjson::dom::element e);

class json_object {
 public:
  json_object(simdjson::dom::object obj, std::string origin, std::string path)
      : obj_(obj), origin_(std::move(origin)), path_(std::move(path)) {}
  // Throws unless `e` is an object.
  static json_object expect(simdjson::dom::element e, std::string origin, std::string path);

  // Present and not null.
  bool has(std::string_view key) const;
  std::optional<simdjson::dom::element> raw(std::string_view key) const;

  std::optional<std::int64_t> get_int(std::string_view key) const;
  std::optional<double> get_number(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  // A list of integers, or a single integer taken as a list of one (eos_token_id does both).
  std::optional<std::vector<std::int64_t>> get_int_list(std::string_view key) const;
  std::optional<std::vector<double>> get_number_list(std::string_view key) const;
  std::optional<std::vector<std::string>> get_string_list(std::string_view key) const;
  std::optional<json_object> get_object(std::string_view key) const;

  template <class T>
  T require(std::optional<T> v, std::string_view key) const {
    if (!v) missing(key);
    return *std::move(v);
  }
  [[noreturn]] void missing(std::string_view key) const;
  [[noreturn]] void bad(std::string_view key, std::string_view expected, simdjson::dom::element got) const;
  [[noreturn]] void invalid(std::string_view key, std::string_view why) const;

  std::string field_path(std::string_view key) const;
  const std::string& origin() const { return origin_; }
  simdjson::dom::object object() const { return obj_; }

 private:
  simdjson::dom::object obj_;
  std::string origin_;
  std::string path_;
};

}  // namespace mii::detail
