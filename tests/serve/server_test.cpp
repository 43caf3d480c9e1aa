// The server in-process on a free port over the demo model (host backend), driven by Beast
// clients: OpenAI completions and chat (whole and streamed), MII's REST form, the answers equal
// to the pipeline's own, and the protocol's edges (errors, limits, keep-alive, disconnects).
#include <catch2/catch.hpp>

#include <thread>

#include "expect_error.hpp"
#include "serve_support.hpp"

using namespace mii;
using namespace mii::test;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

generate_params greedy(std::int64_t n) {
  generate_params p;
  p.do_sample = false;
  p.max_new_tokens = n;
  return p;
}

std::string str(simdjson::dom::element e) { return std::string(std::string_view(e)); }

// The engine settles cancellations at its next step: wait for the KV cache to empty.
bool settles(demo_server& s) {
  for (int i = 0; i < 2000; ++i) {
    if (s.srv->svc().in_flight() == 0 && s.pipe.stats().kv_blocks_used == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

const char* const prompts[] = {"DeepSpeed is", "Seattle is", "The quick brown fox", "Once upon a time,", "One, two, three,"};

}  // namespace

TEST_CASE("greedy completions over HTTP equal the pipeline's", "[serve][http]") {
  demo_server s;
  http_client c(s.port());
  for (const char* prompt : prompts) {
    const response alone = s.pipe(prompt, greedy(12));
    const auto r = c.post("/v1/completions", std::string(R"({"model": "demo-llama", "prompt": ")") + prompt +
                                                 R"(", "max_tokens": 12, "temperature": 0})");
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(r.header("content-type") == "application/json");
    const auto doc = json_of(r.body);
    const auto root = doc.root();
    CHECK_THAT(str(root["id"]), StartsWith("cmpl-"));
    CHECK(str(root["object"]) == "text_completion");
    CHECK(str(root["model"]) == "demo-llama");
    CHECK(std::int64_t(root["created"]) > 1'600'000'000);
    const auto choice = root["choices"].at(0);
    CHECK(std::int64_t(choice["index"]) == 0);
    CHECK(str(choice["text"]) == alone.generated_text);
    CHECK(str(choice["finish_reason"]) == std::string(to_string(alone.finish_reason)));
    CHECK(choice["logprobs"].is_null());
    CHECK(std::int64_t(root["usage"]["prompt_tokens"]) == alone.prompt_length);
    CHECK(std::int64_t(root["usage"]["completion_tokens"]) == alone.generated_length);
    CHECK(std::int64_t(root["usage"]["total_tokens"]) == alone.prompt_length + alone.generated_length);
  }
}

TEST_CASE("a list of prompts gets one choice each, in order; token ids work as text does", "[serve][http]") {
  demo_server s;
  http_client c(s.port());
  auto r = c.post("/v1/completions", R"({"prompt": ["DeepSpeed is", "Seattle is"], "max_tokens": 6, "temperature": 0})");
  REQUIRE(r.status == 200);
  auto doc = json_of(r.body);
  simdjson::dom::array choices = doc.root()["choices"];
  REQUIRE(choices.size() == 2);
  CHECK(std::int64_t(choices.at(1)["index"]) == 1);
  CHECK(str(choices.at(0)["text"]) == s.pipe("DeepSpeed is", greedy(6)).generated_text);
  CHECK(str(choices.at(1)["text"]) == s.pipe("Seattle is", greedy(6)).generated_text);
  CHECK(std::int64_t(doc.root()["usage"]["completion_tokens"]) == 12);

  const auto ids = s.pipe.tok().encode("Seattle is");
  std::string list;
  for (auto id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
  r = c.post("/v1/completions", R"({"prompt": [)" + list + R"(], "max_tokens": 6, "temperature": 0, "echo": true})");
  REQUIRE(r.status == 200);
  doc = json_of(r.body);
  // echo puts the prompt first (decoded from its ids, BOS included as its text)
  CHECK(str(doc.root()["choices"].at(0)["text"]) ==
        s.pipe.tok().decode(ids) + s.pipe("Seattle is", greedy(6)).generated_text);
}

TEST_CASE("streamed completions add up to the whole answer, end with finish_reason and [DONE]", "[serve][http][stream]") {
  demo_server s;
  http_client c(s.port());
  const response alone = s.pipe("Once upon a time,", greedy(20));
  const auto r = c.post("/v1/completions", R"({"prompt": "Once upon a time,", "max_tokens": 20, "temperature": 0,
      "stream": true, "stream_options": {"include_usage": true}})");
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type") == "text/event-stream");
  CHECK(r.header("transfer-encoding") == "chunked");
  const auto events = sse_data(r.body);
  REQUIRE(events.size() >= 4);
  CHECK(events.back() == "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 3 < events.size(); ++i) {
    const auto doc = json_of(events[i]);
    CHECK(str(doc.root()["object"]) == "text_completion");
    CHECK(doc.root()["usage"].is_null());
    CHECK(doc.root()["choices"].at(0)["finish_reason"].is_null());
    text += str(doc.root()["choices"].at(0)["text"]);
  }
  CHECK(text == alone.generated_text);
  const auto last = json_of(events[events.size() - 3]);
  CHECK(str(last.root()["choices"].at(0)["finish_reason"]) == std::string(to_string(alone.finish_reason)));
  const auto usage = json_of(events[events.size() - 2]);
  CHECK(simdjson::dom::array(usage.root()["choices"]).size() == 0);
  CHECK(std::int64_t(usage.root()["usage"]["completion_tokens"]) == alone.generated_length);
}

TEST_CASE("chat completions render the template and answer as the completion of the rendered text", "[serve][http][chat]") {
  demo_server s;
  http_client c(s.port());
  const response alone = s.pipe("DeepSpeed is", greedy(10));
  auto r = c.post("/v1/chat/completions",
                  R"({"model": "demo-llama", "messages": [{"role": "user", "content": "DeepSpeed is"}], "max_tokens": 10, "temperature": 0})");
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto doc = json_of(r.body);
  CHECK_THAT(str(doc.root()["id"]), StartsWith("chatcmpl-"));
  CHECK(str(doc.root()["object"]) == "chat.completion");
  const auto message = doc.root()["choices"].at(0)["message"];
  CHECK(str(message["role"]) == "assistant");
  CHECK(str(message["content"]) == alone.generated_text);
  CHECK(std::int64_t(doc.root()["usage"]["prompt_tokens"]) == alone.prompt_length);

  // Streamed: the role first, then the text, then an empty delta with the finish reason.
  r = c.post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "DeepSpeed is"}]}],
      "max_completion_tokens": 10, "temperature": 0, "stream": true})");
  REQUIRE(r.status == 200);
  const auto events = sse_data(r.body);
  REQUIRE(events.size() >= 3);
  CHECK(events.back() == "[DONE]");
  const auto first = json_of(events[0]);
  CHECK(str(first.root()["object"]) == "chat.completion.chunk");
  CHECK(str(first.root()["choices"].at(0)["delta"]["role"]) == "assistant");
  std::string text;
  for (std::size_t i = 1; i + 2 < events.size(); ++i) text += str(json_of(events[i]).root()["choices"].at(0)["delta"]["content"]);
  CHECK(text == alone.generated_text);
  const auto end = json_of(events[events.size() - 2]);
  CHECK(str(end.root()["choices"].at(0)["finish_reason"]) == "length");
  CHECK(simdjson::dom::object(end.root()["choices"].at(0)["delta"]).size() == 0);

  // The template refuses (raise_exception): 400 naming messages, with the template's message.
  r = c.post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})");
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Contains("the last message must not be the assistant's"));
  CHECK_THAT(r.body, Contains(R"("param":"messages")"));
}

TEST_CASE("chat without a chat template is a 400 that says what to do", "[serve][http][chat]") {
  demo_server s({}, /*with_chat=*/false);
  http_client c(s.port());
  const auto r = c.post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}]})");
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Contains("no chat template"));
  CHECK_THAT(r.body, Contains("--chat-template"));
}

TEST_CASE("stop strings end the answer before them, finish_reason stop", "[serve][http]") {
  demo_server s;
  http_client c(s.port());
  const std::string full = s.pipe("DeepSpeed is", greedy(20)).generated_text;  // " a deep learning optimization library..."
  REQUIRE(full.find(" library") != std::string::npos);
  for (const bool stream : {false, true}) {
    const auto r = c.post("/v1/completions", std::string(R"({"prompt": "DeepSpeed is", "max_tokens": 20, "temperature": 0, "stop": [" library"], "stream": )") +
                                                 (stream ? "true" : "false") + "}");
    REQUIRE(r.status == 200);
    std::string text, reason;
    if (stream) {
      for (const auto& e : sse_data(r.body)) {
        if (e == "[DONE]") continue;
        const auto doc = json_of(e);
        text += str(doc.root()["choices"].at(0)["text"]);
        if (!doc.root()["choices"].at(0)["finish_reason"].is_null()) reason = str(doc.root()["choices"].at(0)["finish_reason"]);
      }
    } else {
      const auto doc = json_of(r.body);
      text = str(doc.root()["choices"].at(0)["text"]);
      reason = str(doc.root()["choices"].at(0)["finish_reason"]);
    }
    CHECK(text == full.substr(0, full.find(" library")));
    CHECK(reason == "stop");
  }
}

TEST_CASE("MII's REST form: a list of MII responses; its streaming extension", "[serve][http][mii]") {
  demo_server s;
  http_client c(s.port());
  auto r = c.post("/mii/demo-llama", R"({"prompts": ["DeepSpeed is", "Seattle is"], "max_new_tokens": 8, "do_sample": false})");
  REQUIRE(r.status == 200);
  const auto alone = s.pipe(std::vector<std::string>{"DeepSpeed is", "Seattle is"}, greedy(8));
  CHECK(r.body == "[" + std::string(R"({"generated_text":)") + "\"" + alone[0].generated_text + "\",\"prompt_length\":" +
                      std::to_string(alone[0].prompt_length) + ",\"generated_length\":8,\"finish_reason\":\"length\"}," +
                      R"({"generated_text":)" + "\"" + alone[1].generated_text + "\",\"prompt_length\":" +
                      std::to_string(alone[1].prompt_length) + ",\"generated_length\":8,\"finish_reason\":\"length\"}]");
  // return_full_text and max_length mean what they mean to the pipeline.
  generate_params p;
  p.do_sample = false;
  p.max_length = 9;
  p.return_full_text = true;
  r = c.post("/mii/demo-llama", R"({"prompts": "DeepSpeed is", "max_length": 9, "do_sample": false, "return_full_text": true})");
  REQUIRE(r.status == 200);
  CHECK(str(json_of(r.body).root().at(0)["generated_text"]) == s.pipe("DeepSpeed is", p).generated_text);

  r = c.post("/mii/demo-llama", R"({"prompts": "DeepSpeed is", "max_new_tokens": 8, "do_sample": false, "stream": true})");
  REQUIRE(r.status == 200);
  const auto events = sse_data(r.body);
  std::string text;
  std::size_t tokens = 0;
  for (std::size_t i = 0; i + 2 < events.size(); ++i) {
    const auto doc = json_of(events[i]);
    text += str(doc.root()["text"]);
    tokens += simdjson::dom::array(doc.root()["token_ids"]).size();
  }
  CHECK(text == alone[0].generated_text);
  CHECK(tokens == 8);
  CHECK(str(json_of(events[events.size() - 2]).root()["response"]["generated_text"]) == alone[0].generated_text);

  r = c.post("/mii/other", R"({"prompts": "x"})");
  CHECK(r.status == 404);
  CHECK_THAT(r.body, Contains("POST /mii/demo-llama"));
}

TEST_CASE("refusals: OpenAI's error shape, the field named, the server still up", "[serve][http][errors]") {
  demo_server s;
  http_client c(s.port());
  struct row {
    std::string target, body;
    int status;
    const char* param;
    const char* says;
  };
  std::string long_prompt;  // more tokens than the 2048-token context
  for (int i = 0; long_prompt.size() < 6000; ++i) long_prompt += "~" + std::to_string(i % 10) + "^";
  REQUIRE(s.pipe.tok().encode(long_prompt).size() > 2048);
  const row rows[] = {
      {"/v1/completions", "{not json", 400, nullptr, "malformed JSON"},
      {"/v1/completions", "", 400, nullptr, "the request body is empty"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": "5"})", 400, "max_tokens", "must be an integer, got string"},
      {"/v1/completions", R"({"prompt": "x", "best": 1})", 400, "best", "unknown field 'best'"},
      {"/v1/completions", R"({"prompt": "x", "model": "gpt-4o"})", 404, "model", "does not exist"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 5000})", 400, "max_tokens", "at most 2046 can be generated"},
      {"/v1/completions", R"({"prompt": ")" + long_prompt + R"("})", 400, "prompt", "this model's context is 2048 tokens"},
      {"/v1/completions", R"({"prompt": ["ok", ")" + long_prompt + R"("]})", 400, "prompt[1]", "2048 tokens"},
      {"/v1/completions", R"({"prompt": [1, 99999]})", 400, "prompt", "outside the model's vocabulary"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 3000})", 400, "max_tokens", "at most"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": ")" + long_prompt + R"("}]})", 400, "messages",
       "2048 tokens"},
      {"/mii/demo-llama", R"({"prompts": ")" + long_prompt + R"("})", 400, "prompts", "generate_params.max_length is 1024"},
  };
  for (const auto& r : rows) {
    INFO(r.target << " " << r.body.substr(0, 120));
    const auto res = c.post(r.target, r.body);
    INFO(res.body);
    CHECK(res.status == r.status);
    const auto doc = json_of(res.body);
    const auto err = doc.root()["error"];
    CHECK_THAT(str(err["message"]), Contains(r.says));
    CHECK(str(err["type"]) == "invalid_request_error");
    if (r.param) {
      CHECK(str(err["param"]) == r.param);
    } else {
      CHECK(err["param"].is_null());
    }
    CHECK(res.keep_alive);  // a refused request does not cost the connection
  }
  CHECK(c.get("/health").status == 200);
  CHECK(s.pipe.stats().kv_blocks_used == 0);
}

TEST_CASE("routes, methods, models, health and metrics", "[serve][http]") {
  demo_server s;
  http_client c(s.port());
  auto r = c.get("/v1/models");
  REQUIRE(r.status == 200);
  const auto doc = json_of(r.body);
  CHECK(str(doc.root()["data"].at(0)["id"]) == "demo-llama");
  CHECK(str(doc.root()["data"].at(0)["owned_by"]) == "mii");
  CHECK(std::int64_t(doc.root()["data"].at(0)["max_model_len"]) == s.pipe.max_sequence_length());
  CHECK(c.get("/v1/models/demo-llama").status == 200);
  r = c.get("/v1/models/other");
  CHECK(r.status == 404);
  CHECK_THAT(r.body, Contains("model_not_found"));
  r = c.get("/nowhere?x=1");
  CHECK(r.status == 404);
  CHECK_THAT(r.body, Contains("no such endpoint: GET /nowhere"));
  r = c.get("/v1/completions");
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "POST");
  r = c.post("/health", "{}");
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "GET");
  r = c.get("/health");
  CHECK(r.status == 200);
  CHECK(r.body == R"({"status":"ok"})");
  c.post("/v1/completions", R"({"prompt": "x", "max_tokens": 2, "temperature": 0})");
  r = c.get("/metrics");
  CHECK(r.status == 200);
  CHECK(r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK_THAT(r.body, Contains("mii_http_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1\n"));
  CHECK_THAT(r.body, Contains("mii_http_requests_total{endpoint=\"other\",status=\"404\"} 1\n"));
  CHECK_THAT(r.body, Contains("mii_http_requests_total{endpoint=\"/v1/models\",status=\"404\"} 1\n"));
  CHECK_THAT(r.body, Contains("mii_kv_blocks_used 0\n"));
  CHECK_THAT(r.body, Contains("mii_time_to_first_token_seconds_count 1\n"));
  CHECK_THAT(r.body, Contains("mii_request_duration_seconds_count 1\n"));
  CHECK_THAT(r.body, Contains("mii_prefix_cache_hit_tokens_total "));
  CHECK_THAT(r.body, Contains("mii_prefix_cache_queried_tokens_total "));
}

TEST_CASE("an API key guards /v1 and /mii; /health and /metrics stay open", "[serve][http][auth]") {
  serve::server_options o;
  o.service.api_key = "s3cret";
  demo_server s(o);
  http_client c(s.port());
  auto r = c.get("/v1/models");
  CHECK(r.status == 401);
  CHECK(r.header("www-authenticate") == "Bearer");
  CHECK_THAT(r.body, Contains("needs an API key"));
  CHECK_THAT(r.body, Contains("invalid_api_key"));
  CHECK(c.get("/v1/models", {{"Authorization", "Bearer wrong"}}).status == 401);
  CHECK(c.get("/v1/models", {{"Authorization", "Bearer s3cret2"}}).status == 401);
  CHECK(c.get("/v1/models", {{"Authorization", "Basic s3cret"}}).status == 401);
  CHECK(c.post("/mii/demo-llama", R"({"prompts": "x"})").status == 401);
  CHECK(c.post("/v1/completions", R"({"prompt": "x"})", {{"Authorization", "Bearer nope"}}).status == 401);
  CHECK(c.get("/v1/models", {{"Authorization", "Bearer s3cret"}}).status == 200);
  CHECK(c.get("/v1/models", {{"Authorization", "bearer s3cret"}}).status == 200);
  CHECK(c.post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})", {{"Authorization", "Bearer s3cret"}}).status == 200);
  CHECK(c.get("/health").status == 200);
  CHECK(c.get("/metrics").status == 200);
}

TEST_CASE("malformed HTTP, huge headers and huge bodies get 4xx; the server stays up", "[serve][http][limits]") {
  serve::server_options o;
  o.max_body_bytes = 4096;
  o.max_header_bytes = 2048;
  demo_server s(o);
  const auto status_of = [](const std::string& answer) { return answer.substr(0, answer.find("\r\n")); };

  CHECK(status_of(raw_exchange(s.port(), "GARBAGE\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
  CHECK_THAT(raw_exchange(s.port(), "GET / HTTP/9.9\r\n\r\n"), Contains("malformed HTTP request"));
  CHECK(status_of(raw_exchange(s.port(), "GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
  const std::string big_header = "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n";
  const std::string answer = raw_exchange(s.port(), big_header);
  CHECK(status_of(answer) == "HTTP/1.1 431 Request Header Fields Too Large");
  CHECK_THAT(answer, Contains("--max-header-bytes"));
  // A declared body over the limit is refused from its header, before it is read.
  const std::string big_body = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'a');
  CHECK(status_of(raw_exchange(s.port(), big_body)) == "HTTP/1.1 413 Payload Too Large");
  // The same with a chunked body: refused once the limit is crossed.
  std::string chunked = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 10; ++i) chunked += "400\r\n" + std::string(1024, 'a') + "\r\n";
  chunked += "0\r\n\r\n";
  CHECK(status_of(raw_exchange(s.port(), chunked)) == "HTTP/1.1 413 Payload Too Large");
  // A body that claims more than it sends: the read deadline ends it (here: the client's wait).
  // An Expect: 100-continue client is told to go on.
  const auto cont = raw_exchange(s.port(),
                                 "POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
                                 std::chrono::milliseconds(1500));
  CHECK_THAT(cont, StartsWith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request"));
  http_client c(s.port());
  CHECK(c.get("/health").status == 200);
  CHECK(c.post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})").status == 200);
}

TEST_CASE("keep-alive and pipelined requests on one connection", "[serve][http]") {
  demo_server s;
  http_client c(s.port());
  for (int i = 0; i < 5; ++i) CHECK(c.post("/v1/completions", R"({"prompt": "x", "max_tokens": 3})").status == 200);
  // Two requests in one write: two answers, in order.
  const std::string one = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 36\r\n\r\n{\"prompt\": \"ab\", \"max_tokens\": 2}   ";
  const std::string two = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string answers = raw_exchange(s.port(), one + two);
  const auto first = answers.find("HTTP/1.1 200 OK");
  const auto second = answers.find("HTTP/1.1 200 OK", first + 1);
  CHECK(first == 0);
  REQUIRE(second != std::string::npos);
  CHECK_THAT(answers.substr(second), Contains(R"({"status":"ok"})"));
  CHECK_THAT(answers.substr(0, second), Contains("text_completion"));

  // HTTP/1.0 has no chunked encoding: a stream is the body up to the connection's end.
  const std::string body = R"({"prompt": "ab", "max_tokens": 3, "stream": true})";
  const std::string old_client = raw_exchange(
      s.port(), "POST /v1/completions HTTP/1.0\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  CHECK_THAT(old_client, StartsWith("HTTP/1.0 200 OK\r\n"));
  CHECK(old_client.find("chunked") == std::string::npos);
  CHECK_THAT(old_client, Contains("\r\n\r\ndata: {"));
  CHECK_THAT(old_client, Catch::EndsWith("data: [DONE]\n\n"));
}

TEST_CASE("a client that leaves mid-stream or mid-wait cancels its request and frees its KV blocks", "[serve][http][cancel]") {
  demo_server s;
  {
    http_client c(s.port());
    c.send(http::verb::post, "/v1/completions",
           R"({"prompt": "The quick brown fox", "max_tokens": 1500, "temperature": 0, "ignore_eos": true, "stream": true})");
    const auto head = c.receive_until([](const std::string& seen) { return seen.size() > 400; });
    CHECK(head.status == 200);
    CHECK(s.pipe.stats().kv_blocks_used > 0);
    c.close();
  }
  CHECK(settles(s));
  const auto generated = s.pipe.stats().generated_tokens;
  CHECK(generated < 1500);
  {
    http_client c(s.port());
    c.send(http::verb::post, "/v1/chat/completions",
           R"({"messages": [{"role": "user", "content": "Seattle is"}], "max_tokens": 1500, "ignore_eos": true})");
    for (int i = 0; i < 400 && s.pipe.stats().generated_tokens < generated + 5; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    c.close();
  }
  CHECK(settles(s));
  CHECK(s.pipe.stats().generated_tokens < generated + 1500);
  http_client c(s.port());
  const auto m = c.get("/metrics");
  CHECK_THAT(m.body, Contains("mii_kv_blocks_used 0\n"));
  CHECK_THAT(m.body, Contains("mii_requests_in_flight 0\n"));
  CHECK_THAT(m.body, Contains("mii_http_requests_total{endpoint=\"/v1/completions\",status=\"499\"} 1\n"));
  CHECK_THAT(m.body, Contains("mii_http_requests_total{endpoint=\"/v1/chat/completions\",status=\"499\"} 1\n"));
}

TEST_CASE("a full queue answers 503 with Retry-After", "[serve][http][limits]") {
  serve::server_options o;
  o.service.max_queue = 1;
  demo_server s(o);
  http_client busy(s.port());
  busy.send(http::verb::post, "/v1/completions",
            R"({"prompt": "x", "max_tokens": 1500, "ignore_eos": true, "temperature": 0, "stream": true})");
  busy.receive_until([](const std::string& seen) { return !seen.empty(); });
  http_client c(s.port());
  auto r = c.post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})");
  CHECK(r.status == 503);
  CHECK(r.header("retry-after") == "1");
  CHECK_THAT(r.body, Contains("--max-queue"));
  // Two prompts need two places.
  busy.close();
  REQUIRE(settles(s));
  r = c.post("/v1/completions", R"({"prompt": ["a", "b"], "max_tokens": 2})");
  CHECK(r.status == 503);
  CHECK(c.post("/v1/completions", R"({"prompt": "a", "max_tokens": 2})").status == 200);
}

TEST_CASE("a slow client is cut off at the read deadline", "[serve][http][limits]") {
  serve::server_options o;
  o.read_timeout = std::chrono::milliseconds(300);
  demo_server s(o);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string answer = raw_exchange(s.port(), "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{",
                                          std::chrono::milliseconds(5000));
  CHECK(answer.empty());  // closed, nothing to say to a client that never finished
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(3000));
  http_client idle(s.port());
  CHECK(idle.get("/health").status == 200);
  CHECK(idle.closed_by_server(std::chrono::milliseconds(3000)));  // idle keep-alive connection
}

TEST_CASE("shutdown lets requests in flight finish, answers 503 meanwhile, cancels at the deadline", "[serve][http][shutdown]") {
  demo_server s;
  http_client running(s.port());
  running.send(http::verb::post, "/v1/completions", R"({"prompt": "x", "max_tokens": 300, "ignore_eos": true, "temperature": 0})");
  while (s.srv->svc().in_flight() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_client other(s.port());
  std::thread stopper([&] { s.srv->shutdown(std::chrono::seconds(20)); });
  while (!s.srv->svc().draining()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto health = other.get("/health");
  CHECK(health.status == 503);
  CHECK_FALSE(health.keep_alive);
  http_client late(s.port());
  const auto refused = late.post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})");
  CHECK(refused.status == 503);
  CHECK(refused.header("retry-after") == "1");
  const auto done = running.receive();
  CHECK(done.status == 200);
  CHECK(std::int64_t(json_of(done.body).root()["usage"]["completion_tokens"]) == 300);
  stopper.join();

  demo_server t;
  http_client slow(t.port());
  slow.send(http::verb::post, "/v1/completions", R"({"prompt": "x", "max_tokens": 1900, "ignore_eos": true})");
  while (t.srv->svc().in_flight() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto t0 = std::chrono::steady_clock::now();
  t.srv->shutdown(std::chrono::milliseconds(100));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
  const auto cut = slow.receive();
  CHECK(cut.status == 503);
  CHECK_THAT(cut.body, Contains("shutting down"));
  CHECK(t.pipe.stats().kv_blocks_used == 0);
}

TEST_CASE("logprobs and penalties over HTTP: OpenAI's shapes, the pipeline's values", "[serve][http][logprobs]") {
  demo_server s;
  http_client c(s.port());
  mii::generate_params p = greedy(5);
  p.logprobs = 2;
  p.presence_penalty = 0.5;
  p.ignore_eos = true;
  const response alone = s.pipe("DeepSpeed is", p);
  REQUIRE(alone.logprobs.size() == 5);

  // Completions: tokens, token_logprobs, top_logprobs, text_offset.
  auto r = c.post("/v1/completions", R"({"prompt": "DeepSpeed is", "max_tokens": 5, "temperature": 0, "logprobs": 2,
      "presence_penalty": 0.5, "ignore_eos": true})");
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto doc = json_of(r.body);
  auto lp = doc.root()["choices"].at(0)["logprobs"];
  CHECK(str(doc.root()["choices"].at(0)["text"]) == alone.generated_text);
  simdjson::dom::array tokens = lp["tokens"], token_lps = lp["token_logprobs"], tops = lp["top_logprobs"],
                       offsets = lp["text_offset"];
  REQUIRE(tokens.size() == 5);
  REQUIRE(token_lps.size() == 5);
  REQUIRE(tops.size() == 5);
  REQUIRE(offsets.size() == 5);
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < 5; ++i) {
    INFO("token " << i);
    CHECK(str(tokens.at(i)) == s.pipe.tok().decode({alone.logprobs[i].token}));
    CHECK(double(token_lps.at(i)) == Approx(alone.logprobs[i].logprob));
    CHECK(simdjson::dom::object(tops.at(i)).size() >= 1);
    CHECK(std::int64_t(offsets.at(i)) == offset);
    offset += std::int64_t(str(tokens.at(i)).size());
  }

  // Chat, streamed: each chunk's logprobs.content covers its tokens.
  r = c.post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4,
      "temperature": 0, "logprobs": true, "top_logprobs": 3, "stream": true, "ignore_eos": true})");
  REQUIRE(r.status == 200);
  std::size_t entries = 0;
  for (const auto& e : sse_data(r.body)) {
    if (e == "[DONE]") continue;
    const auto chunk = json_of(e);
    const auto l = chunk.root()["choices"].at(0)["logprobs"];
    if (l.is_null()) continue;
    for (simdjson::dom::element entry : simdjson::dom::array(l["content"])) {
      ++entries;
      CHECK(double(entry["logprob"]) <= 0.0);
      CHECK(simdjson::dom::array(entry["top_logprobs"]).size() == 3);
      CHECK(simdjson::dom::array(entry["bytes"]).size() == str(entry["token"]).size());
    }
  }
  CHECK(entries == 4);
}
