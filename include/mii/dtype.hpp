// Element types. Storage dtypes of checkpoint files (F32/F16/BF16) and the compute dtypes a
// backend can be instantiated with. bf16_t/fp16_t are plain 16-bit storage wrappers usable in
// host code (and layout-compatible with CUDA's __nv_bfloat16/__half).
#pragma once
#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace mii {

// f8_e4m3: FP8 weights of pre-quantized checkpoints (safetensors "F8_E4M3"), never a compute dtype.
enum class dtype : std::uint8_t { f32, f16, bf16, f8_e4m3 };

constexpr std::size_t dtype_size(dtype t) { return t == dtype::f32 ? 4 : t == dtype::f8_e4m3 ? 1 : 2; }
constexpr std::string_view dtype_name(dtype t) {
  switch (t) {
    case dtype::f32: return "F32";
    case dtype::f16: return "F16";
    case dtype::bf16: return "BF16";
    case dtype::f8_e4m3: return "F8_E4M3";
  }
  return "?";
}

struct bf16_t {
  std::uint16_t bits;
  static constexpr dtype tag = dtype::bf16;
};
struct fp16_t {
  std::uint16_t bits;
  static constexpr dtype tag = dtype::f16;
};

inline float to_float(bf16_t v) {
  std::uint32_t u = std::uint32_t(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even, NaN kept quiet: the same rounding as torch's .to(torch.bfloat16).
inline bf16_t to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t{std::uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16_t{std::uint16_t(u >> 16)};
}

float to_float(fp16_t v);
fp16_t to_fp16(float f);

// FP8 e4m3 ("e4m3fn": no infinities, 0x7f / 0xff are NaN, largest finite 448), the format of
// model_config.quantization = "fp8" (backend/fp8.hpp). Conversions as torch's
// .to(torch.float8_e4m3fn) does them: round to nearest even, subnormals kept, magnitudes that
// round past 448 (above 464) and NaN become NaN.
constexpr float e4m3_max = 448.0f;
std::uint8_t to_e4m3(float f);
float e4m3_to_float(std::uint8_t v);
// e4m3_to_float of every code, for loops that decode many bytes (NaN codes included).
const std::array<float, 256>& e4m3_values();
// The scale that maps a row whose largest magnitude is `amax` onto e4m3's range: amax / 448, or
// 1 for an all-zero row (whose values then stay 0).
inline float fp8_scale(float amax) { return amax > 0.0f ? amax / e4m3_max : 1.0f; }
struct e4m3_t {
  std::uint8_t bits;
  static constexpr dtype tag = dtype::f8_e4m3;
};
inline float to_float(e4m3_t v) { return e4m3_to_float(v.bits); }

}  // namespace mii
