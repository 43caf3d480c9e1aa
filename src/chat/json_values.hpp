// JSON <-> template values. In: the caller's variables and the special tokens, read with the
// project's JSON reader and kept in document order (Python's json.loads keeps it too; a
// duplicated key keeps its first position and its last value, as a dict assignment does).
// Out: Python's json.dumps, which is what transformers' tojson filter calls.
#pragma once
#include <optional>
#include <string>

#include <simdjson.h>

#include "chat/value.hpp"

namespace mii::detail::jinja {

// tokenizer_config.json files carry integers past 64 bits (model_max_length is often
// 1000000000000000019884624838656), which the JSON reader (simdjson 3.0) refuses. Rewrites such
// integer literals outside strings as floats, so that the rest of the file can be read.
std::string widen_big_integers(std::string_view json);

// Throws mii::error naming `origin` for numbers mii cannot hold (integers past 64 bits).
value from_json(simdjson::dom::element e, const std::string& origin);

struct json_dump_options {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // null: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};

// json.dumps(v, ...) with Python's spelling of floats (repr), NaN/Infinity, escapes and layout.
std::string json_dumps(const value& v, const json_dump_options& options);

}  // namespace mii::detail::jinja
