// weight_plan: where each canonical weight of one tensor-parallel rank comes from in a
// checkpoint. Canonical weights are what the transformer runs on, whatever the checkpoint's
// layout: fused [q | k | v] rows, fused [gate | up] rows, a [hidden, in] matrix per projection.
// A plan entry lists runs of source rows (in canonical order) and the column range taken from
// each, so fusing, Falcon's interleaved heads, stacked experts and tensor-parallel slicing are
// all the same operation: copy these rows, these columns.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <mii/backend/fp8.hpp>
#include <mii/dtype.hpp>
#include <mii/io/hf_config.hpp>
#include <mii/io/safetensors.hpp>
#include <mii/model/architecture.hpp>
#include <mii/model/model_shape.hpp>

namespace mii::model {

enum class global_slot { embed, positions, project_in, project_out, final_norm_w, final_norm_b, lm_head_w, lm_head_b, count };
enum class layer_slot {
  attn_norm_w, attn_norm_b, mlp_norm_w, mlp_norm_b,
  post_attn_norm_w, post_attn_norm_b, post_mlp_norm_w, post_mlp_norm_b,  // sandwich norms (Gemma)
  qkv_w, qkv_b, o_w, o_b,
  up_w, up_b,      // gated: [gate | up] rows (2 * local_ffn); plain: fc1
  down_w, down_b,
  router_w,        // MoE router [experts, hidden]
  q_norm_w, k_norm_w,  // per-head q/k norm weights [head_dim] (layers::qk_norm), replicated
  shared_up_w, shared_down_w,  // shared expert: [gate | up] rows (2 * local_shared_ffn), down
  shared_gate_w,   // shared expert's output gate [1, hidden], replicated
  count
};

struct row_run {
  const io::tensor_view* tensor = nullptr;
  std::int64_t row = 0;    // first row (1-D tensors: element) in the tensor viewed as [rows, cols]
  std::int64_t count = 0;
};

struct plan_entry {
  std::string what;                // e.g. "layer 3 qkv" (for messages)
  std::vector<row_run> runs;       // canonical rows, in order
  std::int64_t rows = 0, cols = 0; // canonical shape; 1-D weights have cols == 1 ... see vector
  std::int64_t col_begin = 0;      // first source column taken
  bool vector = false;             // a 1-D weight (norm weight or bias)
  // Stored as FP8 e4m3 with one fp32 scale per row (backend/fp8.hpp): the backend's load_fp8()
  // quantizes the entry's values (as fp32) on load (model_config.quantization = "fp8").
  bool fp8 = false;
  // A pre-quantized FP8 entry (compressed-tensors checkpoints): the runs' tensors hold e4m3 bytes
  // and scale_runs[i] the rows of run i's weight_scale tensor (a one-element tensor: a per-tensor
  // scale, the same for all count rows). Empty: the backend quantizes the values itself.
  // Block-wise checkpoints (transformers' "quant_method": "fp8"): scale_runs[i] is run i's
  // weight_scale_inv tensor ([ceil(rows / R), ceil(cols / C)] for the checkpoint's R x C blocks,
  // checkpoint_blocks) with row / count in weight rows.
  std::vector<row_run> scale_runs;
  bool prequantized() const { return !scale_runs.empty(); }
  // How the loaded scales tile the canonical weight (backend/fp8.hpp): {1, 0} per row; a
  // block-wise checkpoint's blocks where every run starts on a block boundary of both the source
  // and the canonical rows, else {1, C} (each row its own copy of its block's scales: fused or
  // sliced rows that do not start on a block boundary).
  backend::fp8_blocks fp8_blocks{};
  backend::fp8_blocks checkpoint_blocks{};  // the checkpoint's blocks (block-wise entries only)
  std::int64_t fp8_scale_count() const { return fp8_blocks.scale_rows(rows) * fp8_blocks.groups(cols); }
  // A pre-quantized entry with static input scales (compressed-tensors "dynamic": false, one
  // `input_scale` per tensor): each run's scale tensor. Empty: inputs quantized per token.
  std::vector<const io::tensor_view*> input_scales;
  bool present() const { return !runs.empty(); }
  // From a synthetic checkpoint (random weights): no source bytes; element i's value is
  // synthetic_value(i) on every backend.
  bool synthetic() const;
  float synthetic_value(std::int64_t i) const;
  // What synthetic_value() is made of, for backends that fill on the device: vectors are a
  // constant (synthetic_constant()), matrices hash (synthetic_key(), i) to [-0.02, 0.02).
  std::uint64_t synthetic_key() const;
  float synthetic_constant() const;
  std::int64_t numel() const { return rows * cols; }
};

// A layer's static FP8 KV-cache scales (compressed-tensors' kv_cache_scheme): the tensors holding
// its key scale and its value scale, one value each.
struct kv_scale_tensors {
  const io::tensor_view* k = nullptr;
  const io::tensor_view* v = nullptr;
};

struct weight_plan {
  std::array<plan_entry, std::size_t(global_slot::count)> globals;
  // [layer] when the checkpoint carries static KV-cache scales, else empty.
  std::vector<kv_scale_tensors> kv_scales;
  std::vector<std::array<plan_entry, std::size_t(layer_slot::count)>> layers;
  std::vector<std::vector<plan_entry>> expert_up, expert_down;  // [layer][expert]

  plan_entry& operator[](global_slot s) { return globals[std::size_t(s)]; }
  const plan_entry& operator[](global_slot s) const { return globals[std::size_t(s)]; }
  // Bytes of the weights as loaded: `as` per element, FP8 entries 1 per element + 4 per scale.
  std::size_t total_bytes(dtype as) const;
};

// Checks every tensor the architecture needs exists with the shape the config implies
// (mii::error naming the tensor and both shapes otherwise), that the checkpoint holds no tensor
// the plan leaves unread (rotary inv_freq buffers excepted; src/model/unused_tensors.hpp), and
// plans this rank's slices.
// quantization: which weights load as FP8 (weight_quantization::fp8: the linear layers' weights,
// qkv / o / gate-up / down, MoE experts and shared experts; embeddings, norms, lm_head, routers
// and the shared expert's gate stay in the compute dtype).
enum class weight_quantization { none, fp8 };
// model_config.quantization: "" -> none, "fp8" -> fp8; anything else is refused naming the field.
weight_quantization parse_quantization(std::string_view name);
// checkpoint_quantization: config.json's quantization_config (block-wise FP8 checkpoints need its
// weight_block_size to read their weight_scale_inv tensors).
weight_plan plan_weights(const arch_description& arch, const model_shape& shape, const io::checkpoint& ckpt,
                         weight_quantization quantization = weight_quantization::none,
                         const io::checkpoint_quantization& checkpoint_quantization = {});

// Copies an entry's rows and columns into `out` (rows * cols elements of `to`), converting dtype.
void materialize(const plan_entry& e, dtype to, void* out);
// A pre-quantized entry's e4m3 bytes (rows * cols) and its fp32 scales as they tile the canonical
// weight (fp8_blocks: [scale_rows][scale_ld], scale_ld >= groups, padding zero; a per-tensor
// scale repeated for each of its rows), as stored; or only the scales.
void materialize_fp8(const plan_entry& e, std::uint8_t* data, float* scale);
void materialize_fp8_scales(const plan_entry& e, float* scale, std::int64_t scale_ld = 0);  // 0: groups
// The static input scale of an entry with input_scales: the largest of its runs' scales (fused
// q|k|v and gate|up share one input and so one scale; vLLM takes the maximum the same way).
float static_input_scale(const plan_entry& e);
// A static KV-cache scale's value (checked finite and > 0 when planned).
float kv_scale_value(const io::tensor_view& t);

}  // namespace mii::model
