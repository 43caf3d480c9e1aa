#include "cuda/check.hpp"

namespace mii::cuda_detail {

void throw_cuda(cudaError_t err, const char* what, const char* file, int line) {
  if (means_no_usable_gpu(err)) {
    (void)cudaGetLastError();  // the error is sticky for the runtime's next call otherwise
    const std::string_view expr(what);
    fail(no_usable_gpu(err, expr.substr(0, expr.find('('))));  // "cudaGetDeviceCount(&n)" -> its name
  }
  fail("CUDA error ", cudaGetErrorName(err), " (", int(err), "): ", cudaGetErrorString(err), " in ", what, " at ",
       file, ":", line);
}

void throw_cublas(cublasStatus_t st, const char* what, const char* file, int line) {
  fail("cuBLASLt error ", cublasLtGetStatusName(st), " (", int(st), "): ", cublasLtGetStatusString(st), " in ", what,
       " at ", file, ":", line);
}

}  // namespace mii::cuda_detail
