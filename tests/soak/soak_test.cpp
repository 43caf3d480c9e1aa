// Soak: thousands of mixed requests through one engine on the host backend, with a KV cache so
// small that the scheduler preempts and recomputes all the time. Requests come in big batch calls
// (one generate_params per call) and through serve() with arrivals over time (parameters per
// request); lengths, stop strings and sampling parameters are random, and some requests are
// invalid. Checked:
//  - every valid request completes with exactly the result it gets when run alone (same tokens,
//    text and finish reason: greedy and seeded sampling are deterministic per request), its n
//    samples included (generate_params.n: they share the prompt's KV blocks and copy them on
//    write, and are preempted and recomputed like any sequence), and so do its prompt
//    log-probabilities; a sample of a seeded request equals the prompt alone with n = 1 and
//    seed + its index;
//  - every invalid prompt gets finish_reason error with a message, and the rest of its call runs;
//  - invalid parameters make a batch call throw mii::error before any work, and make a serve()
//    request end with an error response while the others are served;
//  - streamed deltas add up to each request's generated_text;
//  - no KV block stays in use after any call, and the resident memory does not grow.
//
// MII_SOAK_REQUESTS sets the number of requests (default 2,000: about 30 s in CI, Release);
// MII_TEST_SEED replays a run. Figures are printed at the end (docs/reliability.md).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/models/llama.hpp>
#include <mii/parallel/single.hpp>
#include <mii/runtime/engine.hpp>

#include "fixtures.hpp"
#include "test_files.hpp"
#include "tokenizer/unicode.hpp"

namespace {

using namespace mii;
using engine_t = runtime::engine<models::llama, backend::host, parallel::single>;

constexpr std::int64_t context_tokens = 48;  // model_config.max_length: the longest sequence
constexpr std::int32_t block_size = 4;
// Two sequences of the longest length (and a little): requests constantly wait for blocks, and
// running ones are preempted and recomputed.
constexpr std::int64_t cache_blocks = 2 * context_tokens / block_size + 3;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool under_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool under_sanitizer = true;
#else
constexpr bool under_sanitizer = false;
#endif
#else
constexpr bool under_sanitizer = false;
#endif

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * std::size_t(::sysconf(_SC_PAGESIZE));
}

std::size_t soak_requests() {
  if (const char* env = std::getenv("MII_SOAK_REQUESTS")) return std::size_t(std::strtoull(env, nullptr, 10));
  return 2000;
}

model_config soak_config() {
  model_config c;
  c.backend = "host";
  c.max_length = context_tokens;
  c.kv_block_size = block_size;
  c.kv_cache_blocks = cache_blocks;
  c.max_ragged_batch_size = 64;
  c.max_ragged_sequence_count = 16;
  c.max_tracked_sequences = 24;
  c.show_progress = false;
  return c;
}

// Random requests over the demo model's training text, so that stop strings and EOS do occur.
class request_maker {
 public:
  explicit request_maker(std::uint64_t seed) : rng_(seed) {
    text_ = test::read_text(test::source_dir() / "tests/fixtures/demo_text.txt");
  }

  std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  // A prompt: a piece of the text (sometimes long enough to exceed the context, sometimes
  // broken UTF-8, sometimes empty).
  std::string prompt() {
    const std::size_t start = below(text_.size());
    const std::size_t len = chance(0.05) ? 150 + below(200) : 1 + below(60);
    std::string p = text_.substr(start, len);
    if (chance(0.04)) p.insert(below(p.size() + 1), "\xff");
    if (chance(0.01)) p.clear();
    return p;
  }

  generate_params params() {
    generate_params p;
    p.max_length = chance(0.2) ? 8 + std::int64_t(below(40)) : 1024;
    if (chance(0.8)) p.max_new_tokens = 1 + std::int64_t(below(30));
    if (chance(0.2)) p.min_new_tokens = std::int64_t(below(4));
    if (p.max_new_tokens && p.min_new_tokens > *p.max_new_tokens) p.min_new_tokens = *p.max_new_tokens;
    p.ignore_eos = chance(0.2);
    p.return_full_text = chance(0.1);
    p.do_sample = chance(0.6);
    if (p.do_sample) {
      p.seed = rng_();
      p.top_p = chance(0.5) ? 1.0 : 0.5 + 0.5 * std::uniform_real_distribution<double>(0, 1)(rng_);
      if (chance(0.5)) p.top_k = std::int64_t(below(60));
      if (chance(0.7)) p.temperature = chance(0.1) ? 0.0 : 0.3 + 1.5 * std::uniform_real_distribution<double>(0, 1)(rng_);
    }
    static const char* const stops[] = {"the", " a", ".", ",", "ing", "\n", "is", "model", "ed ", "on", "e", "Monday"};
    for (std::size_t n = chance(0.5) ? 1 + below(3) : 0; n > 0; --n) p.stop.emplace_back(stops[below(std::size(stops))]);
    if (chance(0.2)) p.n = 2 + std::int32_t(below(3));
    if (chance(0.1)) p.prompt_logprobs = std::int32_t(below(3));
    return p;
  }

  // Parameters that validate() must refuse.
  generate_params invalid_params() {
    generate_params p;
    switch (below(11)) {
      case 9: p.n = chance(0.5) ? 0 : 129; break;
      case 10: p.prompt_logprobs = 21; break;
      case 0: p.max_length = 0; break;
      case 1: p.max_new_tokens = 0; break;
      case 2: p.max_new_tokens = 2, p.min_new_tokens = 3; break;
      case 3: p.top_p = 0.0; break;
      case 4: p.top_p = 1.5; break;
      case 5: p.top_k = -1; break;
      case 6: p.temperature = -0.5; break;
      case 7: p.temperature = std::numeric_limits<double>::infinity(); break;
      default: p.stop = {"ok", ""}; break;
    }
    return p;
  }

 private:
  std::mt19937_64 rng_;
  std::string text_;
};

struct figures {
  std::size_t requests = 0, valid = 0, error_responses = 0, refused_calls = 0, calls = 0, tokens = 0, samples = 0;
};

bool params_valid(const generate_params& p) {
  try {
    validate(p);
    return true;
  } catch (const mii::error&) {
    return false;
  }
}

// What a prompt of `len` tokens must get under `p`: an error exactly when it cannot run.
bool prompt_can_run(std::int64_t len, const generate_params& p) {
  return len > 0 && len < p.max_length && len < context_tokens;
}

void same_as_alone(const response& got, const response& alone, const std::string& what) {
  INFO(what);
  REQUIRE(alone.finish_reason != generation_finish_reason::error);
  CHECK(got.finish_reason == alone.finish_reason);
  CHECK(got.token_ids == alone.token_ids);
  CHECK(got.generated_text == alone.generated_text);
  CHECK(got.prompt_length == alone.prompt_length);
  REQUIRE(got.samples.size() == alone.samples.size());
  for (std::size_t k = 0; k < got.samples.size(); ++k) {
    INFO("sample " << k);
    CHECK(got.samples[k].token_ids == alone.samples[k].token_ids);
    CHECK(got.samples[k].generated_text == alone.samples[k].generated_text);
    CHECK(got.samples[k].finish_reason == alone.samples[k].finish_reason);
  }
  REQUIRE(got.prompt_logprobs.size() == alone.prompt_logprobs.size());
  for (std::size_t j = 0; j < got.prompt_logprobs.size(); ++j) {
    CHECK(got.prompt_logprobs[j].logprob == alone.prompt_logprobs[j].logprob);
    CHECK(got.prompt_logprobs[j].top == alone.prompt_logprobs[j].top);
  }
}

// Sample k of a seeded request with n > 1 is the prompt alone with n = 1 and seed + k.
template <class Run>
void sample_as_alone(const response& got, const generate_params& p, std::size_t k, Run&& run) {
  if (p.n < 2 || !p.seed || got.samples.size() != std::size_t(p.n)) return;
  generate_params one = p;
  one.n = 1;
  one.seed = *p.seed + k;
  one.stream = nullptr;
  const response alone = run(one);
  INFO("sample " << k << " against n = 1 with seed + " << k);
  CHECK(got.samples[k].token_ids == alone.token_ids);
  CHECK(got.samples[k].generated_text == alone.generated_text);
  CHECK(got.samples[k].finish_reason == alone.finish_reason);
}

// The streamed text of prompt i's sample k, as the response holds it.
std::string sample_text(const response& r, std::size_t k) { return r.samples.empty() ? r.generated_text : r.samples[k].generated_text; }

}  // namespace

TEST_CASE("soak: mixed requests through one engine with a tiny KV cache", "[soak]") {
  const std::uint64_t seed = test::test_seed("soak");
  const std::size_t target = soak_requests();
  engine_t engine(test::fixture_dir("demo-llama"), soak_config());
  const tokenizer& tok = engine.tok();
  request_maker make(seed);
  figures fig;
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t rss_start = 0;

  while (fig.requests < target) {
    // ---- a batch call: one parameter set, many prompts, some of them invalid --------------------
    {
      const generate_params p_call = make.params();
      std::vector<std::string> prompts(1 + make.below(40));
      for (auto& s : prompts) s = make.prompt();
      std::map<std::pair<std::size_t, std::size_t>, std::string> streamed;  // (prompt, sample)
      std::map<std::size_t, int> finished_events;
      generate_params p = p_call;
      const bool streaming = make.chance(0.3);
      if (streaming)
        p.stream = [&](const stream_event& e) {
          streamed[{e.prompt_index, e.sample}] += e.text;
          if (e.finished) ++finished_events[e.prompt_index];
        };
      const auto out = engine.generate(prompts, p);
      ++fig.calls;
      REQUIRE(engine.sched().blocks().used_count() == 0);
      REQUIRE(engine.sched().idle());
      REQUIRE(out.size() == prompts.size());
      for (std::size_t i = 0; i < prompts.size(); ++i) {
        const response& r = out[i];
        const bool utf8 = detail::tok::find_invalid_utf8(prompts[i]) == std::string_view::npos;
        const bool can_run = utf8 && prompt_can_run(std::int64_t(tok.encode(prompts[i]).size()), p_call);
        INFO("batch prompt " << i << ": \"" << prompts[i] << "\", error: " << r.error);
        ++fig.requests;
        REQUIRE((r.finish_reason == generation_finish_reason::error) == !can_run);
        if (!can_run) {
          CHECK(!r.error.empty());
          CHECK(finished_events[i] == 0);
          ++fig.error_responses;
          continue;
        }
        ++fig.valid;
        fig.tokens += r.token_ids.size();
        fig.samples += std::max<std::size_t>(r.samples.size(), 1);
        const generate_params& alone = p_call;  // a seeded prompt samples as it does alone
        same_as_alone(r, engine.generate(std::vector<std::string>{prompts[i]}, alone).at(0), "batch prompt alone");
        sample_as_alone(r, p_call, make.below(std::size_t(p_call.n)),
                        [&](const generate_params& one) { return engine.generate(std::vector<std::string>{prompts[i]}, one).at(0); });
        if (streaming) {
          for (std::size_t k = 0; k < std::size_t(p_call.n); ++k) {
            const std::string text = sample_text(r, k);
            CHECK(streamed[{i, k}] == (p.return_full_text ? text.substr(prompts[i].size()) : text));
          }
          CHECK(finished_events[i] == 1);
        }
      }
      REQUIRE(engine.sched().blocks().used_count() == 0);
    }

    // ---- a call with invalid parameters: refused before any work ------------------------------------
    if (make.chance(0.3)) {
      const generate_params bad = make.invalid_params();
      const std::vector<std::string> prompts{make.prompt(), "DeepSpeed is"};
      CHECK_THROWS_AS(engine.generate(prompts, bad), mii::error);
      ++fig.refused_calls;
      REQUIRE(engine.sched().blocks().used_count() == 0);
      REQUIRE(engine.sched().idle());
    }

    // ---- serve(): requests arriving over time, each with its own parameters -------------------------
    {
      const std::size_t n = 1 + make.below(60);
      std::vector<generate_params> params(n);  // outlive their requests
      std::vector<std::vector<token_id>> prompts(n);
      std::vector<bool> params_ok(n), can_run(n);
      std::vector<std::map<std::size_t, std::string>> streamed(n);  // per sample
      std::vector<int> finished_events(n);
      for (std::size_t i = 0; i < n; ++i) {
        params[i] = make.chance(0.03) ? make.invalid_params() : make.params();
        params_ok[i] = params_valid(params[i]);
        const std::string text = make.prompt();
        if (detail::tok::find_invalid_utf8(text) == std::string_view::npos) prompts[i] = tok.encode(text);
        if (make.chance(0.02)) prompts[i].push_back(engine.shape().vocab + token_id(make.below(5)));  // not a token
        can_run[i] = params_ok[i] && prompt_can_run(std::int64_t(prompts[i].size()), params[i]) &&
                     std::all_of(prompts[i].begin(), prompts[i].end(),
                                 [&](token_id t) { return t >= 0 && t < engine.shape().vocab; });
        if (make.chance(0.3))
          params[i].stream = [&, i](const stream_event& e) {
            REQUIRE(e.prompt_index == i);
            streamed[i][e.sample] += e.text;
            if (e.finished) ++finished_events[i];
          };
      }
      std::vector<std::optional<response>> got(n);
      std::size_t submitted = 0;
      engine.serve(
          [&](std::vector<serve_request>& incoming) {
            for (std::size_t k = make.below(5); k > 0 && submitted < n; --k, ++submitted)
              incoming.push_back({submitted, prompts[submitted], &params[submitted]});
          },
          [&](std::size_t id, response r) {
            REQUIRE(id < n);
            REQUIRE(!got[id]);
            got[id] = std::move(r);
          },
          [&] { return submitted < n; });
      ++fig.calls;
      REQUIRE(engine.sched().blocks().used_count() == 0);
      REQUIRE(engine.sched().idle());
      for (std::size_t i = 0; i < n; ++i) {
        INFO("serve request " << i << " of " << prompts[i].size() << " tokens");
        REQUIRE(got[i]);
        ++fig.requests;
        const response& r = *got[i];
        REQUIRE((r.finish_reason == generation_finish_reason::error) == !can_run[i]);
        if (!can_run[i]) {
          CHECK(!r.error.empty());
          ++fig.error_responses;
          continue;
        }
        ++fig.valid;
        fig.tokens += r.token_ids.size();
        fig.samples += std::max<std::size_t>(r.samples.size(), 1);
        generate_params alone = params[i];
        alone.stream = nullptr;
        alone.seed = params[i].seed.value_or(i);  // serve()'s default seed is the request id
        same_as_alone(r, engine.generate_ids(std::vector<std::vector<token_id>>{prompts[i]}, alone).at(0), "serve request alone");
        sample_as_alone(r, params[i], make.below(std::size_t(params[i].n)), [&](const generate_params& one) {
          return engine.generate_ids(std::vector<std::vector<token_id>>{prompts[i]}, one).at(0);
        });
        if (params[i].stream) {
          for (std::size_t k = 0; k < std::size_t(params[i].n); ++k) {
            // return_full_text puts the prompt (decoded from its ids) before what was streamed.
            if (params[i].return_full_text) CHECK(sample_text(r, k).ends_with(streamed[i][k]));
            else CHECK(streamed[i][k] == sample_text(r, k));
          }
          CHECK(finished_events[i] == 1);
        }
      }
    }
    if (rss_start == 0) rss_start = resident_bytes();  // after the first round: warm allocations
  }

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::size_t rss_end = resident_bytes();
  std::printf(
      "[soak] requests %zu (valid %zu, error responses %zu, %zu samples) in %zu calls, %zu refused calls, %zu tokens "
      "generated, %lld preemptions, %lld block copies, %.1f s, RSS %.1f MiB -> %.1f MiB, KV blocks in use %d of %d\n",
      fig.requests, fig.valid, fig.error_responses, fig.samples, fig.calls, fig.refused_calls, fig.tokens,
      static_cast<long long>(engine.sched().preemptions()), static_cast<long long>(engine.sched().blocks().copies()),
      seconds, double(rss_start) / (1 << 20),
      double(rss_end) / (1 << 20), engine.sched().blocks().used_count(), engine.sched().blocks().total());
  CHECK(engine.sched().preemptions() > 0);  // the cache was small enough to exercise preemption
  CHECK(engine.sched().blocks().copies() > 0);  // samples shared blocks and copied them on write
  CHECK(fig.samples > fig.valid);
  CHECK(fig.error_responses > 0);
  CHECK(fig.valid > fig.requests / 2);
  // Flat memory: what the first round allocated is reused; allow allocator slack, not growth with
  // the number of requests. Under a sanitizer the resident size measures its quarantine and
  // shadow memory instead (LeakSanitizer checks for leaks there).
  if (!under_sanitizer) CHECK(rss_end <= rss_start + (8u << 20));
}
