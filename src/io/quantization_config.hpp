// Reading config.json's quantization_config (src/io/quantization_config.cpp says what loads).
#pragma once
#include <string>
#include <vector>

#include <mii/io/hf_config.hpp>

#include "io/json_reader.hpp"

namespace mii::io {

// Throws mii::error naming quantization_config's field and value for what mii cannot load.
checkpoint_quantization read_quantization_config(const detail::json_object& root);

}  // namespace mii::io
