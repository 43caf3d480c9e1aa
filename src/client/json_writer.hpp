// A small JSON writer: the HTTP server's responses (src/serve) and mii::client's request bodies.
// Reading JSON stays with the one reader, io/json_reader.hpp.
//
//   json_writer w;
//   w.begin_object().key("text").value(piece).key("index").value(0).end_object();
//   send(w.str());
//
// Strings are written as UTF-8 with quotes, backslashes and control characters escaped. Bytes
// that are not valid UTF-8 (a model's partial character, a bug upstream) become U+FFFD, so the
// output always parses, whatever it was given.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mii::detail {

// Appends `s` as a JSON string literal (quotes included).
void append_json_string(std::string& out, std::string_view s);

class json_writer {
 public:
  json_writer& begin_object() { return open('{'); }
  json_writer& end_object() { return close('}'); }
  json_writer& begin_array() { return open('['); }
  json_writer& end_array() { return close(']'); }
  // In an object: the next value's key.
  json_writer& key(std::string_view k);

  json_writer& value(std::string_view s);
  json_writer& value(const std::string& s) { return value(std::string_view(s)); }
  json_writer& value(const char* s) { return value(std::string_view(s)); }
  json_writer& value(bool b);
  json_writer& value(std::int64_t v);
  json_writer& value(int v) { return value(std::int64_t(v)); }
  json_writer& value(std::uint64_t v);
  // NaN and infinities have no JSON spelling: they are written as null.
  json_writer& value(double v);
  json_writer& null();
  // Text that already is one JSON value (e.g. simdjson::minify of a parsed element).
  json_writer& raw(std::string_view json);

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  json_writer& open(char c);
  json_writer& close(char c);
  void before_value();

  std::string out_;
  std::vector<bool> has_items_;  // per open container: something was written in it already
  bool after_key_ = false;
};

}  // namespace mii::detail
