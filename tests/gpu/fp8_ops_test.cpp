// The cuda backend's FP8 ops (backend/fp8.hpp) against the host backend's (src/host/fp8.cpp):
// - quantize_fp8: the same e4m3 bytes and fp32 scales, bit for bit, on rows with the edge cases
//   of the scale and of the rounding (all zeros, one huge value, ties, e4m3 subnormals, fp32
//   subnormal inputs), vectorized and not;
// - linear_fp8 on every path (the tensor-core GEMV up to 8 rows, cuBLASLt with outer-vector
//   scales, the unit-scale fallback, the GEMV 8 rows at a time for in % 16 != 0, a CUDA graph)
//   within the bound explained at linear_bound;
// - a static input scale (compressed-tensors "dynamic": false): the same bytes, saturated, and
//   scales as the host's;
// - block-wise weights (transformers' "quant_method": "fp8"): the same bytes and group scales as
//   the host's quantization, and linear_fp8 on every path (the block GEMV up to 8 rows and past
//   cuBLASLt's multiples of 4, cuBLASLt's block-scaled GEMM for 128 x 128 blocks, the GEMV 8 rows
//   at a time for other blocks, with MII_CUDA_FP8_GEMM=fallback and for unpadded scale rows, the
//   CUDA-core kernel for block columns that are not a multiple of 64, a CUDA graph) within the
//   same bound, taken per group;
// - load_fp8: the same bytes and scales as the host's load_fp8 for synthetic entries, a bf16
//   checkpoint tensor (dtype conversion, column slices, several runs, pieces of the fp32
//   staging) and every FP8 entry of the llama3 fixture after reserve_weights; the pre-quantized
//   entries of the compressed-tensors fixtures (bytes and scales as stored) and of the block-wise
//   fixtures (block scales in rows padded to a multiple of 4, the padding zero).
// A hidden case ([.fp8bench]) times the GEMV against cuBLASLt and a device copy.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include <mii/io/hf_config.hpp>
#include <mii/io/safetensors.hpp>
#include <mii/model/model_shape.hpp>
#include <mii/model/weight_plan.hpp>
#include <mii/models/llama.hpp>
#include <mii/models/qwen2.hpp>

#include "fixtures.hpp"
#include "gpu_support.hpp"
#include "test_files.hpp"

using namespace mii;
using namespace mii::test::gpu;

namespace {

using host = backend::host;

// Sets environment variables for the lifetime of the object (contexts read them when made).
struct scoped_env {
  std::vector<std::string> names;
  scoped_env(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const auto& [name, value] : vars) {
      ::setenv(name, value, 1);
      names.emplace_back(name);
    }
  }
  ~scoped_env() {
    for (const auto& n : names) ::unsetenv(n.c_str());
  }
};

// A context whose linear_fp8 takes one path for every row count above `gemv_max_rows`.
template <class D>
std::unique_ptr<typename backend::cuda<D>::context> context_with(const char* gemv_max_rows, const char* gemm) {
  scoped_env env{{"MII_CUDA_FP8_GEMV_MAX_ROWS", gemv_max_rows}, {"MII_CUDA_FP8_GEMM", gemm}};
  return std::make_unique<typename backend::cuda<D>::context>(0);
}

struct quantized {
  std::vector<std::uint8_t> data;
  std::vector<float> scale;
};

quantized host_quantize(const std::vector<float>& x, std::int64_t rows, std::int64_t cols) {
  quantized q{std::vector<std::uint8_t>(std::size_t(rows * cols)), std::vector<float>(std::size_t(rows))};
  host::quantize_fp8(host_context(), x.data(), rows, cols, {q.data.data(), q.scale.data()});
  return q;
}

template <class D>
quantized gpu_quantize(const std::vector<float>& x, std::int64_t rows, std::int64_t cols, std::int64_t offset = 0) {
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  // `offset` elements before the rows: an input that is not 16-byte aligned.
  std::vector<float> padded(std::size_t(offset), 0.0f);
  padded.insert(padded.end(), x.begin(), x.end());
  auto xd = upload<D>(ctx, padded);
  auto qd = B::template alloc<std::uint8_t>(ctx, std::max<std::int64_t>(rows * cols, 1));
  auto sd = B::template alloc<float>(ctx, rows);
  B::quantize_fp8(ctx, xd.data() + offset, rows, cols, {qd.data(), sd.data()});
  return {download_raw<D>(ctx, qd.data(), rows * cols), download_raw<D>(ctx, sd.data(), rows)};
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Rows of `cols` values (representable in D) with the cases quantization can get wrong.
template <class D>
std::vector<float> edge_rows(std::mt19937& rng, std::int64_t cols, std::int64_t& rows) {
  std::vector<float> x;
  auto row = [&](auto value) {
    for (std::int64_t i = 0; i < cols; ++i) x.push_back(rounded<D>(value(i)));
  };
  std::uniform_real_distribution<float> u(-1, 1);
  const float huge = std::is_same_v<D, fp16_t> ? 60000.0f : 1e30f;
  row([&](std::int64_t) { return u(rng); });                                  // plain
  row([&](std::int64_t) { return 0.0f; });                                    // all zero: scale 1
  row([&](std::int64_t i) { return i == cols / 2 ? huge : u(rng) * 1e-3f * huge; });  // mostly e4m3 subnormals
  row([&](std::int64_t i) { return i == 0 ? -huge : u(rng); });              // everything else flushes to 0
  // amax 448: scale exactly 1, so x / s = x; ties of e4m3 normals (1.0625 between 1 and 1.125)
  // and subnormals (2^-10 between 0 and 2^-9, 3 * 2^-10 between 2^-9 and 2^-8), signed zeros.
  const float ties[] = {448.0f, 1.0625f, -1.1875f, 0x1p-10f, 3 * 0x1p-10f, -5 * 0x1p-10f, -0.0f, 0.0f, 232.0f, -13.5f};
  row([&](std::int64_t i) { return ties[i % std::int64_t(std::size(ties))]; });
  row([&](std::int64_t) { return u(rng) * 1e-20f; });                         // tiny, normal in fp32 (bf16)
  if constexpr (std::is_same_v<D, bf16_t>)
    row([&](std::int64_t) { return u(rng) * 1e-39f; });                       // fp32 subnormals (bf16 holds them)
  for (int r = 0; r < 9; ++r) row([&](std::int64_t) { return u(rng) * std::pow(10.0f, float(r - 4)); });
  rows = std::int64_t(x.size()) / cols;
  return x;
}

}  // namespace

TEMPLATE_TEST_CASE("cuda quantize_fp8 gives the host's bytes and scales, bit for bit", "[gpu][fp8]", bf16_t, fp16_t) {
  using D = TestType;
  auto rng = rng_for("quantize_fp8");
  for (const std::int64_t cols : {4096, 64, 37, 8, 1, 1000}) {
    for (const std::int64_t offset : {0, 3}) {
      INFO(dtype_label<D> << " cols " << cols << " input offset " << offset << " elements");
      std::int64_t rows = 0;
      const auto x = edge_rows<D>(rng, cols, rows);
      const auto want = host_quantize(x, rows, cols);
      const auto got = gpu_quantize<D>(x, rows, cols, offset);
      CHECK(same_bits(got.scale, want.scale));
      std::int64_t wrong = 0, first = -1;
      for (std::size_t i = 0; i < want.data.size(); ++i)
        if (got.data[i] != want.data[i]) {
          if (first < 0) first = std::int64_t(i);
          ++wrong;
        }
      INFO("first difference at row " << (first < 0 ? -1 : first / cols) << " col " << (first < 0 ? -1 : first % cols)
                                      << ": x " << (first < 0 ? 0.0f : x[std::size_t(first)]) << " gpu "
                                      << int(first < 0 ? 0 : got.data[std::size_t(first)]) << " host "
                                      << int(first < 0 ? 0 : want.data[std::size_t(first)]));
      CHECK(wrong == 0);
    }
  }
}

TEMPLATE_TEST_CASE("cuda linear_fp8 with a static input scale quantizes as the host does, saturating", "[gpu][fp8]",
                   bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto rng = rng_for("static_input_scale");
  auto& ctx = shared_context<D>();
  for (const std::int64_t cols : {4096, 64, 37}) {
    std::int64_t rows = 0;
    const auto x = edge_rows<D>(rng, cols, rows);
    const std::int64_t out = 24;
    std::vector<std::uint8_t> wq(std::size_t(out * cols));
    for (auto& b : wq) b = std::uint8_t(rng() % 0x7e);  // finite codes, positive and small
    const std::vector<float> ws(std::size_t(out), 1e-6f);  // outputs within fp16's range at every input scale
    for (const float s_in : {0.01f, 1.0f, 3.0e-3f}) {  // small scales: most of the edge rows saturate
      INFO(dtype_label<D> << " cols " << cols << " input scale " << s_in);
      quantized want{std::vector<std::uint8_t>(std::size_t(rows * cols)), std::vector<float>(std::size_t(rows))};
      std::vector<float> y_host(std::size_t(rows * out));
      host::linear_fp8(host_context(), x.data(), rows, cols, {wq.data(), ws.data(), &s_in}, out, nullptr, y_host.data(),
                       false, {want.data.data(), want.scale.data()});
      auto xd = upload<D>(ctx, x);
      auto wd = upload_raw<D, std::uint8_t>(ctx, wq);
      auto sd = upload_raw<D, float>(ctx, ws);
      auto ind = upload_raw<D, float>(ctx, std::vector<float>{s_in});
      auto qd = B::template alloc<std::uint8_t>(ctx, rows * cols);
      auto xs = B::template alloc<float>(ctx, rows);
      auto yd = B::template alloc<D>(ctx, rows * out);
      B::linear_fp8(ctx, xd.data(), rows, cols, {wd.data(), sd.data(), ind.data()}, out, nullptr, yd.data(), false,
                    {qd.data(), xs.data()});
      CHECK(download_raw<D>(ctx, qd.data(), rows * cols) == want.data);
      CHECK(same_bits(download_raw<D>(ctx, xs.data(), rows), want.scale));
      std::int64_t saturated = 0;
      for (auto b : want.data) saturated += (b & 0x7f) == 0x7e;
      if (s_in < 0.5f) CHECK(saturated > 0);
      const auto y = download<D>(ctx, yd.data(), rows * out);
      CHECK(rel_l2(y, y_host) < (std::is_same_v<D, bf16_t> ? 0x1p-7 : 0x1p-10));  // sums' order, rounding to D
    }
  }
}

namespace {

// The bound linear_fp8 is held to, per output. The products xq * wq are exact in fp32 on every
// path (two 4-bit significands), so GPU and host differ only in (1) the order of the fp32 sums
// (tensor-core partial sums of 32 products, cuBLASLt's split of k, against the host's 8 lanes),
// at most in * 2^-24 * sum |xq * wq| for any order, which in <= 4096 keeps under
// 2^-12 * sum |xq * wq| <= 2^-12 * |xq| |wq| (Cauchy-Schwarz, row norms), times xs * ws; and
// (2) the GPU's final rounding to D, half an ulp, plus where cuBLASLt applies scales, bias and
// y in another order one more rounding of that size: one ulp of D at the result's magnitude;
// and (3) with a bias or accumulate, cuBLASLt's epilogue may round the scaled product and the
// product plus bias to D before adding y (seen on an H200: up to 3 ulps of a result that
// cancels): one ulp of D of each of those terms.
template <class D>
double ulp_of(double v) {
  const int mantissa = std::is_same_v<D, bf16_t> ? 7 : 10;
  const double smallest = std::is_same_v<D, bf16_t> ? 0x1p-133 : 0x1p-24;
  if (v == 0) return smallest;
  int e = 0;
  std::frexp(std::fabs(v), &e);  // |v| in [2^(e-1), 2^e)
  return std::max(std::ldexp(1.0, e - 1 - mantissa), smallest);
}

template <class D> constexpr double unit_roundoff = std::is_same_v<D, bf16_t> ? 0x1p-8 : 0x1p-11;

struct linear_case {
  std::int64_t rows, in, out;
  bool bias, accumulate;
};

struct linear_inputs {
  std::vector<float> x, w, bias, y0;
  host::fp8_buffers wq;
};

linear_inputs make_inputs(std::mt19937& rng, const linear_case& c, bool fp16) {
  linear_inputs in;
  auto values = [&](std::int64_t n, float lo, float hi) {
    return fp16 ? random_values<fp16_t>(rng, n, lo, hi) : random_values<bf16_t>(rng, n, lo, hi);
  };
  in.x = values(c.rows * c.in, -2, 2);
  in.w = values(c.out * c.in, -0.1f, 0.1f);
  if (c.bias) in.bias = values(c.out, -1, 1);
  in.y0 = values(c.rows * c.out, -1, 1);
  // The weight quantized on the host: the GPU runs on exactly these bytes and scales.
  in.wq.data = host::buffer<std::uint8_t>(std::size_t(c.out * c.in));
  in.wq.scale = host::buffer<float>(std::size_t(c.out));
  host::quantize_fp8(host_context(), in.w.data(), c.out, c.in, {in.wq.data.data(), in.wq.scale.data()});
  return in;
}

struct reference {
  std::vector<float> y;
  std::vector<double> slack;  // (1) and (3) of the bound, per output
};

template <class D>
reference host_linear(const linear_case& c, const linear_inputs& in) {
  reference ref;
  ref.y = c.accumulate ? in.y0 : std::vector<float>(std::size_t(c.rows * c.out));
  quantized xq{std::vector<std::uint8_t>(std::size_t(c.rows * c.in)), std::vector<float>(std::size_t(c.rows))};
  host::linear_fp8(host_context(), in.x.data(), c.rows, c.in, in.wq.view(), c.out, c.bias ? in.bias.data() : nullptr,
                   ref.y.data(), c.accumulate, {xq.data.data(), xq.scale.data()});
  std::vector<float> product(ref.y.size()), with_bias;  // the terms of (3)
  host::linear_fp8(host_context(), in.x.data(), c.rows, c.in, in.wq.view(), c.out, nullptr, product.data(), false,
                   {xq.data.data(), xq.scale.data()});
  if (c.bias) {
    with_bias = product;
    for (std::int64_t i = 0; i < c.rows * c.out; ++i) with_bias[std::size_t(i)] += in.bias[std::size_t(i % c.out)];
  }
  auto norms = [](const std::uint8_t* q, std::int64_t rows, std::int64_t cols) {
    std::vector<double> n(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (std::int64_t i = 0; i < cols; ++i) s += std::pow(double(e4m3_to_float(q[r * cols + i])), 2);
      n[std::size_t(r)] = std::sqrt(s);
    }
    return n;
  };
  const auto xn = norms(xq.data.data(), c.rows, c.in), wn = norms(in.wq.data.data(), c.out, c.in);
  ref.slack.resize(ref.y.size());
  for (std::int64_t r = 0; r < c.rows; ++r)
    for (std::int64_t o = 0; o < c.out; ++o) {
      const std::size_t i = std::size_t(r * c.out + o);
      double slack = 0x1p-12 * xn[std::size_t(r)] * wn[std::size_t(o)] * xq.scale[std::size_t(r)] * in.wq.scale[std::size_t(o)];
      if (c.bias || c.accumulate) slack += ulp_of<D>(product[i]) + (c.bias ? ulp_of<D>(with_bias[i]) : 0.0);
      ref.slack[i] = slack;
    }
  return ref;
}

// Runs linear_fp8 on `ctx` (inside a CUDA graph when `graph`) and returns y.
// Runs f on the stream, or captures it into a CUDA graph and launches that when `graph`.
template <class D, class F>
void run_maybe_captured(typename backend::cuda<D>::context& ctx, bool graph, F&& f) {
  using B = backend::cuda<D>;
  if (!graph) {
    f();
    return;
  }
  ctx.synchronize();
  B::graph_begin(ctx);
  f();
  const auto g = B::graph_end(ctx);
  B::graph_launch(ctx, g);
}

template <class D>
std::vector<float> gpu_linear(typename backend::cuda<D>::context& ctx, const linear_case& c, const linear_inputs& in,
                              bool graph = false) {
  using B = backend::cuda<D>;
  auto x = upload<D>(ctx, in.x);
  auto y = upload<D>(ctx, in.y0);
  if (!c.accumulate) poison<D>(ctx, y.data(), c.rows * c.out);
  auto bias = c.bias ? upload<D>(ctx, in.bias) : typename B::template buffer<D>();
  auto wd = upload_raw<D, std::uint8_t>(ctx, in.wq.data);
  auto ws = upload_raw<D, float>(ctx, in.wq.scale);
  auto xq = B::template alloc<std::uint8_t>(ctx, c.rows * c.in);
  auto xs = B::template alloc<float>(ctx, c.rows);
  run_maybe_captured<D>(ctx, graph, [&] {
    B::linear_fp8(ctx, x.data(), c.rows, c.in, {wd.data(), ws.data()}, c.out, c.bias ? bias.data() : nullptr, y.data(),
                  c.accumulate, {xq.data(), xs.data()});
  });
  return download<D>(ctx, y.data(), c.rows * c.out);
}

// Outputs outside the bound (and the worst ratio of error to bound, for the message).
template <class D>
std::pair<std::int64_t, double> outside_bound(const std::vector<float>& got, const reference& ref) {
  std::int64_t bad = 0;
  double worst = 0;
  for (std::size_t i = 0; i < ref.y.size(); ++i) {
    const double err = std::fabs(double(got[i]) - ref.y[i]);
    const double bound = ref.slack[i] + ulp_of<D>(std::max(std::fabs(double(got[i])), std::fabs(double(ref.y[i]))));
    if (!(err <= bound)) ++bad;  // NaN counts
    worst = std::max(worst, std::isnan(err) ? INFINITY : err / bound);
  }
  return {bad, worst};
}

}  // namespace

TEMPLATE_TEST_CASE("cuda linear_fp8 matches the host's on every path", "[gpu][fp8]", bf16_t, fp16_t) {
  using D = TestType;
  auto rng = rng_for("linear_fp8");
  auto& plain = shared_context<D>();           // GEMV up to 8 rows, then cuBLASLt with outer-vector scales
  const auto gemm = context_with<D>("0", "outer");    // cuBLASLt from 1 row
  const auto fallback = context_with<D>("0", "fallback");  // unit-scale GEMM + scaling kernel from 1 row
  struct path {
    const char* name;
    typename backend::cuda<D>::context* ctx;
  };
  const path paths[] = {{"default", &plain}, {"cuBLASLt outer-vector", gemm.get()}, {"fallback", fallback.get()}};
  // (in, out): small, a real layer, out not a multiple of 16 (GEMV tail blocks; cuBLASLt's
  // 16-bit output rows of 2000 bytes), in not a multiple of 64 or of 16 (the GEMV's partial
  // chunks; no FP8 GEMM, the GEMV 8 rows at a time on every path).
  const std::pair<std::int64_t, std::int64_t> shapes[] = {{64, 96}, {4096, 1024}, {1008, 1000}, {48, 20}, {200, 40}};
  for (const auto [in, out] : shapes)
    for (const std::int64_t rows : {1, 2, 3, 5, 8, 9, 16, 64, 300})
      for (const bool bias : {false, true})
        for (const bool accumulate : {false, true}) {
          const linear_case c{rows, in, out, bias, accumulate};
          const auto inputs = make_inputs(rng, c, std::is_same_v<D, fp16_t>);
          const auto ref = host_linear<D>(c, inputs);
          for (const path& p : paths) {
            INFO(dtype_label<D> << " " << p.name << ": rows " << rows << " in " << in << " out " << out
                                << (bias ? " bias" : "") << (accumulate ? " accumulate" : ""));
            const auto got = gpu_linear<D>(*p.ctx, c, inputs);
            const auto [bad, worst] = outside_bound<D>(got, ref);
            INFO("outputs outside the bound: " << bad << " of " << got.size() << "; worst error / bound " << worst);
            CHECK(bad == 0);
            // The per-output bound is a worst case over summation orders; over the whole output
            // the error is the GPU's final rounding to D, on average well under D's unit roundoff.
            CHECK(rel_l2(got, ref.y) < unit_roundoff<D>);
          }
        }
}

TEMPLATE_TEST_CASE("cuda linear_fp8 inside a CUDA graph, GEMV and both GEMM paths", "[gpu][fp8]", bf16_t, fp16_t) {
  using D = TestType;
  auto rng = rng_for("linear_fp8 graph");
  const auto fallback = context_with<D>("8", "fallback");
  for (const std::int64_t rows : {4, 32})
    for (auto* ctx : {&shared_context<D>(), fallback.get()}) {
      const linear_case c{rows, 512, 384, true, true};
      const auto inputs = make_inputs(rng, c, std::is_same_v<D, fp16_t>);
      const auto ref = host_linear<D>(c, inputs);
      INFO(dtype_label<D> << " rows " << rows << (ctx == fallback.get() ? " fallback" : " default"));
      const auto [bad, worst] = outside_bound<D>(gpu_linear<D>(*ctx, c, inputs, true), ref);
      INFO("outputs outside the bound: " << bad << "; worst error / bound " << worst);
      CHECK(bad == 0);
    }
}

namespace {

// ---- block-wise weights ---------------------------------------------------------------------

struct block_case {
  std::int64_t rows, in, out;
  backend::fp8_blocks blocks;
  bool bias, accumulate;
};

// Block-wise inputs built directly: e4m3 bytes of random values and random positive block scales
// (host layout [scale_rows][groups]); x's groups of different magnitudes, so that a group scale
// taken from the wrong group or row shows.
struct block_inputs {
  std::vector<float> x, bias, y0;
  std::vector<std::uint8_t> wq;
  std::vector<float> ws;
  std::int64_t groups = 0, scale_rows = 0;
};

block_inputs make_block_inputs(std::mt19937& rng, const block_case& c, bool fp16) {
  block_inputs in;
  auto values = [&](std::int64_t n, float lo, float hi) {
    return fp16 ? random_values<fp16_t>(rng, n, lo, hi) : random_values<bf16_t>(rng, n, lo, hi);
  };
  in.groups = c.blocks.groups(c.in);
  in.scale_rows = c.blocks.scale_rows(c.out);
  in.x = values(c.rows * c.in, -2, 2);
  // Exact: a power of two >= 1, so x stays representable in D (a factor < 1 would push fp16's
  // subnormals below their last bit: the device's x would differ from the host's).
  for (std::int64_t i = 0; i < c.rows * c.in; ++i) {
    const std::int64_t g = (i % c.in) / c.blocks.cols, r = i / c.in;
    in.x[std::size_t(i)] *= std::ldexp(1.0f, int((g + r) % 5));
  }
  if (c.bias) in.bias = values(c.out, -1, 1);
  in.y0 = values(c.rows * c.out, -1, 1);
  std::uniform_real_distribution<float> code(-448.0f, 448.0f), scale(2e-4f, 1e-3f);
  in.wq.resize(std::size_t(c.out * c.in));
  for (auto& b : in.wq) b = to_e4m3(code(rng));
  in.ws.resize(std::size_t(in.scale_rows * in.groups));
  for (float& v : in.ws) v = scale(rng);
  return in;
}

// The host's linear_fp8 over the same weight, and the bound of linear_bound taken per group: (1)
// is 2^-12 * sum_g |xq_g| |wq_g| * xs_g * ws_g (each group's sum, its scaling and the sum over
// groups are fp32 sums of at most in + groups terms, in <= 4096), (2) and (3) as there.
template <class D>
reference host_linear_blocks(const block_case& c, const block_inputs& in, quantized& xq) {
  const backend::fp8_weight w{in.wq.data(), in.ws.data(), nullptr, c.blocks, in.groups};
  reference ref;
  ref.y = c.accumulate ? in.y0 : std::vector<float>(std::size_t(c.rows * c.out));
  xq = {std::vector<std::uint8_t>(std::size_t(c.rows * c.in)), std::vector<float>(std::size_t(c.rows * in.groups))};
  host::linear_fp8(host_context(), in.x.data(), c.rows, c.in, w, c.out, c.bias ? in.bias.data() : nullptr,
                   ref.y.data(), c.accumulate, {xq.data.data(), xq.scale.data()});
  std::vector<float> product(ref.y.size()), with_bias;
  host::linear_fp8(host_context(), in.x.data(), c.rows, c.in, w, c.out, nullptr, product.data(), false,
                   {xq.data.data(), xq.scale.data()});
  if (c.bias) {
    with_bias = product;
    for (std::int64_t i = 0; i < c.rows * c.out; ++i) with_bias[std::size_t(i)] += in.bias[std::size_t(i % c.out)];
  }
  // Norms of each row's groups: [rows][groups].
  auto norms = [&](const std::uint8_t* q, std::int64_t rows) {
    std::vector<double> n(static_cast<std::size_t>(rows * in.groups));
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t i = 0; i < c.in; ++i)
        n[std::size_t(r * in.groups + i / c.blocks.cols)] += std::pow(double(e4m3_to_float(q[r * c.in + i])), 2);
    for (double& v : n) v = std::sqrt(v);
    return n;
  };
  const auto xn = norms(xq.data.data(), c.rows), wn = norms(in.wq.data(), c.out);
  ref.slack.resize(ref.y.size());
  for (std::int64_t r = 0; r < c.rows; ++r)
    for (std::int64_t o = 0; o < c.out; ++o) {
      const std::size_t i = std::size_t(r * c.out + o);
      double slack = 0;
      for (std::int64_t g = 0; g < in.groups; ++g)
        slack += 0x1p-12 * xn[std::size_t(r * in.groups + g)] * wn[std::size_t(o * in.groups + g)] *
                 xq.scale[std::size_t(r * in.groups + g)] * in.ws[std::size_t((o / c.blocks.rows) * in.groups + g)];
      if (c.bias || c.accumulate) slack += ulp_of<D>(product[i]) + (c.bias ? ulp_of<D>(with_bias[i]) : 0.0);
      ref.slack[i] = slack;
    }
  return ref;
}

struct gpu_block_result {
  std::vector<float> y;
  quantized xq;  // the scratch after the call: bytes [rows, in], scales in the cuda backend's order
};

// Runs linear_fp8 with the weight's scales in rows of `scale_ld` (>= groups; load_fp8 pads to a
// multiple of 4, the padding zero), inside a CUDA graph when `graph`.
template <class D>
gpu_block_result gpu_linear_blocks(typename backend::cuda<D>::context& ctx, const block_case& c,
                                   const block_inputs& in, std::int64_t scale_ld, bool graph = false) {
  using B = backend::cuda<D>;
  std::vector<float> ws(std::size_t(in.scale_rows * scale_ld), 0.0f);
  for (std::int64_t r = 0; r < in.scale_rows; ++r)
    for (std::int64_t g = 0; g < in.groups; ++g)
      ws[std::size_t(r * scale_ld + g)] = in.ws[std::size_t(r * in.groups + g)];
  auto x = upload<D>(ctx, in.x);
  auto y = upload<D>(ctx, in.y0);
  if (!c.accumulate) poison<D>(ctx, y.data(), c.rows * c.out);
  auto bias = c.bias ? upload<D>(ctx, in.bias) : typename B::template buffer<D>();
  auto wd = upload_raw<D, std::uint8_t>(ctx, in.wq);
  auto sd = upload_raw<D, float>(ctx, ws);
  auto xq = B::template alloc<std::uint8_t>(ctx, c.rows * c.in);
  auto xs = B::template alloc<float>(ctx, c.rows * in.groups);
  run_maybe_captured<D>(ctx, graph, [&] {
    B::linear_fp8(ctx, x.data(), c.rows, c.in, {wd.data(), sd.data(), nullptr, c.blocks, scale_ld}, c.out,
                  c.bias ? bias.data() : nullptr, y.data(), c.accumulate, {xq.data(), xs.data()});
  });
  return {download<D>(ctx, y.data(), c.rows * c.out),
          {download_raw<D>(ctx, xq.data(), c.rows * c.in), download_raw<D>(ctx, xs.data(), c.rows * in.groups)}};
}

// The quantization of x: the host's bytes, and its group scales bit for bit (compared as sets:
// the cuda backend orders them group-major, in one or two parts, src/cuda/gemm_fp8.cu).
void check_block_quantization(const quantized& got, const quantized& want) {
  REQUIRE(got.data.size() == want.data.size());
  std::int64_t wrong = 0;
  for (std::size_t i = 0; i < want.data.size(); ++i) wrong += got.data[i] != want.data[i];
  CHECK(wrong == 0);
  auto sorted = [](std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  CHECK(same_bits(sorted(got.scale), sorted(want.scale)));
}

template <class D>
struct block_path {
  const char* name;
  typename backend::cuda<D>::context* ctx;
};

// One case on each path, against one host reference.
template <class D>
void check_block_case(std::initializer_list<block_path<D>> paths, std::mt19937& rng, const block_case& c,
                      bool unpadded = false) {
  const auto in = make_block_inputs(rng, c, std::is_same_v<D, fp16_t>);
  quantized want_xq;
  const auto ref = host_linear_blocks<D>(c, in, want_xq);
  const std::int64_t scale_ld = unpadded ? in.groups : (in.groups + 3) / 4 * 4;
  for (const auto& p : paths) {
    INFO(dtype_label<D> << " " << p.name << ": rows " << c.rows << " in " << c.in << " out " << c.out << " blocks "
                        << c.blocks.rows << " x " << c.blocks.cols << " scale_ld " << scale_ld
                        << (c.bias ? " bias" : "") << (c.accumulate ? " accumulate" : ""));
    const auto got = gpu_linear_blocks<D>(*p.ctx, c, in, scale_ld);
    check_block_quantization(got.xq, want_xq);
    const auto [bad, worst] = outside_bound<D>(got.y, ref);
    INFO("outputs outside the bound: " << bad << " of " << got.y.size() << "; worst error / bound " << worst);
    CHECK(bad == 0);
    CHECK(rel_l2(got.y, ref.y) < unit_roundoff<D>);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("cuda linear_fp8 with 128 x 128 FP8 blocks matches the host's on every path", "[gpu][fp8]", bf16_t,
                   fp16_t) {
  using D = TestType;
  auto rng = rng_for("linear_fp8 blocks");
  const auto gemm = context_with<D>("0", "outer");          // cuBLASLt from 4 rows, the GEMV below
  const auto fallback = context_with<D>("8", "fallback");   // the block GEMV 8 rows at a time, always
  // (in, out): as asked of the block path; out 130 (not a multiple of 4: no cuBLASLt, a partial
  // block row of scales); 1024 x 512 (8 groups: the scale rows need no padding).
  const std::pair<std::int64_t, std::int64_t> shapes[] = {{256, 384}, {512, 256}, {256, 130}, {1024, 512}};
  for (const auto [in, out] : shapes)
    for (const std::int64_t rows : {1, 5, 8, 9, 64, 200, 203})
      for (const bool bias : {false, true})
        for (const bool accumulate : {false, true})
          check_block_case<D>({{"default", &shared_context<D>()}, {"cuBLASLt from 4 rows", gemm.get()},
                               {"MII_CUDA_FP8_GEMM=fallback", fallback.get()}},
                              rng, {rows, in, out, {128, 128}, bias, accumulate});
}

TEMPLATE_TEST_CASE("cuda linear_fp8 with other FP8 block shapes matches the host's", "[gpu][fp8]", bf16_t, fp16_t) {
  using D = TestType;
  auto rng = rng_for("linear_fp8 other blocks");
  const auto gemm = context_with<D>("0", "outer");
  // {1, 128}: the plan's per-row copy of block scales (rows not on a block boundary); {32, 64}:
  // the block GEMV; {16, 32}: the CUDA-core kernel (32 columns: not a multiple of 64).
  const backend::fp8_blocks shapes[] = {{1, 128}, {32, 64}, {16, 32}};
  for (const auto blocks : shapes)
    for (const auto [in, out] : {std::pair<std::int64_t, std::int64_t>{128, 96}, {256, 200}, {64, 40}})
      for (const std::int64_t rows : {1, 3, 8, 9, 37})
        for (const bool bias : {false, true})
          for (const bool accumulate : {false, true}) {
            if (in % blocks.cols != 0) continue;  // block-wise weights have whole groups (the plan checks)
            check_block_case<D>({{"default", &shared_context<D>()}, {"cuBLASLt from 4 rows", gemm.get()}}, rng,
                                {rows, in, out, blocks, bias, accumulate});
          }
  // 128 x 128 blocks with scale rows of exactly `groups` (not a multiple of 4): cuBLASLt cannot
  // read them; the GEMV can.
  for (const std::int64_t rows : {4, 9, 64})
    check_block_case<D>({{"cuBLASLt from 4 rows, unpadded scales", gemm.get()}}, rng,
                        {rows, 768, 256, {128, 128}, true, true}, true);
}

TEMPLATE_TEST_CASE("cuda linear_fp8 with FP8 blocks inside a CUDA graph", "[gpu][fp8]", bf16_t, fp16_t) {
  using D = TestType;
  auto rng = rng_for("linear_fp8 blocks graph");
  for (const auto blocks : {backend::fp8_blocks{128, 128}, backend::fp8_blocks{16, 32}})
    for (const std::int64_t rows : {4, 34}) {
      const block_case c{rows, 512, 384, blocks, true, true};
      const auto in = make_block_inputs(rng, c, std::is_same_v<D, fp16_t>);
      quantized want_xq;
      const auto ref = host_linear_blocks<D>(c, in, want_xq);
      INFO(dtype_label<D> << " rows " << rows << " blocks " << blocks.rows << " x " << blocks.cols);
      const auto got = gpu_linear_blocks<D>(shared_context<D>(), c, in, (in.groups + 3) / 4 * 4, true);
      check_block_quantization(got.xq, want_xq);
      const auto [bad, worst] = outside_bound<D>(got.y, ref);
      INFO("outputs outside the bound: " << bad << "; worst error / bound " << worst);
      CHECK(bad == 0);
    }
}

namespace {

template <class D>
void check_load_fp8(typename backend::cuda<D>::context& ctx, const model::plan_entry& e) {
  INFO(e.what << " [" << e.rows << ", " << e.cols << "]");
  const auto want = host::load_fp8(host_context(), e);
  const auto got = backend::cuda<D>::load_fp8(ctx, e);
  const auto bytes = download_raw<D>(ctx, got.data.data(), e.numel());
  CHECK(std::equal(bytes.begin(), bytes.end(), want.data.begin(), want.data.end()));
  // Scales [scale_rows][scale_ld] on both (per row: [rows][1]); the cuda backend pads block-wise
  // rows to a multiple of 4 with zeros (cuBLASLt's layout), the host does not.
  REQUIRE(got.blocks == want.blocks);
  const std::int64_t scale_rows = want.blocks.scale_rows(e.rows), groups = want.blocks.groups(e.cols);
  CHECK(got.scale_ld == (want.blocks.per_row() ? 1 : (groups + 3) / 4 * 4));
  const auto scales = download_raw<D>(ctx, got.scale.data(), scale_rows * got.scale_ld);
  std::int64_t wrong = 0, padding = 0;
  for (std::int64_t r = 0; r < scale_rows; ++r)
    for (std::int64_t g = 0; g < got.scale_ld; ++g) {
      const float v = scales[std::size_t(r * got.scale_ld + g)];
      if (g >= groups) padding += v != 0.0f;
      else wrong += std::memcmp(&v, &want.scale[std::size_t(r * want.scale_ld + g)], sizeof(float)) != 0;
    }
  CHECK(wrong == 0);
  CHECK(padding == 0);
}

}  // namespace

// Plans a fixture's weights (with `q`), reserves the arena as the engine does and loads every
// entry: each FP8 one through check_load_fp8 (without `q`, a pre-quantized checkpoint's, which
// must be marked so), the others plainly (the arena holds both kinds). Every layer has four FP8
// linear weights.
template <class D>
void check_plan_fp8(typename backend::cuda<D>::context& ctx, const std::string& fixture,
                    const model::arch_description& arch, model::weight_quantization q) {
  INFO(fixture);
  const auto hf = io::load_hf_config(test::fixture_dir(fixture));
  const auto shape = model::resolve_shape(arch, hf);
  const auto ckpt = io::checkpoint::open(test::fixture_dir(fixture));
  // Block-wise checkpoints need their quantization_config (weight_block_size) to be planned.
  const bool block_wise = hf.quantization.block_cols != 0;
  const auto plan = model::plan_weights(arch, shape, ckpt, q, block_wise ? hf.quantization : io::checkpoint_quantization{});
  backend::cuda<D>::reserve_weights(ctx, plan);
  int checked = 0;
  for (const auto& layer : plan.layers)
    for (const auto& e : layer) {
      if (!e.present()) continue;
      if (e.fp8) {
        if (q == model::weight_quantization::none) REQUIRE(e.prequantized());
        check_load_fp8<D>(ctx, e);
        ++checked;
      } else {
        (void)backend::cuda<D>::load(ctx, e);
      }
    }
  CHECK(checked == 4 * int(plan.layers.size()));
}

TEMPLATE_TEST_CASE("cuda load_fp8 gives the host's bytes and scales", "[gpu][fp8]", bf16_t, fp16_t) {
  using D = TestType;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("load_fp8");

  SECTION("synthetic entries, in several pieces of the fp32 staging") {
    io::tensor_view big{"synthetic.big", dtype::bf16, {5000, 2048}};  // 10M values: three 4M pieces
    io::tensor_view small{"synthetic.small", dtype::bf16, {96, 64}};
    REQUIRE(big.synthetic());
    for (const auto& e : {model::plan_entry{"layer 0 mlp up", {{&big, 0, 5000}}, 5000, 2048, 0, false, true},
                          model::plan_entry{"layer 1 qkv", {{&small, 0, 96}}, 96, 64, 0, false, true}})
      check_load_fp8<D>(ctx, e);
  }

  SECTION("a bf16 checkpoint tensor: converted, sliced, from several runs, in pieces") {
    test::temp_dir dir{"fp8-load"};
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    std::vector<float> v(std::size_t(3000) * 2048);
    for (float& f : v) f = u(rng);
    for (std::size_t i = 0; i < 2048; ++i) v[5 * 2048 + i] = 0.0f;  // an all-zero row: scale 1
    v[7 * 2048 + 11] = 3.0f;                                          // a row of mostly subnormal codes
    std::vector<std::byte> bytes(v.size() * 2);
    io::convert(v.data(), dtype::f32, dtype::bf16, bytes.data(), std::int64_t(v.size()));
    const io::tensor_to_write t[] = {{"w", dtype::bf16, {3000, 2048}, bytes}};
    io::write_safetensors(dir / "model.safetensors", t);
    const auto ckpt = io::checkpoint::open(dir.path());
    const io::tensor_view* w = ckpt.find("w");
    REQUIRE(w);
    // 2900 x 2048 = 5.9M values: two pieces, the second starting inside the second run.
    check_load_fp8<D>(ctx, {"whole rows, two runs", {{w, 0, 1500}, {w, 1600, 1400}}, 2900, 2048, 0, false, true});
    check_load_fp8<D>(ctx, {"a column slice", {{w, 3, 40}, {w, 2000, 9}}, 49, 1000, 48, false, true});
  }

  SECTION("every FP8 weight of the llama3 fixture, after reserve_weights") {
    check_plan_fp8<D>(ctx, "llama3", models::llama::describe(models::llama::name), model::weight_quantization::fp8);
  }

  SECTION("a compressed-tensors checkpoint's bytes and scales, copied as stored (both scale kinds)") {
    check_plan_fp8<D>(ctx, "llama3_fp8_channel", models::llama::describe(models::llama::name),
                      model::weight_quantization::none);
    check_plan_fp8<D>(ctx, "qwen2_fp8_tensor", models::qwen2::describe(models::qwen2::name),
                      model::weight_quantization::none);
  }

  SECTION("block-wise checkpoints' bytes and block scales, copied as stored (32 x 64 and 16 x 32 blocks)") {
    check_plan_fp8<D>(ctx, "llama3_fp8_block32x64", models::llama::describe(models::llama::name),
                      model::weight_quantization::none);
    check_plan_fp8<D>(ctx, "qwen2_fp8_block16x32", models::qwen2::describe(models::qwen2::name),
                      model::weight_quantization::none);
  }
}

// Not run by default (hidden tag): MII_TEST_SEED-independent timings of the FP8 GEMV against
// cuBLASLt's FP8 GEMM, the bf16 GEMV/GEMM and a device-to-device copy, on Llama-3-8B's MLP
// shapes. Run: mii_test_gpu "[.fp8bench]" -s
TEST_CASE("fp8 linear bandwidth", "[gpu][.fp8bench]") {
  using D = bf16_t;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  const auto gemm = context_with<D>("0", "outer");
  auto rng = rng_for("fp8 bench");
  auto time_us = [&](typename B::context& c, auto&& fn) {
    for (int i = 0; i < 5; ++i) fn(i);
    c.synchronize();
    const int n = 200;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) fn(i);
    c.synchronize();
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / n;
  };
  {
    const std::int64_t n = std::int64_t(1) << 30;
    auto a = B::template alloc<std::uint8_t>(ctx, n), b = B::template alloc<std::uint8_t>(ctx, n);
    const double us = time_us(ctx, [&](int) { B::copy_to_device(ctx, b.data(), a.data(), n); });
    std::printf("device copy: %.0f GB/s (read + write)\n", 2.0 * double(n) / us * 1e-3);
  }
  constexpr int copies = 4;  // weights rotated so that they are read from memory, not L2
  for (const auto [in, out] : {std::pair<std::int64_t, std::int64_t>{4096, 14336}, {14336, 4096}}) {
    std::vector<typename B::template buffer<std::uint8_t>> wq;
    std::vector<typename B::template buffer<float>> ws;
    std::vector<typename B::template buffer<D>> wb;
    for (int i = 0; i < copies; ++i) {
      wq.push_back(upload_raw<D, std::uint8_t>(ctx, std::vector<std::uint8_t>(std::size_t(in * out), 0x38)));
      ws.push_back(upload_raw<D, float>(ctx, std::vector<float>(std::size_t(out), 0.01f)));
      wb.push_back(upload<D>(ctx, random_values<D>(rng, in * out, -0.1f, 0.1f)));
    }
    for (const std::int64_t rows : {1, 2, 4, 8, 16}) {
      auto x = upload<D>(ctx, random_values<D>(rng, rows * in));
      auto y = B::template alloc<D>(ctx, rows * out);
      auto xq = B::template alloc<std::uint8_t>(ctx, rows * in);
      auto xs = B::template alloc<float>(ctx, rows);
      auto fp8 = [&](typename B::context& c) {
        return time_us(c, [&](int i) {
          B::linear_fp8(c, x.data(), rows, in, {wq[std::size_t(i % copies)].data(), ws[std::size_t(i % copies)].data()},
                        out, nullptr, y.data(), false, {xq.data(), xs.data()});
        });
      };
      const double gemv = fp8(ctx), lt = fp8(*gemm);
      const double quantize = time_us(ctx, [&](int) { B::quantize_fp8(ctx, x.data(), rows, in, {xq.data(), xs.data()}); });
      // The same launches replayed from a CUDA graph (as decode steps run): no launch overhead.
      constexpr int in_graph = 20;
      B::graph_begin(ctx);
      for (int i = 0; i < in_graph; ++i)
        B::linear_fp8(ctx, x.data(), rows, in, {wq[std::size_t(i % copies)].data(), ws[std::size_t(i % copies)].data()},
                      out, nullptr, y.data(), false, {xq.data(), xs.data()});
      const auto g = B::graph_end(ctx);
      const double graph = time_us(ctx, [&](int) { B::graph_launch(ctx, g); }) / in_graph;
      const double bf16 = time_us(ctx, [&](int i) {
        B::linear(ctx, x.data(), rows, in, wb[std::size_t(i % copies)].data(), out, nullptr, y.data());
      });
      const double bytes = double(in * out);
      std::printf("in %5ld out %5ld rows %2ld: fp8 default %6.1f us (%4.0f GB/s)  in a graph %6.1f us (%4.0f GB/s)  "
                  "cuBLASLt %6.1f us (%4.0f GB/s)  bf16 %6.1f us (%4.0f GB/s)  quantize alone %5.1f us\n",
                  long(in), long(out), long(rows), gemv, bytes / gemv * 1e-3, graph, bytes / graph * 1e-3, lt,
                  bytes / lt * 1e-3, bf16, 2 * bytes / bf16 * 1e-3, quantize);
    }
  }
}

// MoE with FP8 experts (backend/moe_weights.hpp): every expert's gate|up and down as e4m3 bytes
// with a scale per row, the cuda op (grouped rows, linear_fp8 per expert: the GEMV for a few rows,
// cuBLASLt past 8) against the host's (token by token) over the same bytes and scales. The
// inner activations are bf16/fp16 on the GPU and fp32 on the host, so a few round to the
// neighbouring e4m3 code (a step is 1/16 to 1/8 of the value): the bound is the bf16 GEMM
// tolerance of the unquantized MoE test (ops_test.cpp) plus that.
TEMPLATE_TEST_CASE("cuda moe with FP8 experts matches host", "[gpu][fp8]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("moe fp8");
  struct config {
    std::int64_t hidden, experts, top_k, ffn;
  };
  auto quantize_rows = [](const std::vector<float>& w, std::int64_t rows, std::int64_t cols) {
    return host_quantize(w, rows, cols);  // per output row: the weight scheme of backend/fp8.hpp
  };
  for (const config c : {config{64, 8, 2, 96}, config{128, 4, 1, 64}}) {
    for (const std::int64_t rows : {1, 5, 37, 300}) {
      INFO(dtype_label<D> << " rows " << rows << " hidden " << c.hidden << " experts " << c.experts << " top_k "
                          << c.top_k << " ffn " << c.ffn);
      const auto x_h = random_values<D>(rng, rows * c.hidden);
      const auto router_h = random_values<D>(rng, c.experts * c.hidden);
      std::vector<quantized> up_q, down_q;
      std::vector<device_buffer<D, std::uint8_t>> up_d, down_d;
      std::vector<device_buffer<D, float>> up_s, down_s;
      std::vector<backend::fp8_weight> up_w, down_w, up_w_h, down_w_h;
      for (std::int64_t e = 0; e < c.experts; ++e) {
        up_q.push_back(quantize_rows(random_values<D>(rng, 2 * c.ffn * c.hidden, -0.3f, 0.3f), 2 * c.ffn, c.hidden));
        down_q.push_back(quantize_rows(random_values<D>(rng, c.hidden * c.ffn, -0.3f, 0.3f), c.hidden, c.ffn));
        up_d.push_back(upload_raw<D>(ctx, up_q.back().data));
        up_s.push_back(upload_raw<D>(ctx, up_q.back().scale));
        down_d.push_back(upload_raw<D>(ctx, down_q.back().data));
        down_s.push_back(upload_raw<D>(ctx, down_q.back().scale));
      }
      for (std::int64_t e = 0; e < c.experts; ++e) {
        const auto i = std::size_t(e);
        up_w.push_back({up_d[i].data(), up_s[i].data()});
        down_w.push_back({down_d[i].data(), down_s[i].data()});
        up_w_h.push_back({up_q[i].data.data(), up_q[i].scale.data()});
        down_w_h.push_back({down_q[i].data.data(), down_q[i].scale.data()});
      }
      const std::vector<const D*> no_ptrs(std::size_t(c.experts), nullptr);
      const std::vector<const float*> no_ptrs_h(std::size_t(c.experts), nullptr);
      const std::int64_t widest = std::max(c.hidden, c.ffn);
      auto xq = B::template alloc<std::uint8_t>(ctx, rows * widest);
      auto xs = B::template alloc<float>(ctx, rows);
      auto x = upload<D>(ctx, x_h);
      auto router = upload<D>(ctx, router_h);
      auto out = B::template alloc<D>(ctx, rows * c.hidden);
      poison<D>(ctx, out.data(), rows * c.hidden);
      backend::moe_weights<D> w{.router = router.data(), .experts = c.experts, .top_k = c.top_k, .up = no_ptrs,
                                .down = no_ptrs, .ffn = c.ffn};
      w.up_fp8 = up_w;
      w.down_fp8 = down_w;
      w.scratch = {xq.data(), xs.data()};
      B::template moe<layers::activation::silu>(ctx, x.data(), rows, c.hidden, w, out.data());
      const auto got = download<D>(ctx, out.data(), rows * c.hidden);

      std::vector<std::uint8_t> xq_h(std::size_t(rows * widest));
      std::vector<float> xs_h(static_cast<std::size_t>(rows)), ref(static_cast<std::size_t>(rows * c.hidden));
      backend::moe_weights<float> w_h{.router = router_h.data(), .experts = c.experts, .top_k = c.top_k,
                                      .up = no_ptrs_h, .down = no_ptrs_h, .ffn = c.ffn};
      w_h.up_fp8 = up_w_h;
      w_h.down_fp8 = down_w_h;
      w_h.scratch = {xq_h.data(), xs_h.data()};
      backend::host::moe<layers::activation::silu>(host_context(), x_h.data(), rows, c.hidden, w_h, ref.data());
      CHECK(count_nan(got) == 0);
      const double err = rel_l2(got, ref);
      CHECK(err <= 3e-2);
      if (rows == 300) std::printf("moe fp8 %s hidden %ld experts %ld: rel L2 %.2e\n", dtype_label<D>, long(c.hidden),
                                   long(c.experts), err);
    }
  }
}
