// The nccl communicator (include/mii/parallel/nccl.hpp): bootstrap through the TCP rendezvous,
// then NCCL collectives on the caller's CUDA stream. Every CUDA and NCCL call is checked.
#include <mii/parallel/nccl.hpp>

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <span>
#include <string>

#include <mii/parallel/rendezvous.hpp>

#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::parallel {
namespace {

[[noreturn]] void throw_nccl(ncclResult_t rc, ncclComm_t comm, const char* what, int rank) {
  const char* detail = ncclGetLastError(comm);
  fail("NCCL: ", what, " failed on rank ", rank, ": ", ncclGetErrorString(rc),
       detail && *detail ? std::string(" (") + detail + ")" : std::string(),
       rc == ncclSystemError || rc == ncclRemoteError ? "; a peer rank may have died (see its output)" : "");
}

#define MII_NCCL_CHECK(expr, comm, rank)                               \
  do {                                                                 \
    const ncclResult_t mii_rc_ = (expr);                               \
    if (mii_rc_ != ncclSuccess) throw_nccl(mii_rc_, (comm), #expr, (rank)); \
  } while (0)

ncclDataType_t to_nccl(nccl::element t) {
  switch (t) {
    case nccl::element::f32: return ncclFloat32;
    case nccl::element::f16: return ncclFloat16;
    case nccl::element::bf16: return ncclBfloat16;
    case nccl::element::i32: return ncclInt32;
  }
  fail("nccl communicator: unknown element type");
}

std::string visible_devices_note() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  return v ? std::string(" (CUDA_VISIBLE_DEVICES=") + v + ")" : std::string();
}

}  // namespace

struct nccl::state {
  ncclComm_t comm = nullptr;
};

void* cuda_stream(backend::cuda<bf16_t>::context& ctx) { return ctx.impl().stream; }
void* cuda_stream(backend::cuda<fp16_t>::context& ctx) { return ctx.impl().stream; }

nccl::nccl(std::unique_ptr<state> s, int rank, int size, int local_rank, int device)
    : state_(std::move(s)), rank_(rank), size_(size), local_rank_(local_rank), device_(device) {}
nccl::nccl(nccl&&) noexcept = default;
nccl& nccl::operator=(nccl&&) noexcept = default;

nccl::~nccl() {
  if (!state_ || !state_->comm) return;
  (void)cudaSetDevice(device_);
  // Unwinding from a failure: a peer may be gone, and destroy would wait for it; abort does not.
  if (std::uncaught_exceptions() > 0)
    (void)ncclCommAbort(state_->comm);
  else
    (void)ncclCommDestroy(state_->comm);
}

nccl nccl::from_environment(std::chrono::milliseconds timeout, int device) {
  return join(read_launch_env(), timeout, device);
}

nccl nccl::join(const launch_env& env, std::chrono::milliseconds timeout, int device) {
  int visible = 0;
  if (const cudaError_t err = cudaGetDeviceCount(&visible); err != cudaSuccess) {
    if (!cuda_detail::means_no_usable_gpu(err)) cuda_detail::throw_cuda(err, "cudaGetDeviceCount", __FILE__, __LINE__);
    (void)cudaGetLastError();
    fail("rank ", env.rank, ": ", cuda_detail::no_usable_gpu(err, "cudaGetDeviceCount",
                                                             "without GPUs use mii::pipeline on the host backend "
                                                             "(tensor parallelism across processes runs on GPUs)"));
  }
  if (device < 0) device = visible == 1 ? 0 : env.local_rank;  // one GPU per process: the launcher chose it
  if (device >= visible)
    fail("rank ", env.rank, ": LOCAL_RANK ", env.local_rank, " selects CUDA device ", device, " but ", visible,
         " device", visible == 1 ? " is" : "s are", " visible", visible_devices_note(),
         "; start at most one rank per visible GPU (mii-launch --num_gpus ", visible, ")");
  MII_CUDA_CHECK(cudaSetDevice(device));

  ncclUniqueId id{};
  if (env.rank == 0) MII_NCCL_CHECK(ncclGetUniqueId(&id), nullptr, env.rank);
  const auto mine = std::as_bytes(std::span(&id, 1));
  const auto shared = share_from_rank0({env.master_addr, rendezvous_port(env)}, env.rank, env.world_size,
                                       env.rank == 0 ? mine : std::span<const std::byte>{}, timeout);
  if (shared.size() != sizeof id)
    fail("rank ", env.rank, ": the rendezvous gave ", shared.size(), " bytes, not an NCCL unique id (", sizeof id,
         " bytes); are all ranks the same program?");
  std::memcpy(&id, shared.data(), sizeof id);

  auto s = std::make_unique<state>();
  MII_NCCL_CHECK(ncclCommInitRank(&s->comm, env.world_size, id, env.rank), s->comm, env.rank);
  return nccl(std::move(s), env.rank, env.world_size, env.local_rank, device);
}

void nccl::all_reduce_sum_on(void* stream, void* data, element type, std::int64_t n) {
  if (!state_) fail("nccl communicator used after it was moved from");
  if (n <= 0) return;
  MII_NCCL_CHECK(ncclAllReduce(data, data, std::size_t(n), to_nccl(type), ncclSum, state_->comm,
                               static_cast<cudaStream_t>(stream)),
                 state_->comm, rank_);
}

void nccl::all_gather_on(void* stream, const void* send, void* recv, element type, std::int64_t n) {
  if (!state_) fail("nccl communicator used after it was moved from");
  if (n <= 0) return;
  MII_NCCL_CHECK(ncclAllGather(send, recv, std::size_t(n), to_nccl(type), state_->comm, static_cast<cudaStream_t>(stream)),
                 state_->comm, rank_);
}

}  // namespace mii::parallel
