// Settings shared by the pipeline suite: the host backend with small KV blocks and an explicit
// cache size (the host's default budget, a share of 1 GiB, is far more than the tiny models need).
#pragma once
#include <mii/config.hpp>

namespace mii::test {

inline model_config host_config(std::int64_t kv_cache_blocks = 4096) {
  model_config c;
  c.backend = "host";
  c.kv_block_size = 16;
  c.kv_cache_blocks = kv_cache_blocks;
  c.show_progress = false;
  return c;
}

}  // namespace mii::test
