// SHA-256 (FIPS 180-4), streamed: the Hub's ETag of an LFS file is the sha256 of its bytes, and a
// download is checked against it. Our own few lines instead of OpenSSL, which mii does not
// otherwise need. Not thread-safe per object (each download owns one).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mii::io::detail {

class sha256 {
 public:
  sha256() { reset(); }
  void reset();
  void update(const void* data, std::size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // Lowercase hex of the digest of everything given since reset(); the state is left finished
  // (call reset() before reuse).
  std::string hex_digest();

 private:
  void compress(const std::uint8_t* block);
  std::array<std::uint32_t, 8> h_{};
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t total_bytes_ = 0;
};

// The hex sha256 of a whole string (tests, small files).
std::string sha256_hex(std::string_view bytes);

}  // namespace mii::io::detail
