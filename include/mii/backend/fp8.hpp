// FP8 linear layers (model_config.quantization = "fp8", docs/quantization.md): the scheme vLLM
// calls dynamic FP8. A weight [out, in] is stored as e4m3 values with one fp32 scale per output
// row (scale = max |w[o][:]| / 448, so the largest value of every row maps to e4m3's largest);
// at run time each input row gets its own scale the same way (max |x[r][:]| / 448), is rounded
// to e4m3, and y[r][o] = (sum_i xq[r][i] * wq[o][i]) * xs[r] * ws[o] (+ bias) (+ y).
//
// Block-wise FP8 (checkpoints transformers writes with "quant_method": "fp8", DeepSeek-V3's
// layout; fp8_blocks below): one weight scale per block of R rows x C columns, and each input
// row quantized per group of C columns (its own scale per group), so that
//   y[r][o] = sum_g (sum_{i in g} xq[r][i] * wq[o][i]) * xs[r][g] * ws[o / R][g] (+ bias) (+ y).
// The per-row scheme is the case R = 1, C = in (one group).
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

// How a weight's scales tile it: one scale per block of `rows` rows x `cols` columns; cols 0
// means the whole row (one group). {1, 0}: per output row (per channel; also per tensor, the
// scale repeated). {128, 128}: DeepSeek-V3's blocks. Inputs are quantized per group of `cols`
// columns (per row when cols is 0); block-wise weights need in % cols == 0 (the plan checks).
struct fp8_blocks {
  std::int64_t rows = 1;
  std::int64_t cols = 0;
  bool per_row() const { return cols == 0; }
  std::int64_t groups(std::int64_t in) const { return cols == 0 ? 1 : (in + cols - 1) / cols; }
  std::int64_t scale_rows(std::int64_t out) const { return (out + rows - 1) / rows; }
  friend bool operator==(const fp8_blocks&, const fp8_blocks&) = default;
};

// One quantized weight: e4m3 bytes [out, in] (row-major) and fp32 scales
// [blocks.scale_rows(out)][scale_ld] (the first blocks.groups(in) of each row used): the scale of
// weight element (o, i) is scale[(o / blocks.rows) * scale_ld + i / blocks.cols].
struct fp8_weight {
  const std::uint8_t* data = nullptr;
  const float* scale = nullptr;
  const float* input_scale = nullptr;  // one fp32 value (static input scale), or null: per token
  fp8_blocks blocks{};
  std::int64_t scale_ld = 1;           // >= blocks.groups(in); a backend may pad (cuBLASLt: to 4)
};

// Where a quantized linear puts its input's rows after quantization: e4m3 bytes [rows, in] and
// fp32 scales, one per row and group (a backend's own order: the host's is [rows][groups], the
// cuda backend's [groups][rows] for block-wise weights, as cuBLASLt reads them). Owned by the
// caller (the transformer sizes it for its largest input and most groups) so that CUDA graphs
// see fixed addresses.
struct fp8_scratch {
  std::uint8_t* data = nullptr;
  float* scale = nullptr;
};

// A backend's storage of one FP8 weight (Buffer: its buffer template), what load_fp8 returns.
template <template <class> class Buffer>
struct fp8_weight_buffers {
  Buffer<std::uint8_t> data;  // [rows, cols] e4m3
  Buffer<float> scale;        // [blocks.scale_rows(rows)][scale_ld]
  Buffer<float> input_scale;  // [1] static input scale, or empty: inputs quantized per token
  fp8_blocks blocks{};
  std::int64_t scale_ld = 1;
  bool empty() const { return data.empty(); }
  fp8_weight view() const {
    return {data.data(), scale.data(), input_scale.empty() ? nullptr : input_scale.data(), blocks, scale_ld};
  }
};

}  // namespace mii::backend
