// Embedding lookups, norms, activations, row gathers: the host backend's element-wise ops.
#include <cmath>
#include <cstring>
#include <numbers>

#include <mii/backend/host/host_backend.hpp>

namespace mii::backend {

void host::embed(context& ctx, const step_batch& b, const float* table, std::int64_t vocab_begin,
                 std::int64_t local_vocab, std::int64_t dim, float* out) {
  ctx.parallel_for(b.n_tokens, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      const std::int64_t row = std::int64_t(b.token_ids[t]) - vocab_begin;
      float* dst = out + t * dim;
      if (row >= 0 && row < local_vocab) {
        std::memcpy(dst, table + row * dim, std::size_t(dim) * sizeof(float));
      } else {
        std::fill(dst, dst + dim, 0.0f);  // another rank's slice: the all-reduce fills it in
      }
    }
  });
}

void host::add_positions(context& ctx, const step_batch& b, const float* table, int offset, std::int64_t dim,
                         float* out) {
  ctx.parallel_for(b.n_tokens, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      const float* src = table + (std::int64_t(b.positions[t]) + offset) * dim;
      float* dst = out + t * dim;
      for (std::int64_t i = 0; i < dim; ++i) dst[i] += src[i];
    }
  });
}

template <layers::norm_kind K>
void host::add_norm(context& ctx, float* residual, const float* delta, const float* w, const float* bias, float eps,
                    std::int64_t rows, std::int64_t cols, float* out) {
  ctx.parallel_for(rows, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      float* x = residual + r * cols;
      if (delta) {
        const float* d = delta + r * cols;
        for (std::int64_t i = 0; i < cols; ++i) x[i] += d[i];
      }
      float* y = out + r * cols;
      if constexpr (K == layers::norm_kind::rms || K == layers::norm_kind::rms_plus_one) {
        double ss = 0;
        for (std::int64_t i = 0; i < cols; ++i) ss += double(x[i]) * x[i];
        const float inv = float(1.0 / std::sqrt(ss / double(cols) + double(eps)));
        if constexpr (K == layers::norm_kind::rms_plus_one) {
          for (std::int64_t i = 0; i < cols; ++i) y[i] = (x[i] * inv) * (1.0f + w[i]);
        } else {
          for (std::int64_t i = 0; i < cols; ++i) y[i] = (x[i] * inv) * w[i];
        }
      } else {
        double mean = 0;
        for (std::int64_t i = 0; i < cols; ++i) mean += x[i];
        mean /= double(cols);
        double var = 0;
        for (std::int64_t i = 0; i < cols; ++i) var += (x[i] - mean) * (x[i] - mean);
        const double inv = 1.0 / std::sqrt(var / double(cols) + double(eps));
        for (std::int64_t i = 0; i < cols; ++i) {
          const float v = float((x[i] - mean) * inv) * w[i];
          y[i] = bias ? v + bias[i] : v;
        }
      }
    }
  });
}
template void host::add_norm<layers::norm_kind::rms>(context&, float*, const float*, const float*, const float*, float,
                                                     std::int64_t, std::int64_t, float*);
template void host::add_norm<layers::norm_kind::layer>(context&, float*, const float*, const float*, const float*, float,
                                                       std::int64_t, std::int64_t, float*);
template void host::add_norm<layers::norm_kind::rms_plus_one>(context&, float*, const float*, const float*, const float*,
                                                              float, std::int64_t, std::int64_t, float*);

void host::scale(context& ctx, float* x, std::int64_t n, float factor) {
  ctx.parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) x[i] *= factor;
  });
}

void host::softcap(context& ctx, float* x, std::int64_t n, float cap) {
  // As transformers writes it: x / cap, tanh, * cap (a reciprocal multiply would round differently).
  ctx.parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) x[i] = std::tanh(x[i] / cap) * cap;
  });
}

namespace {
template <layers::activation A>
inline float activate(float x) {
  if constexpr (A == layers::activation::silu) {
    return x / (1.0f + std::exp(-x));
  } else if constexpr (A == layers::activation::gelu) {
    return 0.5f * x * (1.0f + std::erf(x * float(std::numbers::sqrt2 / 2)));
  } else if constexpr (A == layers::activation::gelu_tanh) {
    const float k = float(std::sqrt(2.0 / std::numbers::pi));
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
  } else {
    return x > 0.0f ? x : 0.0f;
  }
}
}  // namespace

template <layers::activation A>
void host::gated_act(context& ctx, const float* gate_up, std::int64_t rows, std::int64_t f, float* out) {
  ctx.parallel_for(rows, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const float* g = gate_up + r * 2 * f;
      float* y = out + r * f;
      for (std::int64_t i = 0; i < f; ++i) y[i] = activate<A>(g[i]) * g[f + i];
    }
  });
}

template <layers::activation A>
void host::act(context& ctx, float* x, std::int64_t rows, std::int64_t cols) {
  ctx.parallel_for(rows, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin * cols; i < end * cols; ++i) x[i] = activate<A>(x[i]);
  });
}

#define MII_HOST_ACT(A)                                                                                          \
  template void host::gated_act<layers::activation::A>(context&, const float*, std::int64_t, std::int64_t, float*); \
  template void host::act<layers::activation::A>(context&, float*, std::int64_t, std::int64_t);
MII_HOST_ACT(silu)
MII_HOST_ACT(gelu)
MII_HOST_ACT(gelu_tanh)
MII_HOST_ACT(relu)
#undef MII_HOST_ACT

void host::gather_rows(context&, const float* x, std::int64_t cols, const std::int32_t* rows, std::int32_t n,
                       float* out) {
  for (std::int32_t i = 0; i < n; ++i)
    std::memcpy(out + std::int64_t(i) * cols, x + std::int64_t(rows[i]) * cols, std::size_t(cols) * sizeof(float));
}

void host::add(context&, float* x, const float* d, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) x[i] += d[i];
}

void host::copy_2d(context&, float* dst, std::int64_t dst_pitch, const float* src, std::int64_t src_pitch,
                   std::int64_t width, std::int64_t height) {
  for (std::int64_t r = 0; r < height; ++r)
    std::memcpy(dst + r * dst_pitch, src + r * src_pitch, std::size_t(width) * sizeof(float));
}

void host::sample(context& ctx, const float* logits, std::int32_t rows, std::int64_t vocab,
                  std::span<const runtime::sample_params> params, std::span<const std::int32_t> eos_ids,
                  std::int32_t* out) {
  ctx.parallel_for(rows, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r)
      out[r] = runtime::sample_row(logits + r * vocab, vocab, params[std::size_t(r)], eos_ids);
  });
}

host::buffer<float> host::load(context&, const model::plan_entry& e) {
  buffer<float> b(std::size_t(e.numel()));
  model::materialize(e, dtype::f32, b.data());
  return b;
}

}  // namespace mii::backend
