// y = x w^T (+ bias) (+ y): the host backend's GEMM. Each output element is one dot product
// computed the same way wherever its row sits in the batch (8 fixed lanes, then a fixed
// combine), so a request gets bit-identical results alone or batched with others.
#include <mii/backend/host/host_backend.hpp>

namespace mii::backend {
namespace {

inline float dot(const float* a, const float* b, std::int64_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] += a[i + k] * b[i + k];
  for (int k = 0; i < n; ++i, ++k) lane[k] += a[i] * b[i];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

}  // namespace

void host::linear(context& ctx, const float* x, std::int64_t rows, std::int64_t in, const float* w, std::int64_t out,
                  const float* bias, float* y, bool accumulate) {
  // Split over outputs when there are few rows (decode), over rows otherwise; tiles of 16 output
  // columns keep a block of w hot in cache while the rows stream past.
  constexpr std::int64_t tile = 16;
  const std::int64_t tiles = (out + tile - 1) / tile;
  ctx.parallel_for(tiles, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * in;
      float* yr = y + r * out;
      for (std::int64_t o = t0 * tile; o < std::min(out, t1 * tile); ++o) {
        float v = dot(xr, w + o * in, in);
        if (bias) v += bias[o];
        yr[o] = accumulate ? yr[o] + v : v;
      }
    }
  });
}

}  // namespace mii::backend
