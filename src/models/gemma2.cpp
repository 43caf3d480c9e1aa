// The registry's gemma2 pipeline (host and, when built, CUDA backends).
#include "models/instantiations.hpp"

MII_BUILTIN_PIPELINE(mii::models::gemma2);
