// The JSON mii-serve answers with: OpenAI's completion, chat completion, chunk, model list and
// error objects, and DeepSpeed-MII's response list. Shapes only; no HTTP here.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <mii/config.hpp>
#include <mii/tokenizer/tokenizer.hpp>

namespace mii::serve {

// What every OpenAI object of one request repeats.
struct openai_meta {
  std::string id;       // "cmpl-..." or "chatcmpl-..."
  std::int64_t created = 0;  // Unix seconds
  std::string model;
};

struct usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

struct choice_text {
  std::size_t index = 0;
  std::string text;
  generation_finish_reason finish_reason = generation_finish_reason::none;
  std::string logprobs;  // the choice's "logprobs" object as JSON; empty: null
  std::string prompt_logprobs;  // completions: vLLM's "prompt_logprobs" list as JSON; empty: no such field
};

// A prompt's log-probabilities (generate_params.prompt_logprobs) for the answer's shapes.
struct prompt_logprob_list {
  token_id first = -1;                                   // the first prompt token (it has none)
  const std::vector<token_logprobs>* rest = nullptr;     // the others', in order
  std::int32_t top = 0;                                  // alternatives to write per token
};

// Log-probabilities in OpenAI's shapes. Completions: {"tokens", "token_logprobs", "top_logprobs"
// (one {text: logprob} object per token), "text_offset" (from `text_offset`)}. Chat: {"content":
// [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}], "refusal": null}.
// A token's text is its own decoding ("token_id:N" without a tokenizer).
// With `prompt` (completions with echo and logprobs) the prompt's tokens come first, the first
// one with null log-probability and alternatives, as OpenAI's legacy API and vLLM answer.
std::string completion_logprobs_json(const tokenizer* tok, const std::vector<token_logprobs>& lps, std::int64_t text_offset,
                                     const prompt_logprob_list* prompt = nullptr);
// vLLM's prompt_logprobs: [null, {"ID": {"logprob", "rank", "decoded_token"}, ...}, ...], one entry per
// prompt token: null for the first, then the token itself and its `top` alternatives. rank is the
// place among the alternatives (1: the most likely); null for a prompt token not among them.
std::string prompt_logprobs_json(const tokenizer* tok, const prompt_logprob_list& p);
std::string chat_logprobs_json(const tokenizer* tok, const std::vector<token_logprobs>& lps);
std::string token_text(const tokenizer* tok, token_id id);

// OpenAI's finish_reason: "stop" (EOS or a stop string), "length", or null while unfinished.
std::optional<std::string_view> openai_finish_reason(generation_finish_reason r);

// {"error": {"message", "type", "param", "code"}}; empty param/code are written as null.
std::string error_json(int status, std::string_view message, std::string_view param = {}, std::string_view code = {});

// Non-streamed answers.
std::string completion_json(const openai_meta& m, const std::vector<choice_text>& choices, const usage& u);
// `prompt_logprobs` (vLLM's top-level field of chat completions): prompt_logprobs_json's list, or empty.
std::string chat_completion_json(const openai_meta& m, const std::vector<choice_text>& choices, const usage& u,
                                 std::string_view prompt_logprobs = {});

// Streamed chunks. With include_usage every chunk carries "usage": null and a last chunk with
// no choices carries the totals, as OpenAI does.
std::string completion_chunk_json(const openai_meta& m, std::size_t index, std::string_view text,
                                  generation_finish_reason finish_reason, bool include_usage,
                                  std::string_view logprobs = {}, std::string_view prompt_logprobs = {});
// `role`: the first chunk of a choice says who speaks ({"role": "assistant", "content": ""}).
std::string chat_chunk_json(const openai_meta& m, std::size_t index, std::optional<std::string_view> role,
                            std::optional<std::string_view> content, generation_finish_reason finish_reason,
                            bool include_usage, std::string_view logprobs = {});
std::string usage_chunk_json(const openai_meta& m, std::string_view object, const usage& u);

// GET /v1/models (and /v1/models/{id}).
std::string model_json(std::string_view name, std::int64_t created, std::int64_t max_model_len);
std::string model_list_json(std::string_view name, std::int64_t created, std::int64_t max_model_len);

// DeepSpeed-MII's Response, as its REST gateway lists them: generated_text, prompt_length,
// generated_length, finish_reason (nothing else: MII's Response(**dict) refuses extra keys).
std::string mii_response_json(const response& r);
std::string mii_response_list_json(const std::vector<response>& rs);
// mii-serve's streaming extension of /mii: deltas, then each prompt's final response.
std::string mii_delta_json(std::size_t index, std::string_view text, const std::vector<token_id>& token_ids);
std::string mii_final_json(std::size_t index, const response& r);

}  // namespace mii::serve
