// Server-sent events framing (the WHATWG "text/event-stream" format) as OpenAI streams use it:
// each event is one "data: <json>" line and a blank line; the stream ends with "data: [DONE]".
// The JSON writer never emits a raw newline (it escapes them), so one line holds one event.
#pragma once
#include <string>
#include <string_view>

namespace mii::serve {

inline std::string sse_event(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 8);
  out += "data: ";
  out += json;
  out += "\n\n";
  return out;
}

inline constexpr std::string_view sse_done = "data: [DONE]\n\n";

}  // namespace mii::serve
