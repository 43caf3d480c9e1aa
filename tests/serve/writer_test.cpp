// The JSON writer (every answer goes through it), SSE framing, the response shapes and the
// Prometheus text: checked by parsing the output back with the project's JSON reader (simdjson)
// and against the exposition format's rules.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "client/json_writer.hpp"
#include "io/json_reader.hpp"
#include "serve/metrics.hpp"
#include "serve/responses.hpp"
#include "serve/sse.hpp"
#include "test_files.hpp"

using mii::detail::json_writer;
using Catch::Matchers::Contains;

namespace {

std::string json_string(std::string_view s) {
  std::string out;
  mii::detail::append_json_string(out, s);
  return out;
}

// Parses `json` (a string literal) back; what simdjson reads.
std::string read_back(const std::string& json) {
  const auto doc = mii::detail::json_document::from_string(json, "written");
  return std::string(std::string_view(doc.root()));
}

std::string hex(std::string_view bytes) {
  std::string out;
  char buf[4];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02x ", c);
    out += buf;
  }
  return out;
}

}  // namespace

TEST_CASE("strings: escapes, UTF-8 kept, invalid bytes replaced", "[serve][json]") {
  CHECK(json_string("plain") == "\"plain\"");
  CHECK(json_string("q\"b\\") == R"("q\"b\\")");
  CHECK(json_string("a\nb\tc\r\b\f") == R"("a\nb\tc\r\b\f")");
  CHECK(json_string(std::string("\x01\x1f\x7f", 3)) == R"("\u0001\u001f\u007f")");
  CHECK(json_string(std::string("nul\0end", 7)) == R"("nul\u0000end")");
  CHECK(json_string("héllo 世界 🙂") == "\"héllo 世界 🙂\"");
  // A model's partial character, a lone continuation byte, overlong forms, surrogates, > U+10FFFF.
  const std::string replacement = "\xEF\xBF\xBD";
  CHECK(json_string("ab\xE4\xB8") == "\"ab" + replacement + replacement + "\"");
  CHECK(json_string("\x80") == "\"" + replacement + "\"");
  CHECK(json_string("\xC0\xAF") == "\"" + replacement + replacement + "\"");
  CHECK(json_string("\xED\xA0\x80") == "\"" + replacement + replacement + replacement + "\"");
  CHECK(json_string("\xF4\x90\x80\x80") == "\"" + replacement + replacement + replacement + replacement + "\"");
  CHECK(json_string("ok\xF0\x9F\x99") == "\"ok" + replacement + replacement + replacement + "\"");
}

TEST_CASE("any bytes at all make a JSON string that parses back to the valid UTF-8 they hold", "[serve][json]") {
  const auto seed = mii::test::test_seed("json_writer bytes");
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(rng() % 24, '\0');
    for (auto& b : bytes) b = char(rng() % 4 == 0 ? rng() % 0x20 : rng() % 256);
    const std::string json = json_string(bytes);
    INFO("bytes: " << hex(bytes));
    std::string back;
    REQUIRE_NOTHROW(back = read_back(json));
    // Valid UTF-8 comes back unchanged; anything else comes back as valid UTF-8 (simdjson checks).
    if (simdjson::validate_utf8(bytes.data(), bytes.size())) CHECK(back == bytes);
  }
}

TEST_CASE("objects and arrays: commas, nesting, numbers, raw values", "[serve][json]") {
  json_writer w;
  w.begin_object();
  w.key("a").value(1).key("b").begin_array().value(true).value(false).null().end_array();
  w.key("c").begin_object().end_object().key("d").value(0.25).key("e").value(std::nan(""));
  w.key("f").raw(R"({"x":[1]})").key("g").value(std::uint64_t(18446744073709551615ull)).key("h").value(std::int64_t(-3));
  w.end_object();
  CHECK(w.str() == R"({"a":1,"b":[true,false,null],"c":{},"d":0.25,"e":null,"f":{"x":[1]},"g":18446744073709551615,"h":-3})");
  CHECK_NOTHROW(mii::detail::json_document::from_string(w.str(), "written"));
  json_writer list;
  list.begin_array().begin_object().key("k").value("v").end_object().begin_object().end_object().end_array();
  CHECK(list.str() == R"([{"k":"v"},{}])");
  json_writer d;
  d.begin_array().value(0.1).value(1e300).value(-2.5e-8).end_array();
  const auto doc = mii::detail::json_document::from_string(d.str(), "numbers");
  simdjson::dom::array arr = doc.root();
  CHECK(double(arr.at(0)) == 0.1);
  CHECK(double(arr.at(1)) == 1e300);
  CHECK(double(arr.at(2)) == -2.5e-8);
}

TEST_CASE("SSE framing: one data line per event, [DONE] last", "[serve][sse]") {
  CHECK(mii::serve::sse_event(R"({"a":1})") == "data: {\"a\":1}\n\n");
  CHECK(mii::serve::sse_done == "data: [DONE]\n\n");
  // Text with newlines stays on one line: the writer escapes them.
  const mii::serve::openai_meta m{.id = "cmpl-1", .created = 5, .model = "demo"};
  const std::string event = mii::serve::sse_event(
      mii::serve::completion_chunk_json(m, 0, "line one\nline two\n\n", mii::generation_finish_reason::none, false));
  CHECK(event.find('\n') == event.size() - 2);
}

TEST_CASE("OpenAI shapes", "[serve][json]") {
  using namespace mii::serve;
  const openai_meta m{.id = "chatcmpl-7", .created = 1700000000, .model = "demo"};
  CHECK(chat_completion_json(m, {{.index = 0, .text = "Hi", .finish_reason = mii::generation_finish_reason::stop}},
                             {.prompt_tokens = 3, .completion_tokens = 2}) ==
        R"({"id":"chatcmpl-7","object":"chat.completion","created":1700000000,"model":"demo","choices":[{"index":0,)"
        R"("message":{"role":"assistant","content":"Hi"},"logprobs":null,"finish_reason":"stop"}],)"
        R"("usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})");
  CHECK(chat_chunk_json(m, 0, "assistant", "", mii::generation_finish_reason::none, true) ==
        R"({"id":"chatcmpl-7","object":"chat.completion.chunk","created":1700000000,"model":"demo","choices":[{"index":0,)"
        R"("delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null})");
  CHECK(chat_chunk_json(m, 1, std::nullopt, std::nullopt, mii::generation_finish_reason::length, false) ==
        R"({"id":"chatcmpl-7","object":"chat.completion.chunk","created":1700000000,"model":"demo","choices":[{"index":1,)"
        R"("delta":{},"logprobs":null,"finish_reason":"length"}]})");
  CHECK(usage_chunk_json(m, "chat.completion.chunk", {.prompt_tokens = 1, .completion_tokens = 1}) ==
        R"({"id":"chatcmpl-7","object":"chat.completion.chunk","created":1700000000,"model":"demo","choices":[],)"
        R"("usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})");
  CHECK(error_json(400, "bad \"x\"", "max_tokens") ==
        R"({"error":{"message":"bad \"x\"","type":"invalid_request_error","param":"max_tokens","code":null}})");
  CHECK(error_json(503, "busy") == R"({"error":{"message":"busy","type":"server_error","param":null,"code":null}})");
  CHECK(model_list_json("demo", 1, 2048) ==
        R"({"object":"list","data":[{"id":"demo","object":"model","created":1,"owned_by":"mii","max_model_len":2048}]})");
  mii::response r;
  r.generated_text = "text";
  r.prompt_length = 4;
  r.generated_length = 2;
  r.finish_reason = mii::generation_finish_reason::length;
  r.token_ids = {1, 2};
  // MII's Response(**dict) takes exactly these four keys.
  CHECK(mii_response_list_json({r}) ==
        R"([{"generated_text":"text","prompt_length":4,"generated_length":2,"finish_reason":"length"}])");
}

TEST_CASE("Prometheus text: HELP and TYPE for every family, cumulative buckets, escaped labels", "[serve][metrics]") {
  mii::serve::server_metrics m;
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 200);
  m.count_request("odd\"label\\\n", 404);
  mii::request_timing t;
  t.submitted = std::chrono::steady_clock::now();
  t.first_token = t.submitted + std::chrono::milliseconds(30);
  t.finished = t.first_token + std::chrono::milliseconds(90);
  m.observe_request(t, 10);  // 10 ms per token after the first
  mii::engine_stats e;
  e.waiting = 3;
  e.running = 2;
  e.kv_blocks_used = 7;
  e.kv_blocks_total = 64;
  e.prompt_tokens = 100;
  e.generated_tokens = 50;
  e.host_gap_seconds = 0.25;
  e.host_gaps = 40;
  const std::string text = m.prometheus_text(e, 5);
  CHECK_THAT(text, Contains("mii_http_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2\n"));
  CHECK_THAT(text, Contains("mii_http_requests_total{endpoint=\"odd\\\"label\\\\\\n\",status=\"404\"} 1\n"));
  CHECK_THAT(text, Contains("mii_requests_waiting 3\n"));
  CHECK_THAT(text, Contains("mii_requests_running 2\n"));
  CHECK_THAT(text, Contains("mii_kv_blocks_used 7\n"));
  CHECK_THAT(text, Contains("mii_kv_blocks_total 64\n"));
  CHECK_THAT(text, Contains("mii_requests_in_flight 5\n"));
  CHECK_THAT(text, Contains("mii_prompt_tokens_total 100\n"));
  CHECK_THAT(text, Contains("mii_generation_tokens_total 50\n"));
  CHECK_THAT(text, Contains("mii_engine_host_gap_seconds_total 0.25\n"));
  CHECK_THAT(text, Contains("mii_engine_host_gaps_total 40\n"));
  CHECK_THAT(text, Contains("mii_time_to_first_token_seconds_bucket{le=\"0.02\"} 0\n"));
  CHECK_THAT(text, Contains("mii_time_to_first_token_seconds_bucket{le=\"0.04\"} 1\n"));
  CHECK_THAT(text, Contains("mii_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1\n"));
  CHECK_THAT(text, Contains("mii_time_per_output_token_seconds_bucket{le=\"0.005\"} 0\n"));
  CHECK_THAT(text, Contains("mii_time_per_output_token_seconds_bucket{le=\"0.01\"} 1\n"));
  CHECK_THAT(text, Contains("mii_request_duration_seconds_count 1\n"));
  CHECK_THAT(text, Contains("mii_request_duration_seconds_sum 0.12\n"));

  // Format rules: every sample's family has HELP and TYPE before it; lines end with \n.
  std::istringstream lines(text);
  std::string line, family;
  std::map<std::string, std::string> types;
  while (std::getline(lines, line)) {
    INFO(line);
    REQUIRE_FALSE(line.empty());
    if (line.starts_with("# HELP ")) continue;
    if (line.starts_with("# TYPE ")) {
      std::istringstream f(line.substr(7));
      std::string name, type;
      f >> name >> type;
      CHECK((type == "counter" || type == "gauge" || type == "histogram"));
      types[name] = type;
      continue;
    }
    std::string name = line.substr(0, line.find_first_of("{ "));
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (name.ends_with(suffix) && types.count(name.substr(0, name.size() - std::strlen(suffix))))
        name = name.substr(0, name.size() - std::strlen(suffix));
    CHECK(types.count(name) == 1);
  }
  CHECK(text.back() == '\n');
}
