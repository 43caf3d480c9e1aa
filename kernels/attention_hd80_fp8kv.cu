// Tensor-core attention kernels for head_dim 80 over an FP8 KV cache (bf16 and fp16); see
// attention_flash.cuh. Apart from attention_hd80.cu so that each unit compiles in bounded time.
#include "attention_flash.cuh"

namespace mii::kernels::attn {
MII_INSTANTIATE_FLASH_ATTENTION_FP8KV(80)
}  // namespace mii::kernels::attn
