// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"): one uniform float
// in [0, 1) per (seed, counter). One definition for the host sampler and the CUDA sampler, so a
// seeded request draws the same numbers on both.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define MII_HOST_DEVICE __host__ __device__
#else
#define MII_HOST_DEVICE
#endif

namespace mii::runtime {

MII_HOST_DEVICE inline float philox_uniform_at(std::uint64_t seed, std::uint64_t counter) {
  std::uint32_t c0 = std::uint32_t(counter), c1 = std::uint32_t(counter >> 32), c2 = 0, c3 = 0;
  std::uint32_t k0 = std::uint32_t(seed), k1 = std::uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(0xD2511F53u) * c0;
    const std::uint64_t p1 = std::uint64_t(0xCD9E8D57u) * c2;
    const std::uint32_t n0 = std::uint32_t(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n2 = std::uint32_t(p0 >> 32) ^ c3 ^ k1;
    c1 = std::uint32_t(p1);
    c3 = std::uint32_t(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return float(c0 >> 8) * (1.0f / 16777216.0f);  // 24 random bits -> [0, 1)
}

}  // namespace mii::runtime
