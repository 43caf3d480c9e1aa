// The host backend's KV block copies (copy-on-write of blocks that samples of one prompt share).
#include <algorithm>

#include <mii/backend/host/host_backend.hpp>
#include <mii/error.hpp>

namespace mii::backend {

void host::copy_kv_blocks(context&, std::uint8_t* kv, std::int64_t layers, std::int64_t blocks_per_layer,
                          std::int64_t block_bytes, std::span<const block_copy> copies) {
  for (const block_copy& c : copies) {
    if (c.src < 0 || c.src >= blocks_per_layer || c.dst < 0 || c.dst >= blocks_per_layer)
      fail("internal: KV block copy ", c.src, " -> ", c.dst, " outside the cache of ", blocks_per_layer, " blocks");
    for (std::int64_t layer = 0; layer < layers; ++layer) {
      const std::uint8_t* from = kv + (layer * blocks_per_layer + c.src) * block_bytes;
      std::copy(from, from + block_bytes, kv + (layer * blocks_per_layer + c.dst) * block_bytes);
    }
  }
}

}  // namespace mii::backend
