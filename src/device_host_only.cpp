// Built into every libmii; the CUDA build overrides the answer in src/cuda/device.cpp.
#include <mii/backend/device.hpp>

#if !MII_WITH_CUDA
std::string mii::cuda_unavailable_reason() { return "mii was built without the CUDA backend"; }
#endif
