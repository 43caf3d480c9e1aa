// The words model files are written in, brought into mii::models so that an architecture reads
// like its description (see models/mistral.hpp).
#pragma once
#include <mii/layers/policies.hpp>
#include <mii/model/architecture.hpp>
#include <mii/model/weight_names.hpp>

namespace mii::models {
using model::architecture;
using model::attention;
using model::block;
using model::embeddings;
using model::hf_name;
using model::hf_model_type;
using model::llama_naming;
using model::gemma_naming;
using model::qwen_moe_naming;
using model::mlp;
using model::norm;
using model::rotary;
using model::soft_capping;
using model::weights;
using model::weight_names;
using model::qkv_layout;
using model::gate_up_layout;

using layers::layer_norm;
using layers::rms_norm;
using layers::rms_norm_plus_one;
namespace rope = layers::rope;
namespace window = layers::window;
namespace bias = layers::bias;
namespace softcap = layers::softcap;
namespace qk_norm = layers::qk_norm;
namespace router = layers::router;
namespace shared_expert = layers::shared_expert;
using layers::gqa;
using layers::gated;
using layers::moe;
using layers::plain;
using layers::gelu;
using layers::gelu_tanh;
using layers::relu;
using layers::silu;
using layers::falcon_wiring;
using layers::opt_wiring;
using layers::parallel_shared_norm;
using layers::pre_norm_sequential;
using layers::sandwich_norms;
using layers::learned_positions;
using layers::token_embedding;
using layers::sqrt_hidden_scaled_embedding;
}  // namespace mii::models
