// The host backend's worker pool: a fixed set of threads that run one parallel_for at a time.
// The caller's thread takes a share of the work too, so a 1-thread context runs inline.
#include <mii/backend/host/host_backend.hpp>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace mii::backend {

struct host::context::pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable wake, done;
  const std::function<void(std::int64_t, std::int64_t)>* job = nullptr;
  std::int64_t n = 0;
  int parts = 1;
  std::uint64_t generation = 0;
  int pending = 0;
  bool stop = false;

  void run_part(int part) {
    const std::int64_t begin = n * part / parts, end = n * (part + 1) / parts;
    if (begin < end) (*job)(begin, end);
  }
  void worker(int index) {
    std::uint64_t seen = 0;
    for (;;) {
      std::unique_lock lock(mu);
      wake.wait(lock, [&] { return stop || generation != seen; });
      if (stop) return;
      seen = generation;
      lock.unlock();
      run_part(index + 1);
      lock.lock();
      if (--pending == 0) done.notify_one();
    }
  }
};

host::context::context(int threads) : pool_(std::make_unique<pool>()) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  pool_->parts = threads;
  for (int i = 0; i + 1 < threads; ++i) pool_->workers.emplace_back([p = pool_.get(), i] { p->worker(i); });
}

host::context::~context() {
  {
    std::lock_guard lock(pool_->mu);
    pool_->stop = true;
  }
  pool_->wake.notify_all();
  for (auto& t : pool_->workers) t.join();
}

int host::context::threads() const { return pool_->parts; }

void host::context::parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn) {
  pool& p = *pool_;
  if (p.workers.empty() || n < 2) {
    if (n > 0) fn(0, n);
    return;
  }
  {
    std::lock_guard lock(p.mu);
    p.job = &fn;
    p.n = n;
    p.pending = int(p.workers.size());
    ++p.generation;
  }
  p.wake.notify_all();
  p.run_part(0);
  std::unique_lock lock(p.mu);
  p.done.wait(lock, [&] { return p.pending == 0; });
  p.job = nullptr;
}

void host::fill(context&, float* data, std::int64_t n, float value) { std::fill(data, data + n, value); }

}  // namespace mii::backend
