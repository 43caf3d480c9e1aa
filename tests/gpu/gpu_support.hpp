// Helpers for the CUDA backend tests: a fresh random seed per run (printed, MII_TEST_SEED
// repeats it), values drawn already representable in the compute dtype (so the host reference
// sees exactly the GPU's inputs), uploads, downloads, NaN poisoning and error measures.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <mii/backend/cuda/cuda_backend.hpp>
#include <mii/backend/host/host_backend.hpp>
#include <mii/dtype.hpp>

namespace mii::test::gpu {

inline std::uint32_t session_seed() {
  static const std::uint32_t seed = [] {
    std::uint32_t s;
    if (const char* v = std::getenv("MII_TEST_SEED"); v && *v)
      s = std::uint32_t(std::strtoul(v, nullptr, 10));
    else
      s = std::random_device{}();
    std::printf("GPU tests: random seed %u (MII_TEST_SEED=%u repeats this run)\n", s, s);
    std::fflush(stdout);
    return s;
  }();
  return seed;
}

// A generator per test, derived from the session seed and the test's own name.
inline std::mt19937 rng_for(std::string_view name) {
  return std::mt19937(session_seed() ^ std::uint32_t(std::hash<std::string_view>{}(name)));
}

template <class D> D from_float(float v);
template <> inline bf16_t from_float<bf16_t>(float v) { return to_bf16(v); }
template <> inline fp16_t from_float<fp16_t>(float v) { return to_fp16(v); }
template <class D> float rounded(float v) { return to_float(from_float<D>(v)); }

// n values uniform in [lo, hi), each exactly representable in D.
template <class D>
std::vector<float> random_values(std::mt19937& rng, std::int64_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = rounded<D>(dist(rng));
  return v;
}

template <class D>
using backend_t = backend::cuda<D>;
template <class D, class T>
using device_buffer = typename backend_t<D>::template buffer<T>;

// Device copy of `v` in D.
template <class D>
device_buffer<D, D> upload(typename backend_t<D>::context& ctx, const std::vector<float>& v) {
  std::vector<D> s(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) s[i] = from_float<D>(v[i]);
  auto b = backend_t<D>::template alloc<D>(ctx, std::max<std::int64_t>(std::int64_t(v.size()), 1));
  backend_t<D>::copy_to_device(ctx, b.data(), s.data(), std::int64_t(s.size()));
  return b;
}
template <class D, class T>
device_buffer<D, T> upload_raw(typename backend_t<D>::context& ctx, const std::vector<T>& v) {
  auto b = backend_t<D>::template alloc<T>(ctx, std::max<std::int64_t>(std::int64_t(v.size()), 1));
  backend_t<D>::copy_to_device(ctx, b.data(), v.data(), std::int64_t(v.size()));
  return b;
}

template <class D>
std::vector<float> download(typename backend_t<D>::context& ctx, const D* p, std::int64_t n) {
  std::vector<D> s(static_cast<std::size_t>(n));
  backend_t<D>::copy_to_host(ctx, s.data(), p, n);
  ctx.synchronize();
  std::vector<float> v(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) v[i] = to_float(s[i]);
  return v;
}
template <class D, class T>
std::vector<T> download_raw(typename backend_t<D>::context& ctx, const T* p, std::int64_t n) {
  std::vector<T> v(static_cast<std::size_t>(n));
  backend_t<D>::copy_to_host(ctx, v.data(), p, n);
  ctx.synchronize();
  return v;
}

// Fills device memory with NaN, so that an element the op under test leaves unwritten shows.
template <class D>
void poison(typename backend_t<D>::context& ctx, D* p, std::int64_t n) {
  const std::vector<D> nan(static_cast<std::size_t>(n), from_float<D>(std::numeric_limits<float>::quiet_NaN()));
  backend_t<D>::copy_to_device(ctx, p, nan.data(), n);
}
template <class D>
void poison(typename backend_t<D>::context& ctx, float* p, std::int64_t n) {
  backend_t<D>::fill(ctx, p, n, std::numeric_limits<float>::quiet_NaN());
}

// Every value rounded to D: what an op with one rounding at its end should produce exactly,
// up to the last bit where the GPU's fp32 math differs from the host's.
template <class D>
std::vector<float> rounded_all(std::vector<float> v) {
  for (float& x : v) x = rounded<D>(x);
  return v;
}

inline std::int64_t count_nan(const std::vector<float>& v) {
  std::int64_t n = 0;
  for (float x : v) n += std::isnan(x) ? 1 : 0;
  return n;
}

// ||got - ref|| / ||ref|| (infinite when anything is NaN; plain norm of got when ref is zero).
inline double rel_l2(const std::vector<float>& got, const std::vector<float>& ref) {
  if (got.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) || std::isnan(ref[i])) return std::numeric_limits<double>::infinity();
    diff += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// One context per dtype for the whole run (creating a stream, a cuBLASLt handle and workspace per
// test case would only add time), and one host context for the references.
template <class D>
typename backend_t<D>::context& shared_context() {
  static typename backend_t<D>::context ctx(0);
  return ctx;
}
inline backend::host::context& host_context() {
  static backend::host::context ctx(8);
  return ctx;
}

template <class D> constexpr const char* dtype_label = "?";
template <> inline constexpr const char* dtype_label<bf16_t> = "bf16";
template <> inline constexpr const char* dtype_label<fp16_t> = "fp16";

}  // namespace mii::test::gpu
