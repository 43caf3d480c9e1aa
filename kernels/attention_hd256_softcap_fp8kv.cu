// Tensor-core attention kernels for head_dim 256 with soft-capped scores (Gemma 2) over an FP8 KV
// cache, bf16 and fp16; see attention_flash.cuh.
#include "attention_flash.cuh"

namespace mii::kernels::attn {
MII_INSTANTIATE_FLASH_ATTENTION_FP8KV_VARIANT(256, soft_capped_scores)
}  // namespace mii::kernels::attn
