#include <mii/dtype.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace mii {

// IEEE half <-> float without relying on compiler support for _Float16 in host code.
float to_float(fp16_t v) {
  const std::uint32_t sign = std::uint32_t(v.bits & 0x8000u) << 16;
  std::uint32_t exp = (v.bits >> 10) & 0x1fu;
  std::uint32_t mant = v.bits & 0x3ffu;
  std::uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal half -> normal float
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      u = sign | (std::uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

fp16_t to_fp16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return fp16_t{std::uint16_t(sign | 0x7e00u)};  // NaN
  if (abs >= 0x477ff000u) return fp16_t{std::uint16_t(sign | 0x7c00u)};  // overflow -> inf
  if (abs < 0x38800000u) {  // subnormal or zero in half: round to nearest even in units of 2^-24
    const float a = std::fabs(f) * 16777216.0f;  // exact scaling
    return fp16_t{std::uint16_t(sign | std::uint16_t(std::nearbyint(a)))};
  }
  std::uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return fp16_t{std::uint16_t(sign | ((rounded - (112u << 23)) >> 13))};
}

}  // namespace mii

namespace mii {

std::uint8_t to_e4m3(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint8_t sign = std::uint8_t((u >> 24) & 0x80u);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return std::uint8_t(sign | 0x7f);  // NaN
  float a;
  std::memcpy(&a, &u, 4);
  if (a >= 480.0f) return std::uint8_t(sign | 0x7f);  // NaN, as torch (c10's fp8e4m3fn)
  if (a < 0.015625f) {
    // Subnormal range (below 2^-6): multiples of 2^-9. The product is exact and nearbyint rounds
    // half to even in the default rounding mode.
    const float steps = std::nearbyint(a * 512.0f);  // 0..8; 8 is the smallest normal, code 0x08
    return std::uint8_t(sign | std::uint8_t(steps));
  }
  // Normal: keep 3 mantissa bits, round to nearest even on the 20 dropped bits.
  const std::uint32_t exponent = (u >> 23) - 127 + 7;  // e4m3 bias 7
  std::uint32_t mant = u & 0x7fffffu;
  std::uint32_t code = (exponent << 3) | (mant >> 20);
  const std::uint32_t rest = mant & 0xfffffu;
  // May carry into the exponent; (464, 480) rounds to 0x7f, NaN, as in torch.
  if (rest > 0x80000u || (rest == 0x80000u && (code & 1u))) ++code;
  return std::uint8_t(sign | std::uint8_t(code));
}

float e4m3_to_float(std::uint8_t v) {
  const float sign = (v & 0x80) ? -1.0f : 1.0f;
  const int exponent = (v >> 3) & 0xf, mant = v & 7;
  if (exponent == 0xf && mant == 7) return std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0) return sign * std::ldexp(float(mant), -9);
  return sign * std::ldexp(float(8 + mant), exponent - 7 - 3);
}

const std::array<float, 256>& e4m3_values() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[std::size_t(i)] = e4m3_to_float(std::uint8_t(i));
    return t;
  }();
  return table;
}

}  // namespace mii
