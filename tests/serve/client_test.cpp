// mii::client against the in-process server: the same answers as the pipeline it serves
// (greedy, and seeded sampling), streaming, errors with the server's status and message, and
// one client shared by threads.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include <mii/client.hpp>

#include "expect_error.hpp"
#include "serve_support.hpp"

using namespace mii;
using namespace mii::test;
using Catch::Matchers::Contains;

namespace {

generate_params greedy(std::int64_t n) {
  generate_params p;
  p.do_sample = false;
  p.max_new_tokens = n;
  return p;
}

template <class F>
http_error http_error_of(F&& f) {
  try {
    f();
  } catch (const http_error& e) {
    return e;
  }
  FAIL("no mii::http_error was thrown");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("mii::client answers as the pipeline it talks to", "[serve][client]") {
  demo_server s;
  client c("http://127.0.0.1:" + std::to_string(s.port()));
  CHECK(c.deployment() == "demo-llama");
  const std::vector<std::string> prompts{"DeepSpeed is", "Seattle is", "One, two,"};
  const auto local = s.pipe(prompts, greedy(10));
  const auto remote = c.generate(prompts, greedy(10));
  REQUIRE(remote.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(remote[i].generated_text == local[i].generated_text);
    CHECK(remote[i].prompt_length == local[i].prompt_length);
    CHECK(remote[i].generated_length == local[i].generated_length);
    CHECK(remote[i].finish_reason == local[i].finish_reason);
  }
  // Seeded sampling: every prompt samples with the seed, on both sides.
  generate_params sampled;
  sampled.max_new_tokens = 12;
  sampled.seed = 1234;
  sampled.temperature = 0.9;
  const auto local_sampled = s.pipe(prompts, sampled);
  const auto remote_sampled = c.generate(prompts, sampled);
  for (std::size_t i = 0; i < 3; ++i) CHECK(remote_sampled[i].generated_text == local_sampled[i].generated_text);
  // MII's defaults travel too: max_length, return_full_text.
  generate_params full;
  full.do_sample = false;
  full.max_length = 10;
  full.return_full_text = true;
  full.stop = {" learning"};
  CHECK(c.generate("DeepSpeed is", full).generated_text == s.pipe("DeepSpeed is", full).generated_text);
}

TEST_CASE("mii::client streams: the pieces add up, the final event carries the finish reason", "[serve][client]") {
  demo_server s;
  client c("http://127.0.0.1:" + std::to_string(s.port()) + "/");
  std::string text;
  int finals = 0;
  generation_finish_reason reason{};
  const response r = c.generate_stream("The quick brown fox", greedy(16), [&](const stream_event& e) {
    if (e.finished) {
      ++finals;
      reason = e.finish_reason;
      return;
    }
    text += e.text;
  });
  CHECK(text == s.pipe("The quick brown fox", greedy(16)).generated_text);
  CHECK(r.generated_text == text);
  CHECK(finals == 1);
  CHECK(reason == r.finish_reason);

  // Throwing from the callback stops reading: the server sees the client go and cancels.
  generate_params longer = greedy(1500);
  longer.ignore_eos = true;
  int pieces = 0;
  CHECK_THROWS_AS(c.generate_stream("x", longer, [&](const stream_event&) {
    if (++pieces == 3) throw std::runtime_error("enough");
  }), std::runtime_error);
  bool settled = false;
  for (int i = 0; i < 2000 && !settled; ++i) {
    settled = s.pipe.stats().kv_blocks_used == 0 && s.srv->svc().in_flight() == 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(settled);
  CHECK(s.pipe.stats().generated_tokens < 1500 + 16 + 100);
}

TEST_CASE("mii::client errors carry the server's status and message", "[serve][client]") {
  serve::server_options o;
  o.service.api_key = "k";
  demo_server s(o);
  const std::string url = "http://127.0.0.1:" + std::to_string(s.port());
  client ok(url, {.api_key = "k"});
  generate_params too_long;
  too_long.max_length = 3000;
  std::string long_prompt;
  for (int i = 0; long_prompt.size() < 6000; ++i) long_prompt += "~" + std::to_string(i % 10) + "^";
  auto e = http_error_of([&] { ok.generate(long_prompt, too_long); });
  CHECK(e.status() == 400);
  CHECK_THAT(e.what(), Contains("HTTP 400 from " + url + ": 'prompts': the prompt is"));
  // Parameters a local pipeline would refuse are refused before sending, with the same message.
  generate_params bad;
  bad.top_p = 2;
  CHECK_THAT(MII_ERROR_MESSAGE(ok.generate("x", bad)), Contains("generate_params.top_p must be in (0, 1], got 2"));

  client wrong_key(url, {.api_key = "nope", .deployment = "demo-llama"});
  e = http_error_of([&] { wrong_key.generate("x"); });
  CHECK(e.status() == 401);
  client wrong_deployment(url, {.api_key = "k", .deployment = "other"});
  e = http_error_of([&] { wrong_deployment.generate("x"); });
  CHECK(e.status() == 404);
  CHECK_THAT(e.what(), Contains("the deployment 'other' does not exist"));

  CHECK_THAT(MII_ERROR_MESSAGE(client("https://x:1")), Contains("https is not supported"));
  CHECK_THAT(MII_ERROR_MESSAGE(client("127.0.0.1:8000")), Contains("not an http:// URL"));
  CHECK_THAT(MII_ERROR_MESSAGE(client("http://host:port")), Contains("expected http://host:port"));
  // Nobody listening: mii::error saying so.
  s.srv->shutdown(std::chrono::milliseconds(0));
  CHECK_THAT(MII_ERROR_MESSAGE(ok.generate("x")), Contains("cannot connect to " + url));
}

TEST_CASE("one mii::client shared by threads", "[serve][client][concurrency]") {
  demo_server s;
  const client c("http://127.0.0.1:" + std::to_string(s.port()));
  const std::vector<std::string> prompts{"DeepSpeed is", "Seattle is", "The cat sat", "Monday, Tuesday,"};
  std::vector<std::string> alone;
  for (const auto& p : prompts) alone.push_back(s.pipe(p, greedy(8)).generated_text);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 4; ++i) {
        const std::size_t k = std::size_t(t + i) % prompts.size();
        if (c.generate(prompts[k], greedy(8)).generated_text != alone[k]) ++wrong;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
}
