// The FP8 KV cache (model_config.kv_cache_dtype = "fp8_e4m3", docs/quantization.md): keys and
// values stored as e4m3 bytes, each (token, kv head) vector of keys and each of values with its
// own fp32 scale s = fp8_scale(max |x|) and bytes e4m3(x / s) (the rounding of mii::to_e4m3).
// Per-vector scales need no calibration data and follow outliers token by token; they cost
// 4 bytes per head_dim bytes (3 % at head_dim 128), so a block holds 1.94x the tokens of bf16.
// A checkpoint with static KV-cache scales (compressed-tensors' kv_cache_scheme: one k_scale and
// one v_scale per layer) has every key vector of a layer quantized with its k_scale instead, and
// every value vector with its v_scale, values beyond e4m3's range saturating:
// e4m3(clamp(x / s, -448, 448)); the scale is stored per vector as before, so attention reads
// both kinds alike.
//
// Every backend computes the same thing: keys and values dequantized (byte value times scale)
// and attention in the compute dtype's arithmetic. The host backend is the reference (fp32),
// checked against transformers with the same quantization applied to its cached keys and
// values (tests/fixtures/make_fp8_kv_references.py).
#pragma once
#include <cstdint>
#include <string_view>

#include <mii/error.hpp>

namespace mii::backend {

// What the KV cache stores: the compute dtype, or e4m3 with per-vector scales.
enum class kv_cache_dtype { compute, fp8_e4m3 };

// model_config.kv_cache_dtype: "auto" (the compute dtype) or "fp8_e4m3" ("fp8" is vLLM's alias).
inline kv_cache_dtype parse_kv_cache_dtype(std::string_view name) {
  if (name.empty() || name == "auto") return kv_cache_dtype::compute;
  if (name == "fp8_e4m3" || name == "fp8") return kv_cache_dtype::fp8_e4m3;
  fail("model_config.kv_cache_dtype: \"", name, "\" is not supported; supported: \"auto\", \"fp8_e4m3\" (alias \"fp8\")");
}

// One layer's slice of an FP8 KV cache. Per block, e4m3 bytes [2][kv_heads][block_size][head_dim]
// (index 0 = keys, 1 = values) followed by fp32 scales [2][kv_heads][block_size], so that a block
// is one contiguous range (copy-on-write copies it whole) and its scales sit beside its bytes.
// Byte: std::uint8_t (written by rope_store_kv) or const std::uint8_t (read by attention).
template <class Byte>
struct fp8_kv_layer {
  Byte* data = nullptr;  // the layer's block 0
  std::int32_t block_size = 0;
  std::int32_t kv_heads = 0;
  std::int32_t head_dim = 0;
  // The layer's static scales of keys and values (a checkpoint's kv_cache_scheme); 0: each
  // vector's own scale. Only rope_store_kv reads them.
  float k_scale = 0.0f, v_scale = 0.0f;

  // Vectors (token, kv head) of keys or values in one block.
  std::int64_t vectors() const { return std::int64_t(kv_heads) * block_size; }
  // Bytes of a block's e4m3 values; its scales start there.
  std::int64_t scale_offset() const { return 2 * vectors() * head_dim; }
  std::int64_t block_stride() const { return scale_offset() + 2 * vectors() * std::int64_t(sizeof(float)); }
  // Offsets from a block's start: vector `slot` of kv head `head`, keys (which = 0) or values (1).
  std::int64_t value_at(int which, int head, std::int64_t slot) const {
    return ((std::int64_t(which) * kv_heads + head) * block_size + slot) * head_dim;
  }
  std::int64_t scale_at(int which, int head, std::int64_t slot) const {
    return scale_offset() + ((std::int64_t(which) * kv_heads + head) * block_size + slot) * std::int64_t(sizeof(float));
  }
};

// Bytes of one layer's block of a cache of this dtype (compute_bytes: sizeof the compute dtype).
inline std::int64_t kv_block_bytes(kv_cache_dtype d, std::int32_t kv_heads, std::int32_t block_size,
                                   std::int32_t head_dim, std::int64_t compute_bytes) {
  if (d == kv_cache_dtype::fp8_e4m3) return fp8_kv_layer<std::uint8_t>{nullptr, block_size, kv_heads, head_dim}.block_stride();
  return 2 * std::int64_t(kv_heads) * block_size * head_dim * compute_bytes;
}

}  // namespace mii::backend
