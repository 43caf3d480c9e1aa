// The registry's falcon pipeline (host and, when built, CUDA backends).
#include "models/instantiations.hpp"

MII_BUILTIN_PIPELINE(mii::models::falcon);
