// How far GPU logits in bf16 or fp16 may land from a reference, and whether a differing greedy
// pick fails the test. The figures were measured, with transformers' own bf16/fp16 runs as the
// yardstick; tests/gpu/fixtures_gpu_test.cpp's header gives the numbers. Shared by the
// single-GPU fixture tests (against transformers' fp32) and the tensor-parallel worker (tp = N
// against tp = 1, both bf16, which differ where partial sums are rounded — the same size of
// difference as bf16 against fp32).
#pragma once
#include <type_traits>

#include <mii/dtype.hpp>

namespace mii::test {

struct logit_budget {
  double logits;       // relative L2 error of the logits
  bool strict_greedy;  // every greedy mismatch must be a near-tie
};

// fp16: 5e-3, strict (the sharp check: a bug shows in both dtypes, rounding does not).
// bf16 dense: 2e-2, strict. bf16 MoE: 1e-1, mismatches reported, not failed: rounding flips the
// router's top-k on near-tied experts, and a flipped expert changes that token's output wholesale.
template <class D>
logit_budget logit_budget_for(bool moe) {
  if constexpr (std::is_same_v<D, fp16_t>) return {5e-3, true};
  else return moe ? logit_budget{1e-1, false} : logit_budget{2e-2, true};
}

// A greedy mismatch is a near-tie when the two tokens' logits are within the budget (at most
// 2e-2) of the row's largest |logit|.
inline bool near_tie(const logit_budget& b, float gap, float scale) {
  return gap <= float(b.logits < 2e-2 ? b.logits : 2e-2) * scale;
}

}  // namespace mii::test
