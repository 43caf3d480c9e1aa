// A minimal JSON reader for the test fixtures (JSON Lines of strings, integers and arrays). The
// tests do not link simdjson (the library keeps it private), and the fixtures are simple.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mii_test {

struct json {
  enum class kind { null, boolean, number, string, array, object } type = kind::null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<json> items;
  std::map<std::string, json> fields;

  const json& operator[](const std::string& key) const {
    auto it = fields.find(key);
    if (it == fields.end()) throw std::runtime_error("json: no field " + key);
    return it->second;
  }
  bool has(const std::string& key) const { return fields.count(key) != 0; }
  std::vector<std::int32_t> ints() const {
    std::vector<std::int32_t> v;
    for (const json& j : items) v.push_back(static_cast<std::int32_t>(j.num));
    return v;
  }
};

class json_parser {
 public:
  explicit json_parser(std::string_view s) : s_(s) {}
  json parse() {
    json v = value();
    ws();
    if (i_ != s_.size()) error("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void error(const char* what) const {
    throw std::runtime_error(std::string("json: ") + what + " at " + std::to_string(i_));
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  static void put_utf8(std::string& out, std::uint32_t c) {
    if (c < 0x80) out += static_cast<char>(c);
    else if (c < 0x800) { out += static_cast<char>(0xC0 | (c >> 6)); out += static_cast<char>(0x80 | (c & 0x3F)); }
    else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  std::uint32_t hex4() {
    if (i_ + 4 > s_.size()) error("short \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else error("bad hex digit");
    }
    return v;
  }
  std::string string() {
    ++i_;  // "
    std::string out;
    while (true) {
      if (i_ >= s_.size()) error("unterminated string");
      const char c = s_[i_++];
      if (c == '"') break;
      if (c != '\\') { out += c; continue; }
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t c1 = hex4();
          if (c1 >= 0xD800 && c1 < 0xDC00 && i_ + 6 <= s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
            i_ += 2;
            const std::uint32_t c2 = hex4();
            c1 = 0x10000 + ((c1 - 0xD800) << 10) + (c2 - 0xDC00);
          }
          put_utf8(out, c1);
          break;
        }
        default: error("bad escape");
      }
    }
    return out;
  }
  json value() {
    ws();
    if (i_ >= s_.size()) error("unexpected end");
    json v;
    const char c = s_[i_];
    if (c == '"') { v.type = json::kind::string; v.str = string(); }
    else if (c == '[') {
      v.type = json::kind::array;
      ++i_;
      ws();
      if (s_[i_] == ']') { ++i_; return v; }
      while (true) {
        v.items.push_back(value());
        ws();
        if (s_[i_] == ',') { ++i_; continue; }
        if (s_[i_] == ']') { ++i_; break; }
        error("expected , or ]");
      }
    } else if (c == '{') {
      v.type = json::kind::object;
      ++i_;
      ws();
      if (s_[i_] == '}') { ++i_; return v; }
      while (true) {
        ws();
        std::string key = string();
        ws();
        if (s_[i_++] != ':') error("expected :");
        v.fields[key] = value();
        ws();
        if (s_[i_] == ',') { ++i_; continue; }
        if (s_[i_] == '}') { ++i_; break; }
        error("expected , or }");
      }
    } else if (s_.substr(i_, 4) == "true") { v.type = json::kind::boolean; v.b = true; i_ += 4; }
    else if (s_.substr(i_, 5) == "false") { v.type = json::kind::boolean; i_ += 5; }
    else if (s_.substr(i_, 4) == "null") { i_ += 4; }
    else {
      v.type = json::kind::number;
      std::size_t used = 0;
      v.num = std::stod(std::string(s_.substr(i_, 32)), &used);
      i_ += used;
    }
    return v;
  }
  std::string_view s_;
  std::size_t i_ = 0;
};

inline json parse_json(std::string_view s) { return json_parser(s).parse(); }

}  // namespace mii_test
