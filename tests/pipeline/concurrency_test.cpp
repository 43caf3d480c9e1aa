// One pipeline shared by many threads (issue 14): calls and submissions from any thread go to one
// engine thread that batches them; every caller gets what it gets alone (greedy: the same tokens,
// on the host backend, whose results do not depend on the batch), cancelled requests free their
// KV blocks, streamed deltas add up, and handles survive their pipeline.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <mii/pipeline.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"
#include "pipeline_support.hpp"
#include "test_files.hpp"

using Catch::Matchers::Contains;
using mii::generation_finish_reason;

namespace {

mii::generation_pipeline make_demo(std::int64_t kv_blocks = 512) {
  mii::model_config cfg = mii::test::host_config(kv_blocks);
  cfg.host_threads = 1;  // the engine thread computes alone: the callers' threads stay responsive
  return mii::pipeline(mii::test::fixture_dir("demo-llama"), cfg);
}

mii::generate_params greedy(std::int64_t max_new_tokens) {
  mii::generate_params p;
  p.do_sample = false;
  p.max_new_tokens = max_new_tokens;
  p.ignore_eos = true;
  return p;
}

// Prompts cut from the demo model's training text: real words, distinct lengths.
std::vector<std::string> prompts(std::size_t n) {
  const std::string text = mii::test::read_text(mii::test::source_dir() / "tests/fixtures/demo_text.txt");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(text.substr((i * 97) % (text.size() - 80), 8 + (i * 7) % 50));
  return out;
}

bool eventually(const std::function<bool()>& f) {
  for (int i = 0; i < 2000; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return f();
}

}  // namespace

TEST_CASE("16 threads sharing one pipeline each get what they get alone", "[pipeline][concurrency]") {
  auto pipe = make_demo();
  const auto ps = prompts(16);
  const auto params = greedy(12);
  std::vector<mii::response> alone;
  for (const auto& p : ps) alone.push_back(pipe(p, params));

  std::vector<mii::response> shared(ps.size());
  std::vector<std::vector<mii::response>> lists(4);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (std::size_t t = 0; t < ps.size(); ++t)
    threads.emplace_back([&, t] {
      ++ready;
      while (ready < int(ps.size())) std::this_thread::yield();  // all at once
      shared[t] = pipe(ps[t], params);
    });
  // Four more threads call with lists (the same prompts, in another order) at the same time.
  for (std::size_t t = 0; t < lists.size(); ++t)
    threads.emplace_back([&, t] {
      std::vector<std::string> mine(ps.rbegin(), ps.rend());
      lists[t] = pipe(mine, params);
    });
  for (auto& th : threads) th.join();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    INFO("prompt " << i << ": '" << ps[i] << "'");
    CHECK(shared[i].token_ids == alone[i].token_ids);
    CHECK(shared[i].generated_text == alone[i].generated_text);
    for (const auto& l : lists) CHECK(l[ps.size() - 1 - i].token_ids == alone[i].token_ids);
  }
  CHECK(pipe.kv_blocks_in_use() == 0);
}

TEST_CASE("submit: a handle waits, streams by pull, and cancels", "[pipeline][concurrency]") {
  auto pipe = make_demo();
  const auto ps = prompts(3);

  SECTION("get() equals the blocking call; pulled deltas add up to the text") {
    const auto expected = pipe(ps[0], greedy(20));
    mii::request_handle h = pipe.submit(ps[0], greedy(20));
    std::string pulled;
    std::vector<mii::token_id> ids;
    int finished = 0;
    while (auto d = h.next()) {
      pulled += d->text;
      ids.insert(ids.end(), d->token_ids.begin(), d->token_ids.end());
      if (d->finished) {
        ++finished;
        CHECK(d->finish_reason == generation_finish_reason::length);
      }
    }
    CHECK(finished == 1);
    CHECK_FALSE(h.next());  // after the end: nothing, at once
    const auto r = h.get();
    CHECK(r.token_ids == expected.token_ids);
    CHECK(ids == expected.token_ids);
    CHECK(pulled == expected.generated_text);
    CHECK(h.done());
  }

  SECTION("cancel mid-stream: finish_reason cancelled, partial output, blocks freed") {
    mii::generate_params long_run = greedy(400);
    mii::request_handle h = pipe.submit(ps[1], long_run);
    auto first = h.next();  // at least one token has been generated
    REQUIRE(first);
    h.cancel();
    const auto r = h.get();
    CHECK(r.finish_reason == generation_finish_reason::cancelled);
    CHECK(r.generated_length >= 1);
    CHECK(r.generated_length < 400);
    CHECK(eventually([&] { return pipe.kv_blocks_in_use() == 0; }));
    h.cancel();  // again: nothing changes
    CHECK(h.get().finish_reason == generation_finish_reason::cancelled);
    // The pipeline goes on serving.
    CHECK(pipe(ps[2], greedy(4)).generated_length == 4);
  }

  SECTION("many cancelled at random points while others finish") {
    std::vector<mii::request_handle> hs;
    for (int i = 0; i < 24; ++i) hs.push_back(pipe.submit(ps[std::size_t(i) % ps.size()], greedy(i % 2 ? 300 : 6)));
    for (std::size_t i = 1; i < hs.size(); i += 2) hs[i].cancel();
    for (std::size_t i = 0; i < hs.size(); ++i) {
      const auto r = hs[i].get();
      INFO("request " << i);
      if (i % 2) {
        CHECK(r.finish_reason == generation_finish_reason::cancelled);
      } else {
        CHECK(r.finish_reason == generation_finish_reason::length);
        CHECK(r.generated_length == 6);
      }
    }
    CHECK(eventually([&] { return pipe.kv_blocks_in_use() == 0 && pipe.stats().running == 0; }));
  }

  SECTION("invalid submissions throw on the caller's thread, naming the field") {
    mii::generate_params bad = greedy(4);
    bad.top_p = 2.0;
    CHECK_THAT(MII_ERROR_MESSAGE(pipe.submit(ps[0], bad)), Contains("generate_params.top_p"));
    std::string too_long;
    for (int i = 0; i < 5000; ++i) too_long += " the";
    mii::generate_params roomy = greedy(4);
    roomy.max_length = 100000;
    CHECK_THAT(MII_ERROR_MESSAGE(pipe.submit(too_long, roomy)), Contains("context is 2048 tokens"));
    CHECK_THAT(MII_ERROR_MESSAGE(pipe.submit_ids({}, greedy(4))), Contains("no tokens"));
  }
}

TEST_CASE("a request joins a running batch at the next step", "[pipeline][concurrency]") {
  auto pipe = make_demo();
  const auto ps = prompts(2);
  mii::request_handle long_one = pipe.submit(ps[0], greedy(300));
  REQUIRE(long_one.next());  // running
  const auto before = pipe.stats().steps;
  const auto short_one = pipe.submit(ps[1], greedy(3)).get();
  CHECK(short_one.generated_length == 3);
  // The short request finished while the long one was still decoding: they shared steps.
  CHECK_FALSE(long_one.done());
  CHECK(pipe.stats().steps - before < 300);
  long_one.cancel();
  CHECK(long_one.get().finish_reason == generation_finish_reason::cancelled);
}

TEST_CASE("stream callbacks: on the engine thread, a throwing one ends only its request", "[pipeline][concurrency]") {
  auto pipe = make_demo();
  const auto ps = prompts(3);
  const auto expected = pipe(ps, greedy(8));
  mii::generate_params p = greedy(8);
  std::map<std::size_t, int> events;
  p.stream = [&](const mii::stream_event& e) {
    if (e.prompt_index == 1 && ++events[1] == 3) throw std::runtime_error("client went away");
    ++events[e.prompt_index];
  };
  const auto out = pipe(ps, p);
  REQUIRE(out.size() == 3);
  CHECK(out[0].token_ids == expected[0].token_ids);
  CHECK(out[2].token_ids == expected[2].token_ids);
  CHECK(out[1].finish_reason == generation_finish_reason::error);
  CHECK_THAT(out[1].error, Contains("generate_params.stream threw: client went away"));
  CHECK(eventually([&] { return pipe.kv_blocks_in_use() == 0; }));
  // One prompt: the error is thrown.
  int seen = 0;
  p.stream = [&](const mii::stream_event&) {
    if (++seen == 2) throw std::runtime_error("client went away");
  };
  CHECK_THAT(MII_ERROR_MESSAGE(pipe(ps[1], p)), Contains("client went away"));
}

TEST_CASE("handles outlive their pipeline; shutdown cancels what runs", "[pipeline][concurrency]") {
  const auto ps = prompts(2);
  mii::request_handle running, finished;
  {
    auto pipe = make_demo();
    finished = pipe.submit(ps[0], greedy(2));
    REQUIRE(finished.get().generated_length == 2);
    running = pipe.submit(ps[1], greedy(400));
    REQUIRE(running.next());
    pipe.shutdown();
    CHECK(running.get().finish_reason == generation_finish_reason::cancelled);
    // After shutdown, submissions are answered with an error instead of hanging.
    const auto late = pipe.submit(ps[0], greedy(2)).get();
    CHECK(late.finish_reason == generation_finish_reason::error);
    CHECK_THAT(late.error, Contains("shut down"));
  }
  CHECK(finished.get().generated_length == 2);
  CHECK(running.get().finish_reason == generation_finish_reason::cancelled);
  running.cancel();  // the engine is gone: nothing happens
}
