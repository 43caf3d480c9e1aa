// Weight uploads for the cuda backend's load(): checkpoint bytes to device memory at the speed of
// the host's memory and PCIe, not of one thread's page faults.
//
// An entry is cut into pieces of up to one staging slot of source bytes. The calling thread and
// `threads - 1` helper threads take pieces from a shared counter; each piece is read into a pinned
// staging slot in the checkpoint's own dtype (pread from the file where the bytes are contiguous,
// row by row from the map where a column range is taken), copied to the device on one of two copy
// streams and, where the checkpoint's dtype is not the compute dtype, converted on the device by
// a kernel (through a device staging slot). A slot is reused once the event recorded after its
// copy (and conversion) has completed, so reading, copying and converting overlap across pieces
// and entries. upload() returns when every piece of the entry is queued; the stream it is given
// then waits for the copy streams (events), so later work on that stream sees the weights while
// the host goes on to the next entry.
//
// Not thread-safe: one upload() at a time (the context's owner thread); the helpers are internal.
#pragma once
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <mii/dtype.hpp>
#include <mii/model/weight_plan.hpp>

namespace mii::backend {

// MII_LOAD_THREADS (1..64), else min(8, hardware threads): threads reading weights, the caller's included.
int load_threads_from_environment();

class weight_uploader {
 public:
  // Pinned staging is allocated here (threads + 2 slots of `slot_bytes`), before any upload.
  weight_uploader(int device, int threads, std::size_t slot_bytes);
  ~weight_uploader();
  weight_uploader(const weight_uploader&) = delete;
  weight_uploader& operator=(const weight_uploader&) = delete;

  // Fills `dst` (e.numel() elements of `to`) with the entry's rows and columns, as
  // model::materialize would; `after` waits for the copies. With `before`, the copies also wait
  // for the work queued on it so far: a `dst` reused while kernels may still read it (load_fp8's
  // fp32 staging) is not overwritten early, and the host does not wait for them.
  void upload(const model::plan_entry& e, dtype to, void* dst, cudaStream_t after, cudaStream_t before = nullptr);
  // Allocates the device staging that dtype conversions go through now, rather than at the first
  // conversion (a device allocation may wait for the copies in flight).
  void prepare_conversion();
  int threads() const { return threads_; }

 private:
  struct piece {
    const io::tensor_view* tensor = nullptr;
    std::int64_t src = 0;       // contiguous: first source element; strided: first source row
    std::int64_t count = 0;     // contiguous: elements; strided: rows
    std::int64_t dst = 0;       // first destination element
    bool strided = false;       // a column range [col_begin, +cols) of each row
  };
  struct job {
    std::vector<piece> pieces;
    dtype to = dtype::bf16;
    std::byte* dst = nullptr;
    std::int64_t cols = 0, col_begin = 0;  // strided pieces
    std::atomic<std::size_t> next{0}, done{0};
    std::atomic<bool> failed{false};
    std::mutex m;
    std::condition_variable finished;
    std::exception_ptr error;
  };
  struct slot {
    std::byte* host = nullptr;   // pinned
    void* device = nullptr;      // conversion staging (prepare_conversion)
    cudaEvent_t done = nullptr;  // recorded after the slot's last copy / conversion
    int stream = 0;
  };

  void release_all() noexcept;  // joins the helpers, frees streams, events and staging
  void helper();
  void drain(job& j);
  void run(job& j, const piece& p);
  void read(const job& j, const piece& p, std::byte* out) const;
  int acquire();
  void release(int s);

  int device_, threads_;
  std::size_t slot_bytes_;
  std::byte* pinned_ = nullptr;       // all slots' host memory, one allocation
  void* device_staging_ = nullptr;    // all slots' device staging, one allocation (lazy)
  std::vector<slot> slots_;
  std::array<cudaStream_t, 2> streams_{};
  std::array<cudaEvent_t, 2> queued_{};  // the compute stream waits on these after an upload
  cudaEvent_t before_ = nullptr;         // upload's `before`: the copy streams wait on it

  std::mutex slot_m_;
  std::condition_variable slot_free_;
  std::vector<int> free_;

  std::mutex conversion_m_;

  std::mutex job_m_;
  std::condition_variable job_posted_;
  std::shared_ptr<job> current_;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
  std::vector<std::thread> helpers_;
};

}  // namespace mii::backend
