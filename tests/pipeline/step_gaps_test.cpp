// engine_stats::host_gap_seconds / host_gaps (runtime/step_gap_clock.hpp): an interval is counted
// only between a step whose results the host waited for and the next step, never across a wait
// for requests, and never after a prefill chunk that samples nothing (its successor queues behind
// it on the device).
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

#include <mii/backend/host/host_backend.hpp>
#include <mii/models/llama.hpp>
#include <mii/parallel/single.hpp>
#include <mii/runtime/engine.hpp>
#include <mii/runtime/step_gap_clock.hpp>

#include "fixtures.hpp"
#include "pipeline_support.hpp"
#include "test_files.hpp"

using engine_t = mii::runtime::engine<mii::models::llama, mii::backend::host, mii::parallel::single>;

TEST_CASE("step_gap_clock counts from a synchronization to the next queued work, and forgets idle waits",
          "[pipeline][stats]") {
  using namespace std::chrono_literals;
  mii::runtime::step_gap_clock c;
  c.work_queued();  // nothing was waited for yet
  CHECK(c.gaps() == 0);
  c.synchronized();
  std::this_thread::sleep_for(2ms);
  c.work_queued();
  c.work_queued();  // the same step's second piece of work: no second gap
  CHECK(c.gaps() == 1);
  CHECK(c.seconds() >= 0.002);
  CHECK(c.seconds() < 1.0);
  const double one = c.seconds();
  c.synchronized();
  c.idle();
  std::this_thread::sleep_for(2ms);
  c.work_queued();
  CHECK(c.gaps() == 1);
  CHECK(c.seconds() == one);
}

TEST_CASE("engine_stats counts a host gap between sampled steps only", "[pipeline][stats]") {
  mii::model_config cfg = mii::test::host_config(256);
  cfg.kv_block_size = 4;
  cfg.max_length = 64;
  cfg.max_ragged_batch_size = 16;  // a 40-token prompt takes three prefill steps: 16, 16, 8
  cfg.max_ragged_sequence_count = 4;
  cfg.host_threads = 1;
  engine_t e(mii::test::fixture_dir("demo-llama"), cfg);
  mii::generate_params p;
  p.do_sample = false;
  p.ignore_eos = true;
  p.max_new_tokens = 5;
  std::vector<std::vector<std::int32_t>> prompts(1);
  for (int i = 0; i < 40; ++i) prompts[0].push_back(3 + i);

  const auto t0 = std::chrono::steady_clock::now();
  e.generate_ids(prompts, p);
  // Steps: 3 prefill chunks (the last samples the first token), then 4 decode steps. Gaps: after
  // each of the 4 sampling steps that has a successor; the first two chunks waited for nothing.
  mii::engine_stats s = e.stats();
  CHECK(s.steps == 7);
  CHECK(s.host_gaps == 4);
  CHECK(s.host_gap_seconds > 0);
  CHECK(s.host_gap_seconds < std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

  // The engine ran dry in between: the wait before the next call is not a gap.
  const double before_wait = s.host_gap_seconds;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  p.max_new_tokens = 3;
  prompts[0] = {5, 6, 7};
  e.generate_ids(prompts, p);  // one prefill step that samples, then 2 decode steps
  s = e.stats();
  CHECK(s.steps == 10);
  CHECK(s.host_gaps == 6);
  CHECK(s.host_gap_seconds - before_wait < 0.2);  // two gaps of bookkeeping, never the 200 ms wait
}
