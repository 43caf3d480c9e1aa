// The request bodies mii-serve accepts, decoded into generate_params, field by field: OpenAI's
// /v1/completions and /v1/chat/completions (with vLLM's sampling extensions) and DeepSpeed-MII's
// REST form /mii/{deployment}. Every refusal is a request_error naming the field and its value;
// docs/serving.md has the table of fields. No HTTP and no engine here: this is what the fuzz
// target and the protocol tests drive.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <mii/config.hpp>

namespace mii::serve {

// One prompt of a request: text, or token ids (OpenAI's `prompt` accepts both).
struct prompt_input {
  std::string text;
  std::vector<token_id> ids;
  bool is_ids = false;
};

// POST /v1/completions.
struct completion_request {
  std::vector<prompt_input> prompts;  // params.n choices each: `index` = prompt * n + sample, as OpenAI and vLLM number them
  generate_params params;             // sampling and stop settings (n, logprobs); lengths are set by fit_to_context
  std::optional<std::int64_t> max_tokens;
  std::optional<std::int64_t> seed;   // the same seed for every prompt (each is its own request)
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  bool echo = false;                  // the prompt comes first in each choice's text
  // vLLM's prompt_logprobs: each choice carries the prompt tokens' log-probabilities with this
  // many alternatives. (echo with logprobs puts them in `logprobs` too, as OpenAI did.)
  std::optional<std::int32_t> prompt_logprobs;
};

// POST /v1/chat/completions.
struct chat_request {
  // params.n choices; params.prompt_logprobs (vLLM's extra field) gives the response a top-level
  // "prompt_logprobs" (not with stream).
  // The chat template's variables, one JSON object: {"messages": [...], "add_generation_prompt":
  // ..., plus chat_template_kwargs}. Message contents given as text parts are joined into one
  // string (with "\n"), as vLLM does for text-only templates.
  std::string template_variables;
  generate_params params;
  std::optional<std::int64_t> max_tokens;  // max_completion_tokens or max_tokens
  std::string max_tokens_param = "max_tokens";  // the one the request used, for error messages
  std::optional<std::int64_t> seed;
  bool stream = false;
  bool include_usage = false;
};

// POST /mii/{deployment}: {"prompts": [...], <MII's generate kwargs>}.
struct mii_request {
  std::vector<std::string> prompts;
  generate_params params;  // MII's names and defaults (max_length 1024, top_p 0.9, do_sample true)
  bool stream = false;     // mii-serve's extension: server-sent events (mii::client's streaming)
};

// The most choices (n) per prompt a request may ask for (OpenAI's limit).
inline constexpr std::int32_t max_choices_per_prompt = max_samples_per_prompt;

// `served_name` is the only model name accepted (an unknown one is 404, code model_not_found);
// a missing `model` means that one.
completion_request decode_completion_request(std::string_view body, std::string_view served_name);
chat_request decode_chat_request(std::string_view body, std::string_view served_name);
mii_request decode_mii_request(std::string_view body);

// OpenAI's lengths onto the engine's: the sequence may use the whole context (max_length), and
// max_tokens (or, when absent, `default_max_tokens` capped to what fits) limits the new tokens.
// Refuses a prompt that fills the context (400 naming `prompt_param`) and a max_tokens that does
// not fit beside the prompt (400 naming `max_tokens_param`), as vLLM does, instead of silently
// generating less than asked.
void fit_to_context(generate_params& p, std::optional<std::int64_t> max_tokens, std::optional<std::int64_t> default_max_tokens,
                    std::int64_t prompt_tokens, std::int64_t context, std::string_view prompt_param,
                    std::string_view max_tokens_param);

// The default of max_tokens: /v1/completions generates 16 tokens (OpenAI's default); chat
// completions run until the model stops or the context is full.
inline constexpr std::int64_t default_completion_max_tokens = 16;
// Stop strings per request: each is matched on every generated token, on the engine thread.
inline constexpr std::size_t max_stop_strings = 64;
// Prompts per /v1/completions or /mii request.
inline constexpr std::size_t max_prompts_per_request = 256;

}  // namespace mii::serve
