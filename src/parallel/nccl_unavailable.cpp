// A build without CUDA still links code that names the nccl communicator (mii::pipeline_tp is a
// header template); using it says what is missing. The real one is src/cuda/nccl_comm.cpp.
#include <mii/parallel/nccl.hpp>

#if !MII_WITH_CUDA

namespace mii::parallel {

struct nccl::state {};

nccl::nccl(std::unique_ptr<state> s, int rank, int size, int local_rank, int device)
    : state_(std::move(s)), rank_(rank), size_(size), local_rank_(local_rank), device_(device) {}
nccl::nccl(nccl&&) noexcept = default;
nccl& nccl::operator=(nccl&&) noexcept = default;
nccl::~nccl() = default;

nccl nccl::from_environment(std::chrono::milliseconds timeout, int device) {
  return join(read_launch_env(), timeout, device);
}

nccl nccl::join(const launch_env&, std::chrono::milliseconds, int) {
  fail("the nccl communicator needs the CUDA backend, and this mii was built without it "
       "(rebuild with -DMII_WITH_CUDA=ON)");
}

void nccl::all_reduce_sum_on(void*, void*, element, std::int64_t) { fail("nccl communicator: built without CUDA"); }
void nccl::all_gather_on(void*, const void*, void*, element, std::int64_t) { fail("nccl communicator: built without CUDA"); }

}  // namespace mii::parallel

#endif
