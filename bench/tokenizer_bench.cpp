// tokenizer-bench: load time and single-thread encode throughput of mii's tokenizer.
//
//   tokenizer-bench [--text FILE] [--runs N] [--load-runs N] [NAME=PATH ...]
//
// Defaults: the text written by bench/make_tokenizer_text.py to .cache/bench/tokenizer_text.txt
// and the three tokenizers tools/fetch-tokenizers.sh puts in .cache/tokenizers/. The text is
// encoded paragraph by paragraph (split after each "\n\n", the same split bench/tokenizer_peer.py
// uses for the Hugging Face library), without special tokens, on one thread. Prints one JSON line
// per tokenizer: load time (median of --load-runs) and MB/s (median of --runs, MB = 10^6 bytes),
// plus the token count so the two implementations can be seen to agree. encode_cpu_mb_s uses the
// thread's CPU time instead of wall time (steadier on a busy machine).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "mii/tokenizer/tokenizer.hpp"
#include "mii_commit.hpp"  // generated at build time: MII_BENCH_COMMIT (bench/CMakeLists.txt)

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string json_list(const std::vector<double>& v) {
  std::string s = "[";
  char buf[32];
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.3f", i ? ", " : "", v[i]);
    s += buf;
  }
  return s + "]";
}

// CPU time of this thread: on a shared machine wall time also counts other processes' turns.
double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  // The source tree (this file is bench/tokenizer_bench.cpp in it): defaults live in its .cache/.
  const std::filesystem::path source(__FILE__);
  std::string root = source.is_absolute() ? source.parent_path().parent_path().string() : std::string(".");
  std::string text_path = root + "/.cache/bench/tokenizer_text.txt";
  int runs = 5, load_runs = 5;
  std::vector<std::pair<std::string, std::string>> tokenizers;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--text" && i + 1 < argc) text_path = argv[++i];
    else if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--load-runs" && i + 1 < argc) load_runs = std::max(1, std::atoi(argv[++i]));
    else if (auto eq = a.find('='); eq != std::string::npos) tokenizers.emplace_back(a.substr(0, eq), a.substr(eq + 1));
    else {
      std::fprintf(stderr, "usage: tokenizer-bench [--text FILE] [--runs N] [--load-runs N] [NAME=PATH ...]\n");
      return 1;
    }
  }
  if (tokenizers.empty())
    for (const char* name : {"llama2", "llama3", "qwen3"})
      tokenizers.emplace_back(name, root + "/.cache/tokenizers/" + name + "/tokenizer.json");

  std::ifstream in(text_path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "tokenizer-bench: cannot read %s (make it with bench/make_tokenizer_text.py)\n", text_path.c_str());
    return 1;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::string> chunks;  // paragraphs, each with its trailing "\n\n"
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find("\n\n", pos);
    end = end == std::string::npos ? text.size() : end + 2;
    chunks.push_back(text.substr(pos, end - pos));
    pos = end;
  }

  try {
    for (const auto& [name, path] : tokenizers) {
      std::vector<double> load_ms;
      for (int r = 0; r < load_runs; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto tok = mii::tokenizer::from_file(path);
        load_ms.push_back(ms_since(t0));
      }
      const auto tok = mii::tokenizer::from_file(path);
      std::size_t tokens = 0;
      for (const auto& c : chunks) tokens += tok.encode(c, false).size();  // warm-up (and caches)
      std::vector<double> mb_s, cpu_mb_s;
      for (int r = 0; r < runs; ++r) {
        std::size_t count = 0;
        const auto t0 = std::chrono::steady_clock::now();
        const double cpu0 = thread_cpu_ms();
        for (const auto& c : chunks) count += tok.encode(c, false).size();
        const double ms = ms_since(t0);
        cpu_mb_s.push_back(static_cast<double>(text.size()) / 1e6 / ((thread_cpu_ms() - cpu0) / 1e3));
        if (count != tokens) std::fprintf(stderr, "tokenizer-bench: %s: token count changed between runs\n", name.c_str());
        mb_s.push_back(static_cast<double>(text.size()) / 1e6 / (ms / 1e3));
      }
      std::printf(
          "{\"bench\": \"tokenizer\", \"impl\": \"mii\", \"tokenizer\": \"%s\", \"text_bytes\": %zu, \"chunks\": %zu, "
          "\"split\": \"paragraph\", \"threads\": 1, \"tokens\": %zu, \"load_ms\": %.2f, \"encode_mb_s\": %.3f, "
          "\"encode_cpu_mb_s\": %.3f, \"load_ms_runs\": %s, \"encode_mb_s_runs\": %s, \"commit\": \"%s\"}\n",
          name.c_str(), text.size(), chunks.size(), tokens, median(load_ms), median(mb_s), median(cpu_mb_s),
          json_list(load_ms).c_str(), json_list(mb_s).c_str(), MII_BENCH_COMMIT);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
