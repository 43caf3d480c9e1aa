// Token sampling: greedy, temperature, top-k, top-p, min-p, with a counter-based random stream per
// request (Philox-4x32-10 keyed by the request's seed, counter = the token's index), so a seeded
// request samples the same tokens whatever else shares its batch. The host implementation here
// is the reference; the CUDA sampler follows the same steps.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace mii::runtime {

struct sample_params {
  bool greedy = true;
  float temperature = 1.0f;     // > 0 when sampling
  std::int32_t top_k = 0;       // 0: off
  float top_p = 1.0f;           // 1: off
  float min_p = 0.0f;           // 0: off; else drop candidates below min_p x the top candidate's probability
  std::uint64_t seed = 0;
  std::uint64_t step = 0;       // index of the token being sampled within its request
  bool suppress_eos = false;    // min_new_tokens not reached yet: EOS ids get -inf
};

// One logit changed before sampling (repetition / presence / frequency penalties, logit_bias):
// x -> (x > 0 ? x * scale_pos : x * scale_neg) + add, so transformers' repetition penalty (divide
// positive logits, multiply negative ones) and OpenAI's additive penalties are one operation.
struct logit_edit {
  std::int32_t row = 0;    // row of the step's logits
  std::int32_t token = 0;
  float scale_pos = 1.0f, scale_neg = 1.0f, add = 0.0f;
};
inline float apply_edit(float x, const logit_edit& e) { return (x > 0.0f ? x * e.scale_pos : x * e.scale_neg) + e.add; }

// Philox-4x32-10: a uniform float in [0, 1) for (seed, counter).
float philox_uniform(std::uint64_t seed, std::uint64_t counter);

// Samples one id from `logits[vocab]`. `eos_ids` are masked when params.suppress_eos.
// Ties in greedy go to the lowest id. Order, as transformers' warpers: temperature, top-k,
// top-p, min-p (relative to the most likely candidate), then the draw.
std::int32_t sample_row(const float* logits, std::int64_t vocab, const sample_params& params,
                        std::span<const std::int32_t> eos_ids);

// Log-probabilities, from the logits as the model made them (before penalties and temperature,
// as vLLM returns them by default): log(sum(exp(x))) of a row, and its `n` largest logits
// (descending, the lower id first on ties), host reference of Backend::summarize_rows.
struct row_summary {
  float logsumexp = 0.0f;
  std::vector<std::int32_t> top_ids;
  std::vector<float> top_logits;
};
row_summary summarize_row(const float* logits, std::int64_t vocab, std::int32_t n);

// What model_runner::sample returns for the rows that asked for log-probabilities, in the order
// asked: log(sum(exp)), the sampled token's logit and the top_n largest logits (ids -1 past the
// vocabulary), all from the logits before any edit.
struct sampled_logprobs {
  std::vector<float> lse, sampled;
  std::vector<std::int32_t> top_ids;
  std::vector<float> top_logits;
};

}  // namespace mii::runtime
