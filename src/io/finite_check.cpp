#include <mii/io/finite_check.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <mii/error.hpp>

namespace mii::io {
namespace {

// An element is non-finite when its exponent bits are all ones, in every IEEE format: test the
// bits, no conversion. Tensor data need not be aligned, hence memcpy.
template <class Bits, Bits exponent>
std::optional<std::int64_t> first_all_ones_exponent(const std::byte* p, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, p + i * std::int64_t(sizeof(Bits)), sizeof(Bits));
    if ((b & exponent) == exponent) return i;
  }
  return std::nullopt;
}

std::string position(const tensor_view& t, std::int64_t flat) {
  std::vector<std::int64_t> idx(t.shape.size());
  for (std::size_t d = t.shape.size(); d-- > 0;) {
    const std::int64_t extent = std::max<std::int64_t>(t.shape[d], 1);
    idx[d] = flat % extent;
    flat /= extent;
  }
  std::string s = "[";
  for (std::size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
  return s + "]";
}

}  // namespace

std::optional<non_finite_element> first_non_finite(const tensor_view& t) {
  const std::int64_t n = std::int64_t(t.bytes.size() / dtype_size(t.type));
  std::optional<std::int64_t> at;
  switch (t.type) {
    case dtype::f32: at = first_all_ones_exponent<std::uint32_t, 0x7f800000u>(t.bytes.data(), n); break;
    case dtype::f16: at = first_all_ones_exponent<std::uint16_t, 0x7c00u>(t.bytes.data(), n); break;
    case dtype::bf16: at = first_all_ones_exponent<std::uint16_t, 0x7f80u>(t.bytes.data(), n); break;
    case dtype::f8_e4m3: at = first_all_ones_exponent<std::uint8_t, 0x7fu>(t.bytes.data(), n); break;  // NaN: s1111111
  }
  if (!at) return std::nullopt;
  non_finite_element e{*at, 0.0f};
  convert(t, dtype::f32, &e.value, *at, 1);
  return e;
}

void require_finite(const checkpoint& ckpt, unsigned threads) {
  const auto names = ckpt.names();  // sorted: the reported tensor does not depend on timing
  if (names.empty()) return;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = unsigned(std::min<std::size_t>(threads, names.size()));
  std::vector<std::optional<non_finite_element>> found(names.size());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < names.size();) found[i] = first_non_finite(*ckpt.find(names[i]));
  };
  std::vector<std::jthread> pool;
  for (unsigned k = 1; k < threads; ++k) pool.emplace_back(work);
  work();
  pool.clear();  // joins
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!found[i]) continue;
    const tensor_view& t = *ckpt.find(names[i]);
    fail(t.file ? t.file->string() : ckpt.root().string(), ": tensor '", t.name, "' (", dtype_name(t.type), " ",
         t.shape_string(), ") holds a non-finite value: element ", position(t, found[i]->index), " is ",
         std::isnan(found[i]->value) ? std::string("nan") : std::string(found[i]->value > 0 ? "inf" : "-inf"),
         " (found by model_config.check_weights)");
  }
}

}  // namespace mii::io
