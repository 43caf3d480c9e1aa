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
  bool edits_logits() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f || !logit_bias.empty();
  }
  void fail_with(std::string why) {
    done = true;
    reason = generation_finish_reason::error;
    error = std::move(why);
  }
};

}  // namespace mii::runtime
