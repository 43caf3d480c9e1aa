// Shared by the libFuzzer targets. A mii::error is the library's answer to bad input and ends an
// input quietly; a broken invariant is reported through finding(), which aborts so that libFuzzer
// saves the input as a crash. Any other exception escapes LLVMFuzzerTestOneInput and aborts too.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <mii/error.hpp>

namespace mii::fuzz {

[[noreturn]] inline void finding(std::string_view what) {
  std::fprintf(stderr, "FUZZ FINDING: %.*s\n", int(what.size()), what.data());
  std::abort();
}

// Runs f; a mii::error is the expected outcome for bad input and returns false.
template <class F>
bool accepts(F&& f) {
  try {
    f();
    return true;
  } catch (const mii::error&) {
    return false;
  }
}

// Reads the input's bytes as little fields, without reading past the end (zeros after it).
class byte_reader {
 public:
  byte_reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  std::size_t left() const { return pos_ < size_ ? size_ - pos_ : 0; }
  std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  template <class T>
  T value() {
    T v{};
    unsigned char bytes[sizeof(T)] = {};
    for (auto& b : bytes) b = u8();
    std::memcpy(&v, bytes, sizeof(T));
    return v;
  }
  // Up to n bytes as a string.
  std::string bytes(std::size_t n) {
    n = std::min(n, left());
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  std::string rest() { return bytes(left()); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// A scratch file per process (libFuzzer's -fork/-jobs workers are separate processes), for the
// APIs that take a path. Removed at exit.
class scratch_file {
 public:
  explicit scratch_file(std::string_view name) {
    dir_ = std::filesystem::temp_directory_path() / ("mii-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = dir_ / std::string(name);
  }
  ~scratch_file() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::filesystem::path& write(const std::uint8_t* data, std::size_t size) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    out.close();
    if (!out) finding("cannot write the scratch file " + path_.string());
    return path_;
  }
  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_, path_;
};

inline std::filesystem::path source_dir() { return MII_SOURCE_DIR; }

}  // namespace mii::fuzz
