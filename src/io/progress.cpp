#include <mii/io/progress.hpp>

#include <unistd.h>

#include <cstdio>

namespace mii::io {

progress_bar::progress_bar(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled && isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

void progress_bar::update(std::size_t done, std::size_t total) {
  if (!enabled_ || total == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total && drawn_ && now - last_ < std::chrono::milliseconds(100)) return;  // ~10 redraws a second
  last_ = now;
  drawn_ = true;
  const int width = 30, filled = int(double(width) * double(done) / double(total));
  const double secs = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "\r%s [%.*s%*s] %zu/%zu %.1fs", label_.c_str(), filled, "##############################",
               width - filled, "", done, total, secs);
  std::fflush(stderr);
}

void progress_bar::finish() {
  if (drawn_) std::fputc('\n', stderr);
  drawn_ = false;
}

}  // namespace mii::io
