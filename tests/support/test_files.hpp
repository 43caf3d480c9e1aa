// Scratch directories, small file helpers and the seed of randomized tests, shared by the suites.
#pragma once
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mii::test {

// A fresh directory under the system temp directory, removed with everything in it on scope exit.
// The name carries the pid, a per-process counter and random bits, so parallel test processes
// (other engineers' builds, ctest -j) never share one.
class temp_dir {
 public:
  explicit temp_dir(std::string_view label = "test") {
    static std::atomic<unsigned> counter{0};
    std::random_device rd;
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::ostringstream name;
      name << "mii-" << label << '-' << ::getpid() << '-' << counter++ << '-' << std::hex << rd();
      path_ = std::filesystem::temp_directory_path() / name.str();
      if (std::filesystem::create_directory(path_)) return;
    }
    throw std::runtime_error("cannot create a unique temp directory");
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::filesystem::path& p) const { return path_ / p; }

 private:
  std::filesystem::path path_;
};

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_text(const std::filesystem::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(text.data(), std::streamsize(text.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

// `text` with the one occurrence of `from` replaced; throws when `from` is absent or repeated, so
// a test that edits a fixture cannot silently edit nothing.
inline std::string replace_once(std::string text, std::string_view from, std::string_view to) {
  const auto at = text.find(from);
  if (at == std::string::npos || text.find(from, at + 1) != std::string::npos)
    throw std::runtime_error("replace_once: '" + std::string(from) + "' does not occur exactly once");
  return text.replace(at, from.size(), to);
}

// Copies a fixture directory (flat: config, weights, tokenizer) into `to`.
inline void copy_dir(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
}

// The seed of a randomized test: MII_TEST_SEED when set (to replay a failure), else fresh.
// Printed, so a failing run can be replayed.
inline std::uint64_t test_seed(std::string_view what) {
  std::uint64_t seed;
  if (const char* env = std::getenv("MII_TEST_SEED")) {
    seed = std::strtoull(env, nullptr, 10);
  } else {
    std::random_device rd;
    seed = (std::uint64_t(rd()) << 32) ^ rd();
  }
  std::printf("[seed] %.*s: %llu (replay with MII_TEST_SEED=%llu)\n", int(what.size()), what.data(),
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  return seed;
}

}  // namespace mii::test
