// The public configuration and result types, mirroring DeepSpeed-MII's ModelConfig,
// GenerateParamsConfig and Response where the fields mean something here.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mii {

using token_id = std::int32_t;

// How the engine is built (MII's ModelConfig + inference_engine_config.state_manager).
struct model_config {
  int tensor_parallel = 1;
  // Longest sequence (prompt + generated) a request may reach; default: the model's
  // max_position_embeddings, capped by max_context.
  std::optional<std::int64_t> max_length;
  // Under tensor parallelism, responses go to rank 0 only unless this is set (as in MII).
  bool all_rank_output = false;
  // When set ("bf16", "fp16", "fp32"), must match the dtype the binary computes in.
  std::optional<std::string> dtype;
  // "fp8": the linear layers' weights (attention qkv / o, MLP gate-up / down, MoE experts) are quantized
  // to FP8 e4m3 while loading, one scale per output channel, and their inputs per token at run
  // time (vLLM's dynamic FP8; docs/quantization.md). Empty: every weight in the compute dtype.
  std::string quantization;
  // tokenizer.json (or a directory holding one) to use instead of the checkpoint's.
  std::optional<std::filesystem::path> tokenizer;
  // The branch, tag or commit sha of a Hugging Face Hub id (mii::pipeline("org/name"), docs/hub.md);
  // a local directory ignores it.
  std::string revision = "main";

  // ---- state manager (DeepSpeed-FastGen's defaults) ----
  std::int64_t max_tracked_sequences = 2048;   // requests in flight at once
  std::int64_t max_ragged_batch_size = 768;    // tokens per forward pass
  std::int64_t max_ragged_sequence_count = 512;  // sequences per forward pass
  std::int64_t max_context = 8192;             // longest sequence the KV cache is planned for
  // ---- KV cache ----
  std::int32_t kv_block_size = 64;             // tokens per KV block
  std::optional<std::int64_t> kv_cache_blocks; // exact number of blocks (MII's "allocate" mode)
  double kv_cache_memory_fraction = 0.9;       // else: this share of the memory left after weights
  // "fp8_e4m3" (or "fp8"): keys and values stored as FP8 e4m3 with one fp32 scale per token and kv
  // head, 1.94x the tokens of a bf16 cache in the same memory at head_dim 128
  // (docs/quantization.md). "auto": the compute dtype.
  std::string kv_cache_dtype = "auto";
  // Automatic prefix caching: full KV blocks stay findable by their tokens after their sequence
  // ends, and a request that starts with the same tokens reuses them instead of computing them
  // again (docs/architecture.md). Results do not change; on by default, as in vLLM.
  bool prefix_caching = true;
  // Speed runs: weights are random values made on the device from config.json's shapes alone
  // (no tensor files are read). Outputs are meaningless; use with ignore_eos.
  bool random_weights = false;
  // ---- backend ----
  std::string backend = "auto";                // "auto" (GPU when usable), "cuda" or "host"
  bool cuda_graphs = true;                     // replay decode steps from CUDA graphs (cuda backend)
  int device = 0;                              // CUDA device (under TP: LOCAL_RANK when set)
  int host_threads = 0;                        // host backend worker threads (0: all cores)
  bool show_progress = true;                   // progress bar on stderr while loading (TTY only)
  // Scan every weight for NaN and infinity while loading and refuse the checkpoint naming the
  // tensor (costs one pass over the weights; mii-generate --check-weights).
  bool check_weights = false;
};

// cancelled: the caller cancelled the request (request_handle::cancel, a client that went away).
enum class generation_finish_reason { none, length, stop, error, cancelled };
std::string_view to_string(generation_finish_reason r);

// One generated token's log-probability and the most likely alternatives at its step.
struct token_logprobs {
  token_id token = -1;
  float logprob = 0.0f;
  std::vector<std::pair<token_id, float>> top;  // descending, generate_params.logprobs of them
};

// One piece of streamed output.
struct stream_event {
  std::size_t prompt_index = 0;     // which prompt of the call
  std::string_view text;            // new text (may be empty when a token completes no character)
  token_id token = -1;              // the token that produced it (-1 on the final event)
  bool finished = false;            // the request's last event (with generate_params.n > 1: every sample ended)
  generation_finish_reason finish_reason = generation_finish_reason::none;
  const token_logprobs* logprobs = nullptr;  // the token's log-probabilities (generate_params.logprobs)
  // generate_params.n > 1: which sample the text and token belong to, and the event that ends one
  // sample (sample_finished, with its finish_reason) before the request's final event. With n == 1
  // sample is 0 and no sample_finished event comes.
  std::size_t sample = 0;
  bool sample_finished = false;
  // generate_params.prompt_logprobs: one event (no text, token -1) carries them once they are known,
  // before the first generated token's event.
  const std::vector<token_logprobs>* prompt_logprobs = nullptr;
};
using stream_callback = std::function<void(const stream_event&)>;

// Per-call generation settings (MII's GenerateParamsConfig, plus a seed).
struct generate_params {
  std::int64_t max_length = 1024;              // prompt + generated tokens
  std::optional<std::int64_t> max_new_tokens;  // default: max_length - prompt length
  std::int64_t min_new_tokens = 0;             // EOS is suppressed until this many are generated
  bool ignore_eos = false;
  bool return_full_text = false;               // prepend the prompt to generated_text
  bool do_sample = true;
  double top_p = 0.9;
  std::optional<std::int64_t> top_k;
  std::optional<double> temperature;           // default 1.0; 0 means greedy
  std::vector<std::string> stop;               // stop strings (not included in the output)
  stream_callback stream;                      // receives text deltas as they are generated
  // Reproducible sampling: every prompt samples with this seed, so a prompt's text does not
  // depend on its place in the list or on what runs beside it; default: a random seed per prompt.
  std::optional<std::uint64_t> seed;
  // ---- beyond MII (the names and meanings of transformers, OpenAI and vLLM) ----
  double min_p = 0.0;                 // [0, 1]: drop candidates below min_p x the top one's probability
  double repetition_penalty = 1.0;    // > 0; transformers': logits of tokens in prompt + output divided
                                      // (positive) or multiplied (negative) by it
  double presence_penalty = 0.0;      // [-2, 2]; OpenAI's: minus this for every token the output has
  double frequency_penalty = 0.0;     // [-2, 2]; OpenAI's: minus this times the token's count in the output
  std::vector<std::pair<token_id, double>> logit_bias;  // added to those tokens' logits, each in [-100, 100]
  // Log-probabilities of the generated tokens and of the `logprobs` most likely alternatives at
  // each step (0..20), from the model's logits before penalties and temperature (vLLM's default).
  std::optional<std::int32_t> logprobs;
  // Samples per prompt (OpenAI's and vLLM's `n`): the prompt is computed once and its KV blocks
  // are shared by the n samples (docs/architecture.md). Sample i draws with seed + i, so it
  // equals, token for token, the same prompt run with n = 1 and seed + i (vLLM's rule); without a
  // seed each prompt gets a random one and its samples seed + 1, ... Greedy decoding (do_sample
  // false or temperature 0) with n > 1 gives n identical copies, as vLLM does. response.samples
  // holds them; stream events say which sample they belong to (stream_event::sample).
  std::int32_t n = 1;
  // Log-probabilities of the prompt's tokens (vLLM's prompt_logprobs, 0..20 alternatives): for every
  // prompt token after the first, its log-probability given the tokens before it and the most
  // likely alternatives there (response.prompt_logprobs). Such a request computes its whole prompt
  // (it takes no KV blocks from the prefix cache for the positions it needs logits of).
  std::optional<std::int32_t> prompt_logprobs;
};

// A request for serve(): requests that arrive while the engine runs (servers, load benchmarks).
struct serve_request {
  std::size_t id = 0;
  std::vector<token_id> prompt;
  const generate_params* params = nullptr;  // must outlive the request
};

// What the engine is doing now (a snapshot; safe to read from any thread).
struct engine_stats {
  std::int64_t waiting = 0;            // submitted, not yet admitted (queued or waiting for KV blocks)
  std::int64_t running = 0;            // admitted sequences (prefilling or decoding)
  std::int32_t kv_blocks_used = 0;
  std::int32_t kv_blocks_total = 0;
  std::int64_t steps = 0;              // forward passes run
  std::int64_t preemptions = 0;        // sequences evicted for KV blocks and recomputed later
  std::int64_t requests_finished = 0;  // by any finish reason, errors and cancellations included
  std::int64_t prompt_tokens = 0;      // prompt tokens of admitted requests
  std::int64_t generated_tokens = 0;   // tokens sampled
  // Prefix caching, in prompt tokens of admitted requests: needed, and found in the cache.
  std::int64_t prefix_cache_queried_tokens = 0;
  std::int64_t prefix_cache_hit_tokens = 0;
  std::int32_t kv_blocks_cached = 0;   // blocks findable by their tokens (held or not)
  // Copy-on-write: blocks copied because a sample of a generate_params.n > 1 request wrote into a
  // block it shared with the other samples (the prompt's last, partial block).
  std::int64_t kv_block_copies = 0;
  // Between consecutive steps, host time with nothing queued on the device: from a step's
  // results reaching the host to the next step's first device work (runtime/step_gap_clock.hpp).
  // On a GPU this is the device's idle time between steps; waits for requests are not counted.
  double host_gap_seconds = 0;
  std::int64_t host_gaps = 0;  // how many such intervals host_gap_seconds sums
};

// Where the memory went: weights and KV cache (bytes on the backend's device), and how long
// putting them there took (seconds, by phase of the model's load).
struct memory_report {
  std::size_t weight_bytes = 0;
  std::size_t kv_cache_bytes = 0;
  std::int32_t kv_blocks = 0;
  std::int32_t kv_block_size = 0;
  double load_open_s = 0;     // config.json and the checkpoint's headers read, weights planned
  double load_weights_s = 0;  // weights read, converted and on the device (copies finished)
  double load_kv_s = 0;       // KV cache and logits allocated
};

// The largest generate_params.n (OpenAI's limit). An engine may allow fewer: n samples decode in
// one step, so n is at most model_config.max_ragged_sequence_count.
inline constexpr std::int32_t max_samples_per_prompt = 128;

// Throws mii::error naming the field and value ("generate_params.top_p must be in (0, 1], got 1.5").
void validate(const generate_params& p);

// One of the generate_params.n samples of a prompt (response::samples).
struct sample_output {
  std::size_t index = 0;            // 0 .. n - 1; drawn with seed + index
  std::string generated_text;
  std::int64_t generated_length = 0;
  generation_finish_reason finish_reason = generation_finish_reason::none;
  std::vector<token_id> token_ids;
  std::vector<token_logprobs> logprobs;
};

struct response {
  std::string generated_text;
  std::int64_t prompt_length = 0;
  std::int64_t generated_length = 0;
  generation_finish_reason finish_reason = generation_finish_reason::none;
  std::vector<token_id> token_ids;  // generated ids (including a final EOS)
  std::string error;                // set when finish_reason == error (e.g. prompt too long)
  std::vector<token_logprobs> logprobs;  // one per generated token, when generate_params.logprobs is set
  // generate_params.prompt_logprobs: one entry per prompt token after the first (entry i is prompt
  // token i + 1, given tokens 0..i); the first token has none.
  std::vector<token_logprobs> prompt_logprobs;
  // generate_params.n > 1: all n samples in index order. The fields above are then sample 0's
  // (samples[0] repeats them), so code written for one sample per prompt keeps working. Empty when
  // n == 1 or when the request failed before it sampled.
  std::vector<sample_output> samples;

  std::string to_json() const;
};
// Prints generated_text, like MII's Response.
std::ostream& operator<<(std::ostream& os, const response& r);

}  // namespace mii
