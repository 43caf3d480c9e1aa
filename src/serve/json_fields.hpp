// One JSON object of a request body, read field by field. Every error is a request_error (400)
// that names the field by its path in the body ("messages[1].content") and shows the value.
//
//   field_reader body(doc.root(), "");
//   auto max_tokens = body.take_int("max_tokens");   // nullopt when absent or null
//   ...
//   body.finish();   // a key nobody took: 400 "unknown field 'foo'"
//
// null counts as absent, as the OpenAI API treats it. A key that appears twice is refused:
// which of the two values a server uses is not something a client should have to guess.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

namespace mii::serve {

class field_reader {
 public:
  // `e` must be an object; `path` is where it sits in the body ("" for the body itself).
  field_reader(simdjson::dom::element e, std::string path);

  // Present and not null; marks the key as read.
  std::optional<simdjson::dom::element> take(std::string_view key);
  // Integers: JSON integers, or numbers with no fraction (4096.0), within int64.
  std::optional<std::int64_t> take_int(std::string_view key);
  std::optional<double> take_number(std::string_view key);
  std::optional<bool> take_bool(std::string_view key);
  std::optional<std::string> take_string(std::string_view key);
  // A string or a list of strings (OpenAI's `stop`), as a list.
  std::optional<std::vector<std::string>> take_string_or_list(std::string_view key);

  // Refuses the first key (in body order) that no take*() asked for.
  void finish() const;

  // "max_tokens" at the top level, "messages[2].role" below it.
  std::string param(std::string_view key) const;
  const std::string& path() const { return path_; }
  [[noreturn]] void wrong_type(std::string_view key, std::string_view expected, simdjson::dom::element got) const;
  // 400 "'<param>' <what>" naming the field.
  [[noreturn]] void invalid(std::string_view key, std::string_view what) const;

 private:
  simdjson::dom::object obj_;
  std::string path_;
  std::vector<std::string> taken_;
};

// A field's value for an error message: strings quoted, long values cut ("[1,2,3,...").
std::string preview(simdjson::dom::element e);
// "string", "integer", "array"...
std::string_view type_name(simdjson::dom::element e);
// An integer value (exact, within int64), or nullopt.
std::optional<std::int64_t> as_int(simdjson::dom::element e);

}  // namespace mii::serve
