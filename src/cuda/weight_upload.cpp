#include "cuda/weight_upload.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <mii/error.hpp>

#include "convert.cuh"
#include "cuda/check.hpp"

namespace mii::backend {

int load_threads_from_environment() {
  if (const char* v = std::getenv("MII_LOAD_THREADS"); v && *v) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > 64) fail("MII_LOAD_THREADS must be a thread count in 1..64, got \"", v, "\"");
    return int(n);
  }
  return int(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
}

weight_uploader::weight_uploader(int device, int threads, std::size_t slot_bytes)
    : device_(device), threads_(std::max(threads, 1)), slot_bytes_(slot_bytes) {
  const std::size_t n = std::size_t(threads_) + 2;  // every thread holds one; two wait on their copies
  slots_.resize(n);
  try {
    if (const cudaError_t err = cudaMallocHost(reinterpret_cast<void**>(&pinned_), n * slot_bytes_); err != cudaSuccess) {
      (void)cudaGetLastError();
      pinned_ = nullptr;
      fail("cudaMallocHost of ", n * slot_bytes_, " bytes of pinned staging for weight uploads failed: ",
           cudaGetErrorString(err));
    }
    for (cudaStream_t& s : streams_) MII_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    for (cudaEvent_t& e : queued_) MII_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    MII_CUDA_CHECK(cudaEventCreateWithFlags(&before_, cudaEventDisableTiming));
    for (std::size_t i = 0; i < n; ++i) {
      slots_[i].host = pinned_ + i * slot_bytes_;
      slots_[i].stream = int(i % streams_.size());
      MII_CUDA_CHECK(cudaEventCreateWithFlags(&slots_[i].done, cudaEventDisableTiming));
      free_.push_back(int(i));
    }
    for (int t = 1; t < threads_; ++t) helpers_.emplace_back([this] { helper(); });
  } catch (...) {
    release_all();
    throw;
  }
}

weight_uploader::~weight_uploader() { release_all(); }

void weight_uploader::release_all() noexcept {
  {
    const std::lock_guard lock(job_m_);
    stop_ = true;
  }
  job_posted_.notify_all();
  for (auto& t : helpers_) t.join();
  helpers_.clear();
  // Nothing here may throw: copies still reading the staging finish first.
  for (cudaStream_t s : streams_)
    if (s) (void)cudaStreamSynchronize(s);
  for (auto& s : slots_)
    if (s.done) (void)cudaEventDestroy(s.done);
  slots_.clear();
  for (cudaEvent_t& e : queued_)
    if (e) (void)cudaEventDestroy(std::exchange(e, nullptr));
  if (before_) (void)cudaEventDestroy(std::exchange(before_, nullptr));
  for (cudaStream_t& s : streams_)
    if (s) (void)cudaStreamDestroy(std::exchange(s, nullptr));
  if (pinned_) (void)cudaFreeHost(std::exchange(pinned_, nullptr));
  if (device_staging_) (void)cudaFree(std::exchange(device_staging_, nullptr));
  (void)cudaGetLastError();
}

void weight_uploader::prepare_conversion() {
  const std::lock_guard lock(conversion_m_);
  if (device_staging_) return;
  if (const cudaError_t err = cudaMalloc(&device_staging_, slots_.size() * slot_bytes_); err != cudaSuccess) {
    (void)cudaGetLastError();
    device_staging_ = nullptr;
    fail("cudaMalloc of ", slots_.size() * slot_bytes_, " bytes of device staging for weight dtype conversion failed: ",
         cudaGetErrorString(err));
  }
  for (std::size_t i = 0; i < slots_.size(); ++i) slots_[i].device = static_cast<std::byte*>(device_staging_) + i * slot_bytes_;
}

void weight_uploader::upload(const model::plan_entry& e, dtype to, void* dst, cudaStream_t after, cudaStream_t before) {
  auto j = std::make_shared<job>();
  j->to = to;
  j->dst = static_cast<std::byte*>(dst);
  j->cols = e.cols;
  j->col_begin = e.col_begin;
  std::int64_t written = 0;  // destination rows so far
  bool convert = false;
  for (const model::row_run& r : e.runs) {
    const io::tensor_view& t = *r.tensor;
    const std::int64_t esize = std::int64_t(dtype_size(t.type));
    convert |= t.type != to;
    const std::int64_t src_cols = e.vector ? 1 : t.shape.back();
    if (e.vector || (e.col_begin == 0 && e.cols == src_cols)) {  // whole rows: one flat element range
      const std::int64_t first = r.row * src_cols, n = r.count * src_cols, per = std::int64_t(slot_bytes_) / esize;
      for (std::int64_t i = 0; i < n; i += per)
        j->pieces.push_back({&t, first + i, std::min(per, n - i), written * e.cols + i, false});
    } else {
      const std::int64_t row_bytes = e.cols * esize;
      if (row_bytes > std::int64_t(slot_bytes_))
        fail("internal: ", e.what, ": a row of ", row_bytes, " bytes is larger than the ", slot_bytes_, "-byte upload staging");
      const std::int64_t per = std::int64_t(slot_bytes_) / row_bytes;
      for (std::int64_t i = 0; i < r.count; i += per)
        j->pieces.push_back({&t, r.row + i, std::min(per, r.count - i), (written + i) * e.cols, true});
    }
    written += r.count;
  }
  if (written != e.rows) fail("internal: plan for ", e.what, " has ", written, " rows, expected ", e.rows);
  if (j->pieces.empty()) return;
  if (convert) prepare_conversion();
  if (before) {  // every piece below is queued on a copy stream after this wait
    MII_CUDA_CHECK(cudaEventRecord(before_, before));
    for (cudaStream_t s : streams_) MII_CUDA_CHECK(cudaStreamWaitEvent(s, before_, 0));
  }
  if (j->pieces.size() > 1 && !helpers_.empty()) {
    {
      const std::lock_guard lock(job_m_);
      current_ = j;
      ++generation_;
    }
    job_posted_.notify_all();
  }
  drain(*j);
  {
    std::unique_lock lock(j->m);
    j->finished.wait(lock, [&] { return j->done.load() == j->pieces.size(); });
  }
  {
    const std::lock_guard lock(job_m_);
    if (current_ == j) current_.reset();
  }
  if (j->error) std::rethrow_exception(j->error);
  for (std::size_t s = 0; s < streams_.size(); ++s) {
    MII_CUDA_CHECK(cudaEventRecord(queued_[s], streams_[s]));
    MII_CUDA_CHECK(cudaStreamWaitEvent(after, queued_[s], 0));
  }
}

void weight_uploader::helper() {
  if (cudaSetDevice(device_) != cudaSuccess) (void)cudaGetLastError();  // run() reports the failing call
  std::uint64_t seen = 0;
  for (;;) {
    std::shared_ptr<job> j;
    {
      std::unique_lock lock(job_m_);
      job_posted_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      j = current_;
    }
    if (j) drain(*j);
  }
}

void weight_uploader::drain(job& j) {
  for (std::size_t i; (i = j.next.fetch_add(1)) < j.pieces.size();) {
    if (!j.failed.load()) {
      try {
        run(j, j.pieces[i]);
      } catch (...) {
        const std::lock_guard lock(j.m);
        if (!j.error) j.error = std::current_exception();
        j.failed = true;
      }
    }
    if (j.done.fetch_add(1) + 1 == j.pieces.size()) {
      const std::lock_guard lock(j.m);  // the caller checks `done` under this lock
      j.finished.notify_all();
    }
  }
}

int weight_uploader::acquire() {
  std::unique_lock lock(slot_m_);
  slot_free_.wait(lock, [&] { return !free_.empty(); });
  const int s = free_.back();
  free_.pop_back();
  return s;
}

void weight_uploader::release(int s) {
  {
    const std::lock_guard lock(slot_m_);
    free_.push_back(s);
  }
  slot_free_.notify_one();
}

void weight_uploader::read(const job& j, const piece& p, std::byte* out) const {
  const io::tensor_view& t = *p.tensor;
  const std::size_t esize = dtype_size(t.type);
  const std::string where = t.file ? t.file->string() : std::string("<tensor>");
  if (!p.strided) {
    const std::size_t off = std::size_t(p.src) * esize, bytes = std::size_t(p.count) * esize;
    if (off + bytes > t.bytes.size())
      fail("internal: ", where, ": tensor '", t.name, "': bytes [", off, ", ", off + bytes, ") past its ", t.bytes.size());
    if (t.fd < 0) {
      std::memcpy(out, t.bytes.data() + off, bytes);
      return;
    }
    for (std::size_t got = 0; got < bytes;) {  // the same inode as the map, without its page faults
      const ssize_t n = ::pread(t.fd, out + got, bytes - got, off_t(t.file_offset + off + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        fail(where, ": reading tensor '", t.name, "' (", bytes - got, " bytes at offset ", t.file_offset + off + got,
             ") failed: ", n == 0 ? std::string("the file ends early (truncated while loading?)") : std::strerror(errno));
      got += std::size_t(n);
    }
    return;
  }
  const std::int64_t src_cols = t.shape.back();
  const std::size_t row_bytes = std::size_t(j.cols) * esize;
  for (std::int64_t i = 0; i < p.count; ++i)
    std::memcpy(out + std::size_t(i) * row_bytes, t.bytes.data() + std::size_t((p.src + i) * src_cols + j.col_begin) * esize,
                row_bytes);
}

void weight_uploader::run(job& j, const piece& p) {
  const dtype from = p.tensor->type;
  const std::int64_t elements = p.strided ? p.count * j.cols : p.count;
  const std::size_t bytes = std::size_t(elements) * dtype_size(from);
  const int s = acquire();
  slot& sl = slots_[std::size_t(s)];
  try {
    MII_CUDA_CHECK(cudaEventSynchronize(sl.done));  // its last copy has left the staging
    read(j, p, sl.host);
    const cudaStream_t stream = streams_[std::size_t(sl.stream)];
    std::byte* out = j.dst + std::size_t(p.dst) * dtype_size(j.to);
    if (from == j.to) {
      MII_CUDA_CHECK(cudaMemcpyAsync(out, sl.host, bytes, cudaMemcpyHostToDevice, stream));
    } else {
      MII_CUDA_CHECK(cudaMemcpyAsync(sl.device, sl.host, bytes, cudaMemcpyHostToDevice, stream));
      kernels::convert_dtype(sl.device, from, out, j.to, elements, stream);
    }
    MII_CUDA_CHECK(cudaEventRecord(sl.done, stream));
  } catch (...) {
    release(s);
    throw;
  }
  release(s);
}

}  // namespace mii::backend
