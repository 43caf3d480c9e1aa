#include <mii/dtype.hpp>

#include <cmath>
#include <cstdint>

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
