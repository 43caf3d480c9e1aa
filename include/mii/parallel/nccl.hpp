// The `nccl` communicator: one process per GPU, collectives through NCCL on the CUDA backend
// context's stream (so they order with the kernels around them, without host syncs).
//
//   auto comm = mii::parallel::nccl::from_environment();   // under mii-launch / torchrun / mpirun
//   mii::runtime::engine<Model, mii::backend::cuda<mii::bf16_t>, mii::parallel::nccl> e(dir, cfg, std::move(comm));
//
// mii::pipeline_tp (pipeline.hpp) does this for you. This header compiles without CUDA headers
// (user code built with g++ includes it); the implementation is src/cuda/nccl_comm.cpp, and a
// build without CUDA gets a stub whose from_environment() explains what is missing.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <type_traits>

#include <mii/backend/cuda/cuda_backend.hpp>
#include <mii/dtype.hpp>
#include <mii/error.hpp>
#include <mii/parallel/launch_env.hpp>

namespace mii::parallel {

// The CUDA stream (a cudaStream_t) of a cuda backend context, for code that cannot see CUDA headers.
void* cuda_stream(backend::cuda<bf16_t>::context& ctx);
void* cuda_stream(backend::cuda<fp16_t>::context& ctx);

class nccl {
 public:
  static constexpr const char* name = "nccl";

  // Joins the job this process was launched into (launch_env.hpp: RANK/WORLD_SIZE/LOCAL_RANK,
  // MASTER_ADDR/MASTER_PORT, or Open MPI's variables; none: a job of one). Selects the GPU
  // (`device`, default LOCAL_RANK; when the launcher left one visible GPU per process, that one),
  // gets the NCCL unique id from rank 0 over TCP and creates the communicator. Ranks that cannot
  // reach each other within `timeout` fail with a mii::error naming the address and elapsed time.
  static nccl from_environment(std::chrono::milliseconds timeout = connect_timeout(), int device = -1);
  // The same with an explicit place in the job (tests, programs with their own launcher).
  static nccl join(const launch_env& env, std::chrono::milliseconds timeout, int device = -1);

  nccl(nccl&&) noexcept;
  nccl& operator=(nccl&&) noexcept;
  ~nccl();

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int device() const { return device_; }  // the CUDA device the communicator (and the engine) uses

  enum class element { f32, f16, bf16, i32 };

  // data[i] = sum over ranks of data[i], in place, on the context's stream.
  template <class Context, class T>
  void all_reduce_sum(Context& ctx, T* data, std::int64_t n) {
    all_reduce_sum_on(stream_of(ctx), data, element_of<T>(), n);
  }
  // recv[r * n + i] = rank r's send[i], on the context's stream.
  template <class Context, class T>
  void all_gather(Context& ctx, const T* send, std::int64_t n, T* recv) {
    all_gather_on(stream_of(ctx), send, recv, element_of<T>(), n);
  }

  // The same on any CUDA stream (a cudaStream_t); device pointers.
  void all_reduce_sum_on(void* stream, void* data, element type, std::int64_t n);
  void all_gather_on(void* stream, const void* send, void* recv, element type, std::int64_t n);

 private:
  struct state;
  nccl(std::unique_ptr<state> s, int rank, int size, int local_rank, int device);

  template <class T>
  static constexpr element element_of() {
    if constexpr (std::is_same_v<T, float>) return element::f32;
    else if constexpr (std::is_same_v<T, fp16_t>) return element::f16;
    else if constexpr (std::is_same_v<T, bf16_t>) return element::bf16;
    else if constexpr (std::is_same_v<T, std::int32_t>) return element::i32;
    else static_assert(sizeof(T) == 0, "nccl communicator: element type must be float, bf16_t, fp16_t or int32_t");
  }
  template <class Context>
  static void* stream_of(Context& ctx) {
    if constexpr (requires { parallel::cuda_stream(ctx); }) {
      return parallel::cuda_stream(ctx);
    } else {
      fail("the nccl communicator works on the cuda backend; this backend's context has no CUDA stream "
           "(for tensor parallelism on the host backend use parallel::threads)");
    }
  }

  std::unique_ptr<state> state_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, device_ = 0;
};

}  // namespace mii::parallel
