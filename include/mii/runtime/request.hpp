// One request's state inside the engine: its tokens, limits, sampling settings, the streaming
// detokenizer and stop-string matcher, where its output goes, and how it ended. Self-contained
// (no pointer into the caller's generate_params), so the engine may outlive the call that made
// it and a tensor-parallel rank can rebuild it from rank 0's description (request_codec.hpp).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <mii/config.hpp>
#include <mii/runtime/request_channel.hpp>
#include <mii/runtime/sampling.hpp>
#include <mii/runtime/scheduler.hpp>
#include <mii/runtime/stop_strings.hpp>
#include <mii/tokenizer/tokenizer.hpp>

namespace mii::runtime {

// The seed sample i of a request draws with (generate_params.n): vLLM's rule, so that sample i
// equals the same prompt run alone with n = 1 and this seed.
inline std::uint64_t sample_seed(std::uint64_t seed, std::int32_t i) { return seed + std::uint64_t(i); }

struct request : sequence_state {
  std::uint64_t id = 0;                // the engine's id (unique per engine)
  std::size_t index = 0;               // position in the caller's list (or the serve() id)
  std::string prompt_text;             // empty when the prompt came as token ids
  std::vector<token_id> tokens;        // prompt, then generated tokens
  std::int64_t prompt_len = 0;
  std::int64_t max_new = 0, min_new = 0;
  bool ignore_eos = false;
  bool return_full_text = false;
  sample_params sampling;
  // Penalties and biases, turned into logit edits before each of its samples (engine::run).
  float repetition_penalty = 1.0f, presence_penalty = 0.0f, frequency_penalty = 0.0f;
  std::vector<std::pair<token_id, float>> logit_bias;
  std::vector<token_id> prompt_vocabulary;                 // sorted distinct prompt ids (repetition)
  std::vector<std::pair<token_id, std::int32_t>> output_counts;  // sorted by id: generated ids and counts
  std::int32_t logprobs = -1;                              // alternatives per token; -1: no logprobs
  std::vector<token_logprobs> token_logprobs_out;
  // generate_params.prompt_logprobs: alternatives per prompt token (-1: none) and the entries
  // recorded so far (entry i: prompt token i + 1). Kept by sample 0.
  std::int32_t prompt_logprobs = -1;
  std::vector<token_logprobs> prompt_logprobs_out;
  // generate_params.n: this request is sample 0 and, at its first sample, forks into n samples;
  // samples 1..n-1 are requests of their own to the scheduler (sharing the prompt's KV blocks),
  // owned by sample 0 and answered through its channel when every sample is done.
  std::int32_t n = 1;
  std::int32_t sample_index = 0;
  request* first = nullptr;                        // samples 1..n-1: sample 0
  std::vector<std::unique_ptr<request>> siblings;  // sample 0, once forked: samples 1..n-1
  std::vector<std::string> stop_strings;
  std::optional<tokenizer::stream_decoder> detok;
  stop_matcher stop;
  std::shared_ptr<request_channel> channel;  // deltas and the response go here (may be null)
  std::string text;                    // generated text emitted so far
  bool in_scheduler = false;           // handed to the scheduler (counts against max_tracked_sequences)
  bool done = false;
  generation_finish_reason reason = generation_finish_reason::none;
  std::string error;

  std::int64_t generated() const { return std::int64_t(tokens.size()) - prompt_len; }
  bool forked() const { return !siblings.empty(); }
  // Sample 0 and its siblings: every sample's sequence ended (n == 1: this one).
  bool all_done() const {
    if (!done) return false;
    for (const auto& s : siblings)
      if (!s->done) return false;
    return true;
  }
  bool edits_logits() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f || !logit_bias.empty();
  }
  void fail_with(std::string why) {
    done = true;
    reason = generation_finish_reason::error;
    error = std::move(why);
  }
};

// Sample i (1..n-1) of request `r`, which is sample 0 and has sampled nothing yet: its settings,
// its prompt and seed sample_seed(r's seed, i), its channel; no detokenizer or stop matcher yet
// (engine_core::adopt) and no place in the KV cache (scheduler::fork).
std::unique_ptr<request> make_sample(request& r, std::int32_t i);

}  // namespace mii::runtime
