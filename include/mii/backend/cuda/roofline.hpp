// The two ceilings every speed figure is compared with, measured on the machine at hand:
// device memory bandwidth (a large device-to-device copy, bytes read + written) and the bf16
// matrix-multiply rate (a large cuBLASLt GEMM on random data, fp32 accumulation); and the same GEMM
// with FP8 e4m3 operands, the ceiling of model_config.quantization = "fp8".
#pragma once
#include <cstddef>
#include <string>

namespace mii::cuda_roofline {

struct device_info {
  std::string name;
  int sm_count = 0;
  std::size_t memory_total = 0;
  std::size_t memory_used = 0;  // now, by every process
  int driver_version = 0, runtime_version = 0;
};

struct ceilings {
  double copy_bytes_per_s = 0;  // read + written
  double bf16_flops_per_s = 0;  // 2*m*n*k per GEMM
  double e4m3_flops_per_s = 0;  // the same GEMM with FP8 e4m3 operands, bf16 output (0: not measured)
  std::size_t copy_bytes = 0;
  int gemm_size = 0;
};

device_info query(int device = 0);
// Median of several runs after warm-up; throws mii::error on any CUDA failure.
ceilings measure(int device = 0, std::size_t copy_bytes = std::size_t(2) << 30, int gemm_size = 8192);

}  // namespace mii::cuda_roofline
