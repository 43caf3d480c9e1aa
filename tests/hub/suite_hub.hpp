// The one fake Hub the hub suite's tests share (started on first use, stopped at exit), with every
// repo they need; a repo with a fault is used by one test only (drop and stall play once).
#pragma once
#include <string>

#include "fake_hub.hpp"

namespace mii::test {

// sha256sum of tests/fixtures/models/llama2/model.safetensors: its blob name (an LFS file's
// X-Linked-Etag).
inline const std::string llama2_weights_sha256 = "3677ba56e350f9eb12754b6ad591b30582c420209a226cacf1d0221be89fb4ac";

inline const fake_hub& suite_hub() {
  static const fake_hub hub = [] {
    const std::string llama2 = fixture_model("llama2").string();
    auto repo = [&](const std::string& id) { return id + "=" + llama2; };
    return fake_hub({
        "--repo", repo("org/llama"),
        // A branch whose generation_config.json differs.
        "--repo", repo("org/llama@dev"),
        "--edit", R"(org/llama@dev:generation_config.json={"bos_token_id": 1, "eos_token_id": 2, "_branch": "dev"})",
        "--repo", repo("org/gated"), "--gated", "org/gated=hf_right",
        "--repo", repo("org/bare"), "--remove", "org/bare:tokenizer.json",
        "--repo", repo("org/sharded"), "--shard", "org/sharded",
        "--renamed", "old/name=org/llama",
        "--repo", repo("fault/drop"), "--fault", "drop:fault/drop:model.safetensors",
        "--repo", repo("fault/stall"), "--fault", "stall:fault/stall:model.safetensors",
        "--repo", repo("fault/corrupt"), "--fault", "corrupt:fault/corrupt:model.safetensors",
        "--repo", repo("fault/ignore-range"), "--fault", "ignore-range:fault/ignore-range:model.safetensors",
    });
  }();
  return hub;
}

}  // namespace mii::test
