// One request's state inside the engine: its tokens, limits, sampling settings, the streaming
// detokenizer and stop-string matcher, and how it ended.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <mii/config.hpp>
#include <mii/runtime/sampling.hpp>
#include <mii/runtime/scheduler.hpp>
#include <mii/runtime/stop_strings.hpp>
#include <mii/tokenizer/tokenizer.hpp>

namespace mii::runtime {

struct request : sequence_state {
  std::size_t index = 0;               // position in the caller's list (or the serve() id)
  const generate_params* params = nullptr;  // the settings it was submitted with
  std::string prompt_text;
  std::vector<token_id> tokens;        // prompt, then generated tokens
  std::int64_t prompt_len = 0;
  std::int64_t max_new = 0, min_new = 0;
  bool ignore_eos = false;
  sample_params sampling;
  std::optional<tokenizer::stream_decoder> detok;
  stop_matcher stop;
  std::string text;                    // generated text emitted so far
  bool done = false;
  generation_finish_reason reason = generation_finish_reason::none;
  std::string error;

  std::int64_t generated() const { return std::int64_t(tokens.size()) - prompt_len; }
  void fail_with(std::string why) {
    done = true;
    reason = generation_finish_reason::error;
    error = std::move(why);
  }
};

}  // namespace mii::runtime
