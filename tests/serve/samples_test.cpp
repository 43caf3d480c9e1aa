// n choices and prompt log-probabilities over HTTP (issue 16), in-process on the demo model:
// /v1/completions with a prompt list and n numbers choices prompt * n + sample (OpenAI and vLLM do);
// each choice is the pipeline's sample of that prompt; streaming chunks carry their choice's
// index and each choice ends with its own finish_reason; echo with logprobs puts the prompt's
// log-probabilities first (null for its first token) and prompt_logprobs is vLLM's list.
#include <catch2/catch.hpp>

#include <map>

#include "serve_support.hpp"

using namespace mii;
using namespace mii::test;

namespace {

std::string str(simdjson::dom::element e) { return std::string(std::string_view(e)); }

generate_params seeded(std::int32_t n, std::int64_t max_new) {
  generate_params p;
  p.n = n;
  p.seed = 5;
  p.top_p = 1.0;  // OpenAI's default, as the server sets it
  p.max_new_tokens = max_new;
  p.ignore_eos = true;
  return p;
}

}  // namespace

TEST_CASE("completions with n and a prompt list: choice prompt * n + sample is that sample", "[serve][http][samples]") {
  demo_server s;
  http_client c(s.port());
  const auto a = s.pipe("DeepSpeed is", seeded(2, 6)), b = s.pipe("Seattle is", seeded(2, 6));
  const auto r = c.post("/v1/completions", R"({"prompt": ["DeepSpeed is", "Seattle is"], "n": 2, "seed": 5,
      "max_tokens": 6, "ignore_eos": true})");
  INFO(r.body);
  REQUIRE(r.status == 200);
  const auto doc = json_of(r.body);
  simdjson::dom::array choices = doc.root()["choices"];
  REQUIRE(choices.size() == 4);
  const response* per_prompt[] = {&a, &b};
  for (std::size_t i = 0; i < 4; ++i) {
    INFO("choice " << i);
    CHECK(std::int64_t(choices.at(i)["index"]) == std::int64_t(i));
    CHECK(str(choices.at(i)["text"]) == per_prompt[i / 2]->samples.at(i % 2).generated_text);
    CHECK(str(choices.at(i)["finish_reason"]) == "length");
  }
  // Usage: each prompt once, every choice's tokens.
  CHECK(std::int64_t(doc.root()["usage"]["prompt_tokens"]) == a.prompt_length + b.prompt_length);
  CHECK(std::int64_t(doc.root()["usage"]["completion_tokens"]) == 4 * 6);
}

TEST_CASE("streamed n choices: chunks carry their index, each choice ends once", "[serve][http][samples][stream]") {
  demo_server s;
  http_client c(s.port());
  const auto want = s.pipe("Once upon a time,", seeded(3, 8));
  const auto r = c.post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Once upon a time,"}],
      "n": 3, "seed": 5, "max_tokens": 8, "ignore_eos": true, "stream": true})");
  REQUIRE(r.status == 200);
  std::map<std::int64_t, std::string> text;
  std::map<std::int64_t, int> roles, ends;
  for (const auto& e : sse_data(r.body)) {
    if (e == "[DONE]") continue;
    const auto chunk = json_of(e);
    const auto choice = chunk.root()["choices"].at(0);
    const std::int64_t index = choice["index"];
    REQUIRE(index >= 0);
    REQUIRE(index < 3);
    const auto delta = choice["delta"];
    std::string_view role;
    if (!delta["role"].get(role)) ++roles[index];
    std::string_view content;
    if (!delta["content"].get(content)) text[index] += content;
    if (!choice["finish_reason"].is_null()) {
      ++ends[index];
      CHECK(str(choice["finish_reason"]) == "length");
    }
  }
  // The chat answers are the completions of the rendered conversation: compare with each other
  // and with the count, and with a non-streamed request.
  const auto whole = c.post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Once upon a time,"}],
      "n": 3, "seed": 5, "max_tokens": 8, "ignore_eos": true})");
  REQUIRE(whole.status == 200);
  const auto doc = json_of(whole.body);
  for (std::int64_t k = 0; k < 3; ++k) {
    INFO("choice " << k);
    CHECK(roles[k] == 1);
    CHECK(ends[k] == 1);
    CHECK(text[k] == str(doc.root()["choices"].at(std::size_t(k))["message"]["content"]));
  }
  CHECK(want.samples.size() == 3);
}

TEST_CASE("echo with logprobs and prompt_logprobs: the prompt's log-probabilities", "[serve][http][logprobs][prompt]") {
  demo_server s;
  http_client c(s.port());
  generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 3;
  p.ignore_eos = true;
  p.logprobs = 2;
  p.prompt_logprobs = 2;
  const response alone = s.pipe("The quick brown fox", p);
  const auto ids = s.pipe.tok().encode("The quick brown fox");
  REQUIRE(alone.prompt_logprobs.size() == ids.size() - 1);
  for (const bool stream : {false, true}) {
    INFO((stream ? "streamed" : "whole"));
    const auto r = c.post("/v1/completions", std::string(R"({"prompt": "The quick brown fox", "max_tokens": 3,
        "temperature": 0, "ignore_eos": true, "echo": true, "logprobs": 2, "prompt_logprobs": 1, "stream": )") +
                                                 (stream ? "true" : "false") + "}");
    INFO(r.body);
    REQUIRE(r.status == 200);
    // The first chunk (streamed) or the choice (whole) carries the prompt's part.
    std::string body = r.body;
    if (stream) body = sse_data(r.body).at(0);
    const auto doc = json_of(body);
    const auto choice = doc.root()["choices"].at(0);
    const auto lp = choice["logprobs"];
    simdjson::dom::array tokens = lp["tokens"], token_lps = lp["token_logprobs"], tops = lp["top_logprobs"];
    const std::size_t prompt_tokens = ids.size(), total = stream ? prompt_tokens : prompt_tokens + 3;
    REQUIRE(tokens.size() == total);
    REQUIRE(token_lps.size() == total);
    CHECK(token_lps.at(0).is_null());
    CHECK(tops.at(0).is_null());
    for (std::size_t j = 1; j < prompt_tokens; ++j) {
      INFO("prompt token " << j);
      CHECK(str(tokens.at(j)) == s.pipe.tok().decode({ids[j]}));
      CHECK(double(token_lps.at(j)) == Approx(alone.prompt_logprobs[j - 1].logprob));
      CHECK(simdjson::dom::object(tops.at(j)).size() >= 1);
    }
    if (!stream)
      for (std::size_t t = 0; t < 3; ++t) CHECK(double(token_lps.at(prompt_tokens + t)) == Approx(alone.logprobs[t].logprob));
    // vLLM's prompt_logprobs: null, then {id: {logprob, rank, decoded_token}} with the token and one alternative.
    simdjson::dom::array plp = choice["prompt_logprobs"];
    REQUIRE(plp.size() == prompt_tokens);
    CHECK(plp.at(0).is_null());
    for (std::size_t j = 1; j < prompt_tokens; ++j) {
      const simdjson::dom::object entry = plp.at(j);
      CHECK((entry.size() == 1 || entry.size() == 2));
      const auto own = entry[std::to_string(ids[j])];
      CHECK(double(own["logprob"]) == Approx(alone.prompt_logprobs[j - 1].logprob));
      CHECK(str(own["decoded_token"]) == s.pipe.tok().decode({ids[j]}));
    }
  }
  // Chat: vLLM's top-level prompt_logprobs.
  const auto r = c.post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2,
      "prompt_logprobs": 0})");
  REQUIRE(r.status == 200);
  const auto doc = json_of(r.body);
  simdjson::dom::array plp = doc.root()["prompt_logprobs"];
  CHECK(plp.size() == std::size_t(doc.root()["usage"]["prompt_tokens"].get_int64().value()));
  CHECK(plp.at(0).is_null());
}
