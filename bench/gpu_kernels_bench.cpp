// gpu-kernels-bench: timing of single CUDA kernels, the figures the GPU suite used to print
// while counting as passed tests (tests/gpu asserts correctness only; timing lives here).
//
//   gpu-kernels-bench [--what attention,linear,fp8] [--kv-fp8] [--out DIR]
//
// attention: the attention kernel alone on decode, prefill, chunked-prefill and mixed steps of
//   a Mistral-7B layer shape (bf16, 32 q / 8 kv heads, head_dim 128, KV blocks of 64), as µs per
//   launch, model TFLOP/s and KV GB/s (the cache bytes the step reads). --kv-fp8: each decode
//   step also over an FP8 KV cache (backend/kv_fp8.hpp; one byte per value plus a 4-byte scale
//   per vector), on a row of its own beside the bf16 one.
// linear: decode-size linear layers of a Mistral-7B MLP weight (4096 x 14336, both orientations)
//   at 1..16 rows through the GEMV kernel (1 row, what linear() uses) and cuBLASLt, as achieved
//   bandwidth against a device-to-device copy (bytes read + written).
// fp8: linear_fp8 (backend/fp8.hpp, quantization of x included) on Llama-3-8B's MLP weights
//   (gate|up [28672, 4096], down [4096, 14336]) with per-row scales and with 128 x 128 block
//   scales (transformers' block-wise FP8), beside the bf16 linear, from 1 to 8192 rows: µs per
//   call, TFLOP/s, and the weight bytes read per µs against the copy rate.
// With --out, the figures also go to DIR/gpu-kernels.json (with the GPU's name and the commit).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mii_commit.hpp"  // generated at build time: MII_BENCH_COMMIT (bench/CMakeLists.txt)

#if MII_WITH_CUDA
#include <mii/backend/cuda/cuda_backend.hpp>
#include <mii/backend/cuda/roofline.hpp>
#include <mii/backend/device.hpp>
#include <mii/backend/kv_fp8.hpp>
#include <mii/runtime/step_builder.hpp>

namespace {

using mii::bf16_t;
using B = mii::backend::cuda<bf16_t>;
using clock_type = std::chrono::steady_clock;

struct row {
  std::string bench, name;
  double us = 0, rate = 0, bandwidth_gb_s = 0;  // rate: TFLOP/s (attention) or % of copy (linear)
};

// Host clock around queued launches after a warm-up: kernel time when the GPU is the
// bottleneck, the launch rate otherwise (tiny decodes).
template <class F>
double us_per_call(B::context& ctx, int warmup, int reps, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  ctx.synchronize();
  const auto t0 = clock_type::now();
  for (int i = 0; i < reps; ++i) f();
  ctx.synchronize();
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() / reps;
}

template <class T>
B::buffer<T> upload(B::context& ctx, const std::vector<T>& v) {
  auto b = B::alloc<T>(ctx, std::int64_t(std::max<std::size_t>(v.size(), 1)));
  B::copy_to_device(ctx, b.data(), v.data(), std::int64_t(v.size()));
  return b;
}

// Random bf16 values tiled from a small pool: generating gigabytes of normals would dominate.
std::vector<bf16_t> tiled_random(std::size_t n, std::mt19937_64& rng, std::size_t salt) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<bf16_t> pool(65521);
  for (auto& v : pool) v = mii::to_bf16(normal(rng) * 0.1f + (normal(rng) > 0 ? 0.01f : -0.01f));
  std::vector<bf16_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = pool[(i * salt) % pool.size()];
  return out;
}

// An FP8 cache of `blocks` blocks: random e4m3 bytes (NaN codes avoided) tiled from a pool, and
// every vector's scale 1/64.
std::vector<std::uint8_t> random_fp8_cache(const mii::backend::fp8_kv_layer<std::uint8_t>& g, std::int64_t blocks,
                                           std::mt19937_64& rng) {
  std::vector<std::uint8_t> pool(65521);
  for (auto& b : pool) b = std::uint8_t(std::uniform_int_distribution<int>(0, 0x7e)(rng) | (rng() & 1 ? 0x80 : 0));
  std::vector<std::uint8_t> out(std::size_t(blocks * g.block_stride()));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = pool[i % pool.size()];
  const float scale = 1.0f / 64;
  for (std::int64_t b = 0; b < blocks; ++b)
    for (std::int64_t v = 0; v < 2 * g.vectors(); ++v)
      std::memcpy(out.data() + b * g.block_stride() + g.scale_offset() + v * 4, &scale, 4);
  return out;
}

std::vector<row> attention_bench(std::mt19937_64& rng, bool kv_fp8) {
  using mii::backend::attention_shape;
  using mii::backend::fp8_kv_layer;
  using mii::backend::kv_layer;
  using mii::runtime::step_builder;
  using mii::runtime::step_chunk;
  B::context ctx(0);
  struct seq_spec {
    int cached, fresh;
  };
  struct perf_case {
    const char* name;
    int seqs, cached, fresh, heads, kv_heads, head_dim;
    int decodes = 0;  // extra decode sequences with 2047 cached tokens
  };
  const perf_case cases[] = {
      {"decode b1 ctx4096", 1, 4095, 1, 32, 8, 128},
      {"decode b64 ctx1024", 64, 1023, 1, 32, 8, 128},
      {"decode b64 ctx4096", 64, 4095, 1, 32, 8, 128},
      {"prefill 8x2048 causal", 8, 0, 2048, 32, 8, 128},
      {"prefill 1x8192 causal", 1, 0, 8192, 32, 8, 128},
      {"chunk 512 after 3584 cached, 4 seqs", 4, 3584, 512, 32, 8, 128},
      {"mixed: chunk 512 + 63 decodes ctx 2048", 1, 0, 512, 32, 8, 128, 63},
  };
  const int bs = 64;
  std::vector<row> rows;
  std::printf("%-40s %10s %12s %12s\n", "attention (bf16, 32/8 heads, d 128, bs 64)", "us", "TFLOP/s", "KV GB/s");
  for (const auto& pc : cases) {
    std::vector<seq_spec> seqs(static_cast<std::size_t>(pc.seqs), seq_spec{pc.cached, pc.fresh});
    seqs.insert(seqs.end(), std::size_t(pc.decodes), seq_spec{2047, 1});
    // Blocks from a shuffled pool: no sequence's blocks are contiguous, as in a served cache.
    std::int32_t total = 0;
    for (const auto& s : seqs) total += std::max(1, (s.cached + s.fresh + bs - 1) / bs);
    std::vector<std::int32_t> ids(static_cast<std::size_t>(total));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<std::vector<std::int32_t>> blocks, tokens;
    std::size_t at = 0;
    for (const auto& s : seqs) {
      const auto n = std::size_t(std::max(1, (s.cached + s.fresh + bs - 1) / bs));
      blocks.emplace_back(ids.begin() + std::ptrdiff_t(at), ids.begin() + std::ptrdiff_t(at + n));
      at += n;
      tokens.emplace_back(std::size_t(s.fresh), 0);
    }
    std::vector<step_chunk> chunks;
    for (std::size_t s = 0; s < seqs.size(); ++s)
      chunks.push_back({tokens[s], seqs[s].cached, blocks[s], 0, step_chunk::logits::last});
    step_builder builder;
    builder.build(chunks);
    const std::int64_t cache_elems = std::int64_t(total) * 2 * pc.kv_heads * bs * pc.head_dim;
    const std::int64_t qkv_elems = std::int64_t(builder.n_tokens()) * (pc.heads + 2 * pc.kv_heads) * pc.head_dim;
    auto g_cache = upload(ctx, tiled_random(std::size_t(cache_elems), rng, 1));
    auto g_qkv = upload(ctx, tiled_random(std::size_t(qkv_elems), rng, 7));
    auto g_out = B::alloc<bf16_t>(ctx, std::int64_t(builder.n_tokens()) * pc.heads * pc.head_dim);
    const auto db = B::upload_step(ctx, builder);
    const attention_shape shape{pc.heads, pc.kv_heads, pc.head_dim, 1.0f / std::sqrt(float(pc.head_dim)), 0};
    const kv_layer<const bf16_t> kv{g_cache.data(), bs, pc.kv_heads, pc.head_dim};
    const double us = us_per_call(ctx, 3, pc.fresh > 1 ? 10 : 200,
                                  [&] { B::attention(ctx, db, g_qkv.data(), shape, kv, g_out.data()); });
    double flops = 0, kv_bytes = 0;
    for (const auto& s : seqs) {
      for (int i = 0; i < s.fresh; ++i) flops += 4.0 * pc.head_dim * pc.heads * double(s.cached + i + 1);
      kv_bytes += 2.0 * 2.0 * pc.kv_heads * pc.head_dim * double(s.cached + s.fresh);
    }
    rows.push_back({"attention", pc.name, us, flops / us * 1e-6, kv_bytes / us * 1e-3});
    std::printf("%-40s %10.1f %12.1f %12.1f\n", pc.name, us, rows.back().rate, rows.back().bandwidth_gb_s);
    if (kv_fp8 && pc.fresh == 1 && pc.decodes == 0) {  // the same decode step over an FP8 cache
      const fp8_kv_layer<std::uint8_t> g{nullptr, bs, pc.kv_heads, pc.head_dim};
      auto g_fp8 = upload(ctx, random_fp8_cache(g, total, rng));
      const fp8_kv_layer<const std::uint8_t> kv8{g_fp8.data(), bs, pc.kv_heads, pc.head_dim};
      const double us8 = us_per_call(ctx, 3, 200, [&] { B::attention(ctx, db, g_qkv.data(), shape, kv8, g_out.data()); });
      // Bytes per vector: its values and its scale.
      const double fp8_bytes = kv_bytes / (2.0 * pc.head_dim) * (pc.head_dim + 4.0);
      rows.push_back({"attention", std::string(pc.name) + ", fp8 kv", us8, flops / us8 * 1e-6, fp8_bytes / us8 * 1e-3});
      std::printf("%-40s %10.1f %12.1f %12.1f\n", rows.back().name.c_str(), us8, rows.back().rate,
                  rows.back().bandwidth_gb_s);
    }
  }
  return rows;
}

// The copy ceiling: 512 MiB of floats copied on the device, counted as read + written; µs per copy.
double measure_copy_gb_s(B::context& ctx, double* us = nullptr) {
  const std::int64_t copy_n = std::int64_t(1) << 27;
  auto src = B::alloc<float>(ctx, copy_n), dst = B::alloc<float>(ctx, copy_n);
  B::fill(ctx, src.data(), copy_n, 1.5f);
  const double copy_us = us_per_call(ctx, 5, 20, [&] { B::copy_2d(ctx, dst.data(), copy_n, src.data(), copy_n, copy_n, 1); });
  if (us) *us = copy_us;
  return 2.0 * double(copy_n) * sizeof(float) / copy_us * 1e-3;
}

std::vector<row> linear_bench(std::mt19937_64& rng) {
  B::context ctx(0);
  double copy_us = 0;
  const double copy_gb_s = measure_copy_gb_s(ctx, &copy_us);
  std::printf("\ndevice-to-device copy: %.0f GB/s (read + write)\n", copy_gb_s);
  std::vector<row> rows{{"linear", "device-to-device copy", copy_us, 100.0, copy_gb_s}};

  const std::int64_t a = 4096, b = 14336;
  auto w = upload(ctx, tiled_random(std::size_t(a * b), rng, 1));
  auto x = upload(ctx, tiled_random(std::size_t(16 * b), rng, 3));
  auto y = B::alloc<bf16_t>(ctx, 16 * b);
  ::setenv("MII_CUDA_GEMV_MAX_ROWS", "0", 1);
  B::context lt_ctx(0);  // every shape through cuBLASLt
  ::unsetenv("MII_CUDA_GEMV_MAX_ROWS");

  std::printf("%-22s %5s %12s %12s %10s %12s\n", "weight [out, in]", "rows", "path", "us/call", "GB/s", "% of copy");
  for (const auto [out, in] : {std::pair{a, b}, std::pair{b, a}}) {
    for (const std::int64_t n : {1, 2, 4, 8, 16}) {
      const double bytes = double(out * in + n * in + n * out) * sizeof(bf16_t);
      for (int path = 0; path < 2; ++path) {
        if (path == 0 && n > 1) continue;  // linear() sends only single rows to the GEMV kernel
        B::context& c = path == 0 ? ctx : lt_ctx;
        const double us = us_per_call(c, 5, 50, [&] { B::linear(c, x.data(), n, in, w.data(), out, nullptr, y.data()); });
        const double gb_s = bytes / us * 1e-3;
        std::ostringstream name;
        name << "[" << out << ", " << in << "] x " << n << " rows, " << (path == 0 ? "gemv" : "cublasLt");
        rows.push_back({"linear", name.str(), us, 100.0 * gb_s / copy_gb_s, gb_s});
        std::printf("[%5lld, %5lld]         %5lld %12s %12.1f %10.0f %11.0f%%\n", (long long)out, (long long)in,
                    (long long)n, path == 0 ? "gemv" : "cublasLt", us, gb_s, rows.back().rate);
      }
    }
  }
  return rows;
}

// Random e4m3 bytes (NaN codes avoided) tiled from a pool.
std::vector<std::uint8_t> random_e4m3(std::size_t n, std::mt19937_64& rng) {
  std::vector<std::uint8_t> pool(65521);
  for (auto& b : pool) b = std::uint8_t(std::uniform_int_distribution<int>(0, 0x7e)(rng) | (rng() & 1 ? 0x80 : 0));
  std::vector<std::uint8_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = pool[i % pool.size()];
  return out;
}

std::vector<row> fp8_bench(std::mt19937_64& rng) {
  using mii::backend::fp8_blocks;
  B::context ctx(0);
  const double copy_gb_s = measure_copy_gb_s(ctx);
  std::vector<row> rows;
  const std::int64_t max_rows = 8192;
  std::printf("\n%-22s %5s %10s %10s %10s %10s\n", "weight [out, in]", "rows", "scheme", "us/call", "TFLOP/s", "% of copy");
  for (const auto [out, in] : {std::pair<std::int64_t, std::int64_t>{28672, 4096}, {4096, 14336}}) {
    auto w16 = upload(ctx, tiled_random(std::size_t(out * in), rng, 1));
    auto x = upload(ctx, tiled_random(std::size_t(max_rows * in), rng, 3));
    auto y = B::alloc<bf16_t>(ctx, max_rows * out);
    auto wq = upload(ctx, random_e4m3(std::size_t(out * in), rng));
    auto xq = B::alloc<std::uint8_t>(ctx, max_rows * in);
    auto xs = B::alloc<float>(ctx, max_rows * (in / 128));
    const std::int64_t groups = in / 128, ld = (groups + 3) / 4 * 4;
    std::vector<float> row_scales(std::size_t(out), 1.0f / 1024), block_scales(std::size_t((out / 128) * ld), 1.0f / 1024);
    auto ws_row = upload(ctx, row_scales), ws_block = upload(ctx, block_scales);
    const mii::backend::fp8_weight per_row{wq.data(), ws_row.data(), nullptr, fp8_blocks{1, 0}, 1};
    const mii::backend::fp8_weight block{wq.data(), ws_block.data(), nullptr, fp8_blocks{128, 128}, ld};
    for (const std::int64_t n : {1, 8, 64, 512, 2048, 8192}) {
      const double flops = 2.0 * double(n) * double(out) * double(in);
      for (int scheme = 0; scheme < 3; ++scheme) {
        const char* label = scheme == 0 ? "bf16" : scheme == 1 ? "fp8 row" : "fp8 block";
        const double weight_bytes = double(out * in) * (scheme == 0 ? 2.0 : 1.0);
        const double us = us_per_call(ctx, 3, n >= 2048 ? 10 : 50, [&] {
          if (scheme == 0) B::linear(ctx, x.data(), n, in, w16.data(), out, nullptr, y.data());
          else B::linear_fp8(ctx, x.data(), n, in, scheme == 1 ? per_row : block, out, nullptr, y.data(), false,
                             {xq.data(), xs.data()});
        });
        std::ostringstream name;
        name << "[" << out << ", " << in << "] x " << n << " rows, " << label;
        const double pct = 100.0 * (weight_bytes / us * 1e-3) / copy_gb_s;
        rows.push_back({"fp8", name.str(), us, flops / us * 1e-6, weight_bytes / us * 1e-3});
        std::printf("[%5lld, %5lld]         %5lld %10s %10.1f %10.1f %9.0f%%\n", (long long)out, (long long)in,
                    (long long)n, label, us, flops / us * 1e-6, pct);
      }
    }
  }
  return rows;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::string what = "attention,linear", out;
  bool kv_fp8 = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--what" && i + 1 < argc) what = argv[++i];
    else if (a == "--kv-fp8") kv_fp8 = true;
    else if (a == "--out" && i + 1 < argc) out = argv[++i];
    else if (a == "-h" || a == "--help") {
      std::printf("usage: gpu-kernels-bench [--what attention,linear,fp8] [--kv-fp8] [--out DIR]\n");
      return 0;
    } else {
      std::fprintf(stderr, "gpu-kernels-bench: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (const auto why = mii::cuda_unavailable_reason(); !why.empty()) {
    std::fprintf(stderr, "gpu-kernels-bench: no usable GPU: %s\n", why.c_str());
    return 1;
  }
  try {
    std::mt19937_64 rng(20261125);
    std::vector<row> rows;
    if (what.find("attention") != std::string::npos)
      for (auto& r : attention_bench(rng, kv_fp8)) rows.push_back(r);
    if (what.find("linear") != std::string::npos)
      for (auto& r : linear_bench(rng)) rows.push_back(r);
    if (what.find("fp8") != std::string::npos)
      for (auto& r : fp8_bench(rng)) rows.push_back(r);
    if (!out.empty()) {
      std::filesystem::create_directories(out);
      std::ofstream js(std::filesystem::path(out) / "gpu-kernels.json");
      js << "{\"runner\":\"gpu-kernels-bench\",\"gpu\":\"" << json_escape(mii::cuda_roofline::query().name)
         << "\",\"commit\":\"" << json_escape(MII_BENCH_COMMIT) << "\",\"rows\":[";
      for (std::size_t i = 0; i < rows.size(); ++i)
        js << (i ? "," : "") << "{\"bench\":\"" << rows[i].bench << "\",\"name\":\"" << json_escape(rows[i].name)
           << "\",\"us\":" << rows[i].us << ",\"" << (rows[i].bench == "linear" ? "percent_of_copy" : "tflops")
           << "\":" << rows[i].rate << ",\"gb_s\":" << rows[i].bandwidth_gb_s << "}";
      js << "]}\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu-kernels-bench: %s\n", e.what());
    return 1;
  }
}

#else  // a build without the CUDA backend

int main() {
  std::fprintf(stderr, "gpu-kernels-bench: this build has no CUDA backend (configure with -DMII_WITH_CUDA=ON)\n");
  return 2;
}

#endif
