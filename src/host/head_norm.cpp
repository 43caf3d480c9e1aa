// Per-head RMSNorm of q and k (layers::qk_norm) on the host: the reference for kernels/head_norm.cu.
#include <cmath>

#include <mii/backend/host/host_backend.hpp>

namespace mii::backend {

void host::head_rms_norm(context& ctx, float* qkv, std::int64_t rows, const attention_shape& as, const float* q_w,
                         const float* k_w, float eps, float weight_offset) {
  const std::int64_t hd = as.head_dim, normed = std::int64_t(as.heads) + as.kv_heads;
  const std::int64_t row_stride = (std::int64_t(as.heads) + 2 * as.kv_heads) * hd;
  ctx.parallel_for(rows, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r)
      for (std::int64_t h = 0; h < normed; ++h) {  // q heads, then k heads
        float* x = qkv + r * row_stride + h * hd;
        const float* w = h < as.heads ? q_w : k_w;
        double ss = 0;
        for (std::int64_t i = 0; i < hd; ++i) ss += double(x[i]) * x[i];
        const float inv = float(1.0 / std::sqrt(ss / double(hd) + double(eps)));
        for (std::int64_t i = 0; i < hd; ++i) x[i] = (x[i] * inv) * (weight_offset + w[i]);
      }
  });
}

}  // namespace mii::backend
