// The optional full scan of a checkpoint for NaN and infinity (model_config.check_weights,
// mii-generate --check-weights). A non-finite weight loads like any other and turns every
// logit into NaN, which greedy decoding reads as token 0; the scan names the tensor instead.
#pragma once
#include <cstdint>
#include <optional>

#include <mii/io/safetensors.hpp>

namespace mii::io {

struct non_finite_element {
  std::int64_t index = 0;  // flat element index in the tensor
  float value = 0;         // NaN, +inf or -inf
};

// The first NaN or infinity in `t` (any dtype mii loads), or nullopt.
std::optional<non_finite_element> first_non_finite(const tensor_view& t);

// Throws mii::error naming the file, the tensor (the first in name order holding one), the first
// bad element's position ([row, col] for a matrix) and its value. Tensors are scanned on up to
// `threads` threads (0: the hardware's count). A synthetic checkpoint has nothing to scan.
void require_finite(const checkpoint& ckpt, unsigned threads = 0);

}  // namespace mii::io
