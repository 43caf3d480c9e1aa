// Every cuda backend op (except rope_store_kv and attention, tested beside their kernels) against
// the host backend on fresh random inputs: outputs poisoned with NaN first, odd sizes, both
// compute dtypes. Inputs are drawn representable in the dtype, so the references see exactly
// what the GPU sees and the errors measured are the GPU's own rounding and summation order.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include <mii/runtime/step_builder.hpp>

#include "gpu_support.hpp"

using namespace mii;
using namespace mii::test::gpu;

namespace {

constexpr double gemm_tolerance = 1e-2;
constexpr double elementwise_tolerance = 2e-3;

// A step of `n_seqs` sequences with random tokens in [0, vocab) and positions from `start`.
struct random_step {
  std::vector<std::vector<std::int32_t>> tokens, blocks;
  std::vector<runtime::step_chunk> chunks;
  runtime::step_builder builder;

  random_step(std::mt19937& rng, int n_seqs, int max_len, std::int32_t vocab, std::int64_t max_start = 0) {
    std::uniform_int_distribution<int> len(1, max_len);
    std::uniform_int_distribution<std::int32_t> id(0, vocab - 1);
    std::uniform_int_distribution<std::int64_t> start(0, max_start);
    for (int s = 0; s < n_seqs; ++s) {
      tokens.emplace_back(static_cast<std::size_t>(len(rng)));
      for (auto& t : tokens.back()) t = id(rng);
    }
    for (int s = 0; s < n_seqs; ++s) {
      const std::int64_t st = start(rng);
      const std::int64_t n_blocks = (st + std::int64_t(tokens[std::size_t(s)].size()) + 3) / 4;
      blocks.emplace_back(static_cast<std::size_t>(n_blocks));
      std::iota(blocks.back().begin(), blocks.back().end(), s * 1000);
      chunks.push_back({tokens[std::size_t(s)], st, blocks.back(), 0, runtime::step_chunk::logits::last});
    }
    builder.build(chunks);
  }
};

}  // namespace

TEMPLATE_TEST_CASE("cuda embed matches host, with vocab-parallel slices", "[gpu]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("embed");
  for (const std::int64_t dim : {64, 36, 8, 520}) {
    for (const auto [vocab_begin, local_vocab] : {std::pair<std::int64_t, std::int64_t>{0, 1000}, {300, 400}, {900, 100}}) {
      INFO(dtype_label<D> << " dim " << dim << " slice [" << vocab_begin << ", " << vocab_begin + local_vocab << ")");
      random_step step(rng, 5, 40, 1000);
      const std::int64_t n = step.builder.n_tokens();
      const auto table_h = random_values<D>(rng, local_vocab * dim);
      auto table = upload<D>(ctx, table_h);
      auto out = B::template alloc<D>(ctx, n * dim);
      poison<D>(ctx, out.data(), n * dim);
      const backend::step_batch b = B::upload_step(ctx, step.builder);
      B::embed(ctx, b, table.data(), vocab_begin, local_vocab, dim, out.data());
      const auto got = download<D>(ctx, out.data(), n * dim);

      std::vector<float> ref(static_cast<std::size_t>(n * dim));
      backend::host::embed(host_context(), step.builder.bind(step.builder.data().data()), table_h.data(), vocab_begin,
                           local_vocab, dim, ref.data());
      CHECK(count_nan(got) == 0);
      CHECK(got == ref);
    }
  }
}

TEMPLATE_TEST_CASE("cuda add_positions matches host", "[gpu]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("add_positions");
  for (const std::int64_t dim : {64, 36}) {
    INFO(dtype_label<D> << " dim " << dim);
    random_step step(rng, 4, 30, 100, 50);
    const std::int64_t n = step.builder.n_tokens(), positions = 100, offset = 2;
    const auto table_h = random_values<D>(rng, (positions + offset) * dim);
    const auto x_h = random_values<D>(rng, n * dim);
    auto table = upload<D>(ctx, table_h);
    auto x = upload<D>(ctx, x_h);
    const backend::step_batch b = B::upload_step(ctx, step.builder);
    B::add_positions(ctx, b, table.data(), int(offset), dim, x.data());
    const auto got = download<D>(ctx, x.data(), n * dim);
    auto ref = x_h;
    backend::host::add_positions(host_context(), step.builder.bind(step.builder.data().data()), table_h.data(),
                                 int(offset), dim, ref.data());
    CHECK(rel_l2(got, rounded_all<D>(ref)) <= elementwise_tolerance);
  }
}

TEMPLATE_TEST_CASE("cuda add_norm (RMS and LayerNorm) matches host", "[gpu]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("add_norm");
  for (const std::int64_t rows : {1, 3, 17, 300}) {
    for (const std::int64_t cols : {64, 100, 33, 4096}) {
      for (const bool layer : {false, true}) {
        for (const bool with_delta : {false, true}) {
          for (const bool in_place : {false, true}) {
            const bool with_bias = layer && (rows + cols) % 2 == 1;
            INFO(dtype_label<D> << (layer ? " layer" : " rms") << " rows " << rows << " cols " << cols << " delta "
                                << with_delta << " bias " << with_bias << " in place " << in_place);
            const std::int64_t n = rows * cols;
            const auto res_h = random_values<D>(rng, n, -2.0f, 2.0f);
            const auto delta_h = random_values<D>(rng, n);
            const auto w_h = random_values<D>(rng, cols, 0.5f, 1.5f);
            const auto b_h = random_values<D>(rng, cols);
            auto res = upload<D>(ctx, res_h);
            auto delta = upload<D>(ctx, delta_h);
            auto w = upload<D>(ctx, w_h);
            auto bias = upload<D>(ctx, b_h);
            auto out = B::template alloc<D>(ctx, n);
            poison<D>(ctx, out.data(), n);
            D* out_ptr = in_place ? res.data() : out.data();
            const float eps = 1e-5f;
            if (layer)
              B::template add_norm<layers::norm_kind::layer>(ctx, res.data(), with_delta ? delta.data() : nullptr,
                                                             w.data(), with_bias ? bias.data() : nullptr, eps, rows,
                                                             cols, out_ptr);
            else
              B::template add_norm<layers::norm_kind::rms>(ctx, res.data(), with_delta ? delta.data() : nullptr,
                                                           w.data(), nullptr, eps, rows, cols, out_ptr);
            const auto got = download<D>(ctx, out_ptr, n);
            const auto got_res = download<D>(ctx, res.data(), n);

            // The residual stream is kept in D (as transformers keeps it): the reference rounds
            // residual + delta to D first, then normalises that.
            auto ref_res = res_h;
            if (with_delta)
              for (std::size_t i = 0; i < ref_res.size(); ++i) ref_res[i] = rounded<D>(ref_res[i] + delta_h[i]);
            std::vector<float> ref(static_cast<std::size_t>(n));
            auto norm_input = ref_res;
            if (layer)
              backend::host::add_norm<layers::norm_kind::layer>(host_context(), norm_input.data(), nullptr, w_h.data(),
                                                                with_bias ? b_h.data() : nullptr, eps, rows, cols,
                                                                ref.data());
            else
              backend::host::add_norm<layers::norm_kind::rms>(host_context(), norm_input.data(), nullptr, w_h.data(),
                                                              nullptr, eps, rows, cols, ref.data());
            CHECK(count_nan(got) == 0);
            CHECK(rel_l2(got, rounded_all<D>(ref)) <= elementwise_tolerance);
            if (!in_place) CHECK(got_res == ref_res);
          }
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("cuda linear and linear_f32 match host", "[gpu]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("linear");
  struct shape {
    std::int64_t in, out;
  };
  double worst = 0, worst_f32 = 0;
  for (const std::int64_t rows : {1, 2, 3, 5, 8, 9, 17, 300}) {
    for (const shape s : {shape{64, 96}, shape{1000, 520}, shape{77, 33}, shape{4096, 24}}) {
      for (const bool with_bias : {false, true}) {
        for (const bool accumulate : {false, true}) {
          for (const bool misaligned : {false, true}) {
            if (misaligned && (accumulate || rows > 17)) continue;
            INFO(dtype_label<D> << " rows " << rows << " in " << s.in << " out " << s.out << " bias " << with_bias
                                << " accumulate " << accumulate << " misaligned x " << misaligned);
            const auto x_h = random_values<D>(rng, rows * s.in);
            const auto w_h = random_values<D>(rng, s.out * s.in, -0.2f, 0.2f);
            const auto b_h = random_values<D>(rng, s.out);
            const auto y0_h = random_values<D>(rng, rows * s.out);
            // misaligned: x starts one element into its buffer (2-byte alignment), which the
            // GEMV kernel must decline and cuBLASLt must accept.
            std::vector<float> x_padded = x_h;
            if (misaligned) x_padded.insert(x_padded.begin(), 0.0f);
            auto x = upload<D>(ctx, x_padded);
            const D* x_ptr = x.data() + (misaligned ? 1 : 0);
            auto w = upload<D>(ctx, w_h);
            auto bias = upload<D>(ctx, b_h);
            auto y = accumulate ? upload<D>(ctx, y0_h) : B::template alloc<D>(ctx, rows * s.out);
            if (!accumulate) poison<D>(ctx, y.data(), rows * s.out);
            B::linear(ctx, x_ptr, rows, s.in, w.data(), s.out, with_bias ? bias.data() : nullptr, y.data(), accumulate);
            const auto got = download<D>(ctx, y.data(), rows * s.out);
            std::vector<float> ref = accumulate ? y0_h : std::vector<float>(static_cast<std::size_t>(rows * s.out));
            backend::host::linear(host_context(), x_h.data(), rows, s.in, w_h.data(), s.out,
                                  with_bias ? b_h.data() : nullptr, ref.data(), accumulate);
            CHECK(count_nan(got) == 0);
            const double err = rel_l2(got, ref);
            CHECK(err <= gemm_tolerance);
            worst = std::max(worst, err);

            if (!accumulate) {
              auto y32 = B::template alloc<float>(ctx, rows * s.out);
              poison<D>(ctx, y32.data(), rows * s.out);
              B::linear_f32(ctx, x_ptr, rows, s.in, w.data(), s.out, with_bias ? bias.data() : nullptr, y32.data());
              const auto got32 = download_raw<D>(ctx, y32.data(), rows * s.out);
              const double err32 = rel_l2(got32, ref);
              CHECK(count_nan(got32) == 0);
              CHECK(err32 <= 1e-4);  // fp32 output: only the summation order differs
              worst_f32 = std::max(worst_f32, err32);
            }
          }
        }
      }
    }
  }
  std::printf("linear %s: worst relative L2 error %.3g (%s output), %.3g (fp32 output)\n", dtype_label<D>, worst,
              dtype_label<D>, worst_f32);
}

TEMPLATE_TEST_CASE("cuda gated_act and act match host for every activation", "[gpu]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("activation");
  auto run = [&]<layers::activation A>(const char* name) {
    for (const std::int64_t rows : {1, 17, 300}) {
      for (const std::int64_t f : {128, 100, 3}) {
        INFO(dtype_label<D> << " " << name << " rows " << rows << " f " << f);
        const auto gu_h = random_values<D>(rng, rows * 2 * f, -4.0f, 4.0f);
        auto gu = upload<D>(ctx, gu_h);
        auto out = B::template alloc<D>(ctx, rows * f);
        poison<D>(ctx, out.data(), rows * f);
        B::template gated_act<A>(ctx, gu.data(), rows, f, out.data());
        const auto got = download<D>(ctx, out.data(), rows * f);
        std::vector<float> ref(static_cast<std::size_t>(rows * f));
        backend::host::gated_act<A>(host_context(), gu_h.data(), rows, f, ref.data());
        CHECK(count_nan(got) == 0);
        CHECK(rel_l2(got, rounded_all<D>(ref)) <= elementwise_tolerance);

        // in place, over the whole [rows, 2f] buffer
        B::template act<A>(ctx, gu.data(), rows, 2 * f);
        const auto got_act = download<D>(ctx, gu.data(), rows * 2 * f);
        auto ref_act = gu_h;
        backend::host::act<A>(host_context(), ref_act.data(), rows, 2 * f);
        CHECK(rel_l2(got_act, rounded_all<D>(ref_act)) <= elementwise_tolerance);
      }
    }
  };
  run.template operator()<layers::activation::silu>("silu");
  run.template operator()<layers::activation::gelu>("gelu");
  run.template operator()<layers::activation::gelu_tanh>("gelu_tanh");
  run.template operator()<layers::activation::relu>("relu");
}

TEMPLATE_TEST_CASE("cuda gather_rows, add, copy_2d and fill match host", "[gpu]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("elementwise");

  SECTION("gather_rows") {
    for (const std::int64_t cols : {64, 36, 4096}) {
      for (const std::int32_t n : {1, 3, 17, 300}) {
        INFO(dtype_label<D> << " cols " << cols << " rows " << n);
        const std::int64_t src_rows = 400;
        const auto x_h = random_values<D>(rng, src_rows * cols);
        std::vector<std::int32_t> idx(static_cast<std::size_t>(n));
        std::uniform_int_distribution<std::int32_t> pick(0, std::int32_t(src_rows - 1));
        for (auto& i : idx) i = pick(rng);  // repeats allowed
        auto x = upload<D>(ctx, x_h);
        auto d_idx = upload_raw<D>(ctx, idx);
        auto out = B::template alloc<D>(ctx, n * cols);
        poison<D>(ctx, out.data(), n * cols);
        B::gather_rows(ctx, x.data(), cols, d_idx.data(), n, out.data());
        const auto got = download<D>(ctx, out.data(), n * cols);
        std::vector<float> ref(static_cast<std::size_t>(n * cols));
        backend::host::gather_rows(host_context(), x_h.data(), cols, idx.data(), n, ref.data());
        CHECK(got == ref);
      }
    }
  }
  SECTION("add") {
    for (const std::int64_t n : {1, 7, 8, 1000, 100003}) {
      INFO(dtype_label<D> << " n " << n);
      const auto x_h = random_values<D>(rng, n);
      const auto d_h = random_values<D>(rng, n);
      auto x = upload<D>(ctx, x_h);
      auto d = upload<D>(ctx, d_h);
      B::add(ctx, x.data(), d.data(), n);
      const auto got = download<D>(ctx, x.data(), n);
      auto ref = x_h;
      backend::host::add(host_context(), ref.data(), d_h.data(), n);
      CHECK(got == rounded_all<D>(ref));  // one fp32 add, one rounding: exact
    }
  }
  SECTION("copy_2d") {
    const std::int64_t width = 300, height = 5, src_pitch = 310, dst_pitch = 700;
    std::uniform_real_distribution<float> dist(-1, 1);
    std::vector<float> src_h(static_cast<std::size_t>(src_pitch * height)), dst_h(static_cast<std::size_t>(dst_pitch * height));
    for (auto& v : src_h) v = dist(rng);
    for (auto& v : dst_h) v = dist(rng);
    auto src = upload_raw<D>(ctx, src_h);
    auto dst = upload_raw<D>(ctx, dst_h);
    B::copy_2d(ctx, dst.data() + 100, dst_pitch, src.data() + 3, src_pitch, width, height);
    const auto got = download_raw<D>(ctx, dst.data(), dst_pitch * height);
    auto ref = dst_h;
    backend::host::copy_2d(host_context(), ref.data() + 100, dst_pitch, src_h.data() + 3, src_pitch, width, height);
    CHECK(got == ref);
  }
  SECTION("fill") {
    const std::int64_t n = 1000003;
    auto buf = B::template alloc<float>(ctx, n);
    B::fill(ctx, buf.data(), n, 0.0f);
    B::fill(ctx, buf.data() + 1, n - 2, 3.25f);
    const auto got = download_raw<D>(ctx, buf.data(), n);
    CHECK(got.front() == 0.0f);
    CHECK(got.back() == 0.0f);
    CHECK(std::all_of(got.begin() + 1, got.end() - 1, [](float v) { return v == 3.25f; }));
  }
}

TEMPLATE_TEST_CASE("cuda moe matches host", "[gpu]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("moe");
  struct config {
    std::int64_t hidden, experts, top_k, ffn;
  };
  for (const config c : {config{64, 8, 2, 96}, config{40, 6, 3, 20}, config{128, 4, 1, 64}}) {
    for (const std::int64_t rows : {1, 5, 8, 9, 37, 300}) {  // up to 8: routed on the GPU
      INFO(dtype_label<D> << " rows " << rows << " hidden " << c.hidden << " experts " << c.experts << " top_k "
                          << c.top_k << " ffn " << c.ffn);
      const auto x_h = random_values<D>(rng, rows * c.hidden);
      const auto router_h = random_values<D>(rng, c.experts * c.hidden);
      std::vector<std::vector<float>> up_h, down_h;
      std::vector<typename B::template buffer<D>> up, down;
      std::vector<const D*> up_ptrs, down_ptrs;
      std::vector<const float*> up_ptrs_h, down_ptrs_h;
      for (std::int64_t e = 0; e < c.experts; ++e) {
        up_h.push_back(random_values<D>(rng, 2 * c.ffn * c.hidden, -0.3f, 0.3f));
        down_h.push_back(random_values<D>(rng, c.hidden * c.ffn, -0.3f, 0.3f));
        up.push_back(upload<D>(ctx, up_h.back()));
        down.push_back(upload<D>(ctx, down_h.back()));
      }
      for (std::int64_t e = 0; e < c.experts; ++e) {
        up_ptrs.push_back(up[std::size_t(e)].data());
        down_ptrs.push_back(down[std::size_t(e)].data());
        up_ptrs_h.push_back(up_h[std::size_t(e)].data());
        down_ptrs_h.push_back(down_h[std::size_t(e)].data());
      }
      auto x = upload<D>(ctx, x_h);
      auto router = upload<D>(ctx, router_h);
      auto out = B::template alloc<D>(ctx, rows * c.hidden);
      poison<D>(ctx, out.data(), rows * c.hidden);
      const backend::moe_weights<D> w{.router = router.data(), .experts = c.experts, .top_k = c.top_k,
                                      .up = up_ptrs, .down = down_ptrs, .ffn = c.ffn};
      B::template moe<layers::activation::silu>(ctx, x.data(), rows, c.hidden, w, out.data());
      const auto got = download<D>(ctx, out.data(), rows * c.hidden);
      std::vector<float> ref(static_cast<std::size_t>(rows * c.hidden));
      const backend::moe_weights<float> w_h{.router = router_h.data(), .experts = c.experts, .top_k = c.top_k,
                                            .up = up_ptrs_h, .down = down_ptrs_h, .ffn = c.ffn};
      backend::host::moe<layers::activation::silu>(host_context(), x_h.data(), rows, c.hidden, w_h, ref.data());
      CHECK(count_nan(got) == 0);
      CHECK(rel_l2(got, ref) <= gemm_tolerance);
    }
  }
}
