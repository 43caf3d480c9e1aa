// Tensor-core attention kernels for head_dim 256 with soft-capped scores (Gemma 2), bf16 and
// fp16; see attention_flash.cuh. A translation unit of its own so that the plain kernels do not
// rebuild, and the two compile in parallel.
#include "attention_flash.cuh"

namespace mii::kernels::attn {
MII_INSTANTIATE_FLASH_ATTENTION_VARIANT(256, soft_capped_scores)
}  // namespace mii::kernels::attn
