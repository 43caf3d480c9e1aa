// Tensor-core attention kernels for head_dim 80 (bf16 and fp16); see attention_flash.cuh.
#include "attention_flash.cuh"

namespace mii::kernels::attn {
MII_INSTANTIATE_FLASH_ATTENTION(80)
}  // namespace mii::kernels::attn
