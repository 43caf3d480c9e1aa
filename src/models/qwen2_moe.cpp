// The registry's qwen2_moe pipeline (host and, when built, CUDA backends).
#include "models/instantiations.hpp"

MII_BUILTIN_PIPELINE(mii::models::qwen2_moe);
