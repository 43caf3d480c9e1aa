// Which devices this process can use. Safe to call on machines without a GPU or without CUDA.
#pragma once
#include <string>

namespace mii {

// Empty when a CUDA device is usable; otherwise why not (built without CUDA, no device,
// driver error with its code). Never throws.
std::string cuda_unavailable_reason();

inline bool cuda_available() { return cuda_unavailable_reason().empty(); }

}  // namespace mii
