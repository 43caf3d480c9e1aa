// Programmatic dependent launch (Hopper): a GEMV launched as a programmatic dependent of the
// kernel before it starts streaming its weights while that kernel still runs, and waits for it
// (griddepcontrol.wait: the whole grid finished, its writes visible) before reading what it
// wrote. The kernels that usually come before a GEMV (norms, activations, gathers, attention's
// last kernel, the FP8 row quantization) let their dependents launch as soon as every block of
// theirs has started; a kernel launched normally behind them is unaffected. On GPUs before
// Hopper both instructions are left out and the launch attribute only orders the two kernels as
// usual.
//
// The rule that keeps it correct: a programmatic dependent reads, before its wait, only what no
// kernel of the current step writes (weights, scales, biases) or what a kernel before its
// predecessor wrote (that one finished before its predecessor started, which was launched normally
// or waited itself).
#pragma once
#include <cuda_runtime.h>

#include "cuda/check.hpp"

namespace mii::kernels {

// In a kernel that GEMVs may follow: from here on, a programmatic dependent may launch.
__device__ __forceinline__ void let_dependents_launch() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// In a programmatic dependent: waits until the kernel it was launched behind has finished and its
// writes are visible. A no-op for a kernel launched without the attribute.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Launches `kernel` on `stream`, as a programmatic dependent of the kernel before it when
// `programmatic` (else in the usual order).
template <class Kernel, class... Args>
void launch_maybe_programmatic(bool programmatic, dim3 grid, dim3 block, cudaStream_t stream, Kernel kernel,
                               Args... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.stream = stream;
  config.attrs = programmatic ? &attribute : nullptr;
  config.numAttrs = programmatic ? 1 : 0;
  MII_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, args...));
}

}  // namespace mii::kernels
