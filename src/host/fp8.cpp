// FP8 linear layers on the host (backend/fp8.hpp): the reference the CUDA kernels are checked
// against and what CI runs quantized models with. Values are rounded to e4m3 exactly as torch's
// float8_e4m3fn conversion rounds them and then computed in fp32, so the host backend matches a
// torch model whose linear layers quantize the same way (tests/fixtures/make_fp8_references.py).
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/error.hpp>

namespace mii::backend {
namespace {

// One row: s = fp8_scale(max |x|), q[i] = e4m3(x[i] / s) (IEEE division, as the CUDA kernel).
void quantize_row(const float* x, std::int64_t n, std::uint8_t* q, float* scale) {
  float amax = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float s = fp8_scale(amax);
  for (std::int64_t i = 0; i < n; ++i) q[i] = to_e4m3(x[i] / s);
  *scale = s;
}

// One row with a static scale s: values beyond e4m3's range saturate (torch's conversion would
// make them NaN).
void quantize_row_static(const float* x, std::int64_t n, float s, std::uint8_t* q, float* scale) {
  for (std::int64_t i = 0; i < n; ++i) q[i] = to_e4m3(std::clamp(x[i] / s, -e4m3_max, e4m3_max));
  *scale = s;
}

// Same 8-lane order as host::linear's dot (src/host/linear.cpp), over decoded e4m3 values.
float dot_e4m3(const std::uint8_t* a, const std::uint8_t* b, std::int64_t n) {
  const auto& v = e4m3_values();
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] += v[a[i + k]] * v[b[i + k]];
  for (int k = 0; i < n; ++i, ++k) lane[k] += v[a[i]] * v[b[i]];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

}  // namespace

void host::quantize_fp8(context& ctx, const float* x, std::int64_t rows, std::int64_t cols, fp8_scratch out) {
  ctx.parallel_for(rows, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) quantize_row(x + r * cols, cols, out.data + r * cols, out.scale + r);
  });
}

void host::linear_fp8(context& ctx, const float* x, std::int64_t rows, std::int64_t in, fp8_weight w, std::int64_t out,
                      const float* bias, float* y, bool accumulate, fp8_scratch scratch) {
  if (rows <= 0 || out <= 0) return;
  // Each row in groups of `group` columns (one group: the whole row), scales [rows][groups].
  const std::int64_t groups = w.blocks.groups(in), group = w.blocks.per_row() ? in : w.blocks.cols;
  if (!w.blocks.per_row() && in % group != 0)
    fail("internal: linear_fp8 with ", group, "-column FP8 blocks needs in % ", group, " == 0, got in = ", in);
  if (w.input_scale) {
    const float s = *w.input_scale;
    ctx.parallel_for(rows, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) quantize_row_static(x + r * in, in, s, scratch.data + r * in, scratch.scale + r);
    });
  } else {
    quantize_fp8(ctx, x, rows * groups, group, scratch);  // the groups of a row are contiguous
  }
  // As host::linear: tiles of 16 outputs, each output one fixed-order dot product whatever the
  // batch, so a request's results do not depend on what runs beside it.
  constexpr std::int64_t tile = 16;
  ctx.parallel_for((out + tile - 1) / tile, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::uint8_t* xr = scratch.data + r * in;
      const float* xs = scratch.scale + r * groups;
      float* yr = y + r * out;
      for (std::int64_t o = t0 * tile; o < std::min(out, t1 * tile); ++o) {
        const std::uint8_t* wr = w.data + o * in;
        const float* ws = w.scale + (o / w.blocks.rows) * w.scale_ld;
        float v = 0.0f;
        for (std::int64_t g = 0; g < groups; ++g)
          v += dot_e4m3(xr + g * group, wr + g * group, group) * xs[g] * ws[g];
        if (bias) v += bias[o];
        yr[o] = accumulate ? yr[o] + v : v;
      }
    }
  });
}

host::fp8_buffers host::load_fp8(context& ctx, const model::plan_entry& e) {
  if (e.vector) fail("internal: ", e.what, " is a vector and cannot be stored as FP8");
  fp8_buffers b{buffer<std::uint8_t>(std::size_t(e.numel())), buffer<float>(std::size_t(e.fp8_scale_count()))};
  b.blocks = e.fp8_blocks;
  b.scale_ld = e.fp8_blocks.groups(e.cols);
  if (e.prequantized()) {  // a pre-quantized checkpoint's bytes and scales, as they are
    model::materialize_fp8(e, b.data.data(), b.scale.data());
    if (!e.input_scales.empty()) b.input_scale = buffer<float>(1, model::static_input_scale(e));
    return b;
  }
  const std::vector<float> values = load(ctx, e);
  quantize_fp8(ctx, values.data(), e.rows, e.cols, fp8_scratch{b.data.data(), b.scale.data()});
  return b;
}

}  // namespace mii::backend
