// The benchmark side of serve: the paired statistics mii-serve-overhead reports, the streamed
// completion client that it and mii-serve-load share, mii-serve-load's run and
// mii-serve-overhead's run, against the in-process demo server.
#include <catch2/catch.hpp>

#include <cmath>

#include "serve/load_generator.hpp"
#include "serve/overhead_bench.hpp"
#include "serve/paired_stats.hpp"
#include "serve/stream_client.hpp"
#include "serve_support.hpp"

using namespace mii;
using namespace mii::test;
using Catch::Matchers::Contains;

TEST_CASE("quantiles interpolate between order statistics", "[serve][bench]") {
  CHECK(serve::quantile({4, 1, 3, 2}, 0.5) == Approx(2.5));
  CHECK(serve::quantile({1, 2, 3, 4, 5}, 0.5) == Approx(3));
  CHECK(serve::quantile({1, 2, 3, 4, 5}, 0.9) == Approx(4.6));
  CHECK(serve::quantile({7}, 0.99) == Approx(7));
  CHECK(serve::quantile({}, 0.5) == 0);
  const std::vector<double> v{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const auto s = serve::spread_of(v);
  CHECK(s.count == 10);
  CHECK(s.p50 == Approx(5.5));
  CHECK(s.mean == Approx(5.5));
  CHECK(s.p99 == Approx(9.91));
}

TEST_CASE("paired differences: b minus a per pair, and a bootstrap interval of their median", "[serve][bench]") {
  // A constant shift: every difference, and so every resampled median, is the shift.
  const std::vector<double> a{10, 20, 30, 40, 50, 60};
  std::vector<double> b;
  for (double x : a) b.push_back(x + 0.5);
  auto d = serve::compare_pairs(a, b, 1, 2000);
  CHECK(d.pairs == 6);
  CHECK(d.median == Approx(0.5));
  CHECK(d.mean == Approx(0.5));
  CHECK(d.ci95_lo == Approx(0.5));
  CHECK(d.ci95_hi == Approx(0.5));
  CHECK(d.resamples == 2000);

  // Differences 1..99 (a large spread between pairs cancels): the median is 50, the interval holds
  // it, is narrower than the data, and the same seed gives the same bounds.
  std::vector<double> x, y;
  for (int i = 1; i < 100; ++i) {
    x.push_back(1000.0 * i);
    y.push_back(1000.0 * i + i);
  }
  d = serve::compare_pairs(x, y, 42);
  CHECK(d.median == Approx(50));
  CHECK(d.p10 == Approx(10.8));
  CHECK(d.p90 == Approx(89.2));
  CHECK(d.ci95_lo <= 50);
  CHECK(d.ci95_hi >= 50);
  CHECK(d.ci95_lo > 30);
  CHECK(d.ci95_hi < 70);
  const auto again = serve::compare_pairs(x, y, 42);
  CHECK(again.ci95_lo == d.ci95_lo);
  CHECK(again.ci95_hi == d.ci95_hi);

  CHECK(serve::verdict(serve::paired_difference{.pairs = 50, .ci95_lo = 0.0002, .ci95_hi = 0.0009}, 1.0) == "met");
  CHECK(serve::verdict(serve::paired_difference{.pairs = 50, .ci95_lo = 0.0005, .ci95_hi = 0.0015}, 1.0) == "undecided");
  CHECK(serve::verdict(serve::paired_difference{.pairs = 50, .ci95_lo = 0.001, .ci95_hi = 0.002}, 1.0) == "not met");
  CHECK(serve::verdict(serve::paired_difference{.pairs = 19, .ci95_lo = 0.0002, .ci95_hi = 0.0009}, 1.0) == "undecided");
  CHECK_THROWS(serve::compare_pairs(x, a, 1));
}

TEST_CASE("stream_completion times a streamed completion and reads its token count", "[serve][bench]") {
  demo_server s;
  serve::http_connection c(serve::parse_http_url(s.srv->url()));
  CHECK(serve::served_model_name(c, "", s.srv->url()) == "demo-llama");
  const std::vector<token_id> prompt{5, 6, 7, 8, 9, 10, 11, 12};
  // Twice on the same keep-alive connection.
  for (int round = 0; round < 2; ++round) {
    const auto t = serve::stream_completion(c, serve::completion_body("demo-llama", prompt, 6), "");
    CHECK(t.error == "");
    CHECK(t.status == 200);
    CHECK(t.done);
    CHECK(t.got_first_token);
    CHECK(t.completion_tokens == 6);
    CHECK(t.sent <= t.first_token);
    CHECK(t.first_token <= t.finished);
  }
  // A refusal comes back as an error, not a throw.
  const auto bad = serve::stream_completion(c, serve::completion_body("other-model", prompt, 6), "");
  CHECK(bad.status == 404);
  CHECK_THAT(bad.error, Contains("status 404"));
  CHECK_FALSE(bad.done);
  CHECK_THROWS(serve::parse_http_url("https://127.0.0.1:1"));
}

TEST_CASE("mii-serve-load's run: every request streamed to the end", "[serve][bench]") {
  demo_server s;
  serve::load_options o;
  o.url = s.srv->url();
  o.clients = 2;
  o.requests = 4;
  o.prompt_lo = 4, o.prompt_hi = 12;
  o.gen_lo = 2, o.gen_hi = 5;
  o.vocab = 512;
  o.shared_prefix = 3;
  const auto r = serve::run_load(o);
  CHECK(r.failures == 0);
  CHECK(r.first_error == "");
  REQUIRE(r.samples.size() == 4);
  for (const auto& x : r.samples) {
    CHECK(x.ok);
    CHECK(x.prompt_tokens >= 7);
    CHECK(x.sent <= x.first_token);
    CHECK(x.first_token <= x.finished);
  }
  CHECK_THAT(serve::to_json(o, r), Contains("\"scenario\":\"load_http\""));
}

TEST_CASE("mii-serve-overhead's run: pairs of the same prompt, both paths exactly gen tokens", "[serve][bench]") {
  model_config cfg = demo_config();
  cfg.prefix_caching = false;
  auto pipe = mii::pipeline(fixture_dir("demo-llama"), cfg);
  serve::server_options so;
  so.port = 0;
  so.http_threads = 2;
  so.service.served_model_name = "demo-llama";
  serve::server srv(pipe, std::nullopt, so);
  serve::overhead_options o;
  o.requests = 5;
  o.warmup = 1;
  o.prompt = 6;
  o.gen = 3;
  o.seed = 3;
  std::int64_t progress = 0;
  o.progress = [&](std::int64_t n) { progress = n; };
  const auto r = serve::run_overhead(pipe, srv, o);
  CHECK(progress == 5);
  CHECK(r.failed_pairs == 0);
  CHECK(r.vocab == 512);
  REQUIRE(r.pairs.size() == 5);
  for (const auto& p : r.pairs) {
    CHECK(p.ok(3));
    CHECK(p.in_process.ttft_s > 0);
    CHECK(p.in_process.ttft_s <= p.in_process.latency_s);
    CHECK(p.http.ttft_s > 0);
    CHECK(p.http.ttft_s <= p.http.latency_s);
  }
  CHECK(r.latency_diff.pairs == 5);
  CHECK(r.http_latency.count == 5);
  const std::string json = serve::to_json("demo-llama", o, r);
  CHECK_THAT(json, Contains("\"prefix_caching\":false"));
  CHECK_THAT(json, Contains("\"generated_tokens_exact\":5"));
  CHECK_THAT(serve::to_table(o, r), Contains("HTTP minus in-process"));
  // A prompt and generation longer than the context cannot run.
  o.prompt = pipe.max_sequence_length();
  CHECK_THROWS_WITH(serve::run_overhead(pipe, srv, o), Contains("more than this engine's context"));
  srv.shutdown(std::chrono::seconds(1));
}
