// A progress bar on stderr for long loads, drawn only when stderr is a terminal.
#pragma once
#include <chrono>
#include <cstddef>
#include <string>

namespace mii::io {

class progress_bar {
 public:
  progress_bar(std::string label, bool enabled = true);
  void update(std::size_t done, std::size_t total);
  void finish();
  ~progress_bar() { finish(); }
  // Adapter for model::load_progress.
  static void callback(std::size_t done, std::size_t total, void* self) { static_cast<progress_bar*>(self)->update(done, total); }

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace mii::io
