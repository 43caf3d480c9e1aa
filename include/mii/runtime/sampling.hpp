// Token sampling: greedy, temperature, top-k, top-p, with a counter-based random stream per
// request (Philox-4x32-10 keyed by the request's seed, counter = the token's index), so a seeded
// request samples the same tokens whatever else shares its batch. The host implementation here
// is the reference; the CUDA sampler follows the same steps.
#pragma once
#include <cstdint>
#include <span>

namespace mii::runtime {

struct sample_params {
  bool greedy = true;
  float temperature = 1.0f;     // > 0 when sampling
  std::int32_t top_k = 0;       // 0: off
  float top_p = 1.0f;           // 1: off
  std::uint64_t seed = 0;
  std::uint64_t step = 0;       // index of the token being sampled within its request
  bool suppress_eos = false;    // min_new_tokens not reached yet: EOS ids get -inf
};

// Philox-4x32-10: a uniform float in [0, 1) for (seed, counter).
float philox_uniform(std::uint64_t seed, std::uint64_t counter);

// Samples one id from `logits[vocab]`. `eos_ids` are masked when params.suppress_eos.
// Ties in greedy go to the lowest id.
std::int32_t sample_row(const float* logits, std::int64_t vocab, const sample_params& params,
                        std::span<const std::int32_t> eos_ids);

}  // namespace mii::runtime
