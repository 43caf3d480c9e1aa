// FP8 linear layers (model_config.quantization = "fp8", docs/quantization.md): the scheme vLLM
// calls dynamic FP8. A weight [out, in] is stored as e4m3 values with one fp32 scale per output
// row (scale = max |w[o][:]| / 448, so the largest value of every row maps to e4m3's largest);
// at run time each input row gets its own scale the same way (max |x[r][:]| / 448), is rounded
// to e4m3, and y[r][o] = (sum_i xq[r][i] * wq[o][i]) * xs[r] * ws[o] (+ bias) (+ y).
//
// With a static input scale (compressed-tensors checkpoints whose input activations are static
// per tensor: one `input_scale` per layer) every row uses that scale instead, and values beyond
// e4m3's range saturate: xq[r][i] = e4m3(clamp(x[r][i] / s_in, -448, 448)), xs[r] = s_in.
//
// Every backend computes exactly this: the host backend in fp32 (the reference CI checks against
// transformers with the same quantization), the cuda backend with e4m3 tensor cores / an FP8 GEMV.
// The products of two e4m3 values are exact in fp32, so backends differ only in the order of
// the fp32 sums.
#pragma once
#include <cstdint>

#include <mii/dtype.hpp>

namespace mii::backend {

// One quantized weight: e4m3 bytes [out, in] (row-major) and fp32 scales [out].
struct fp8_weight {
  const std::uint8_t* data = nullptr;
  const float* scale = nullptr;
  const float* input_scale = nullptr;  // one fp32 value (static input scale), or null: per token
};

// Where a quantized linear puts its input's rows after quantization: e4m3 bytes [rows, in] and
// fp32 scales [rows]. Owned by the caller (the transformer sizes it for its largest input) so
// that CUDA graphs see fixed addresses.
struct fp8_scratch {
  std::uint8_t* data = nullptr;
  float* scale = nullptr;
};

// A backend's storage of one FP8 weight (Buffer: its buffer template), what load_fp8 returns.
template <template <class> class Buffer>
struct fp8_weight_buffers {
  Buffer<std::uint8_t> data;  // [rows, cols] e4m3
  Buffer<float> scale;        // [rows]
  Buffer<float> input_scale;  // [1] static input scale, or empty: inputs quantized per token
  bool empty() const { return data.empty(); }
  fp8_weight view() const { return {data.data(), scale.data(), input_scale.empty() ? nullptr : input_scale.data()}; }
};

}  // namespace mii::backend
