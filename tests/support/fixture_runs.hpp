// Running a model_runner (any backend) over a fixture's prompts the way the fixture tests do:
// small KV blocks that prompts cross many times, block ids interleaved across sequences, and
// prompts fed as pieces of steps (whole, chunked or ragged) collecting every position's logits.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include <mii/config.hpp>
#include <mii/runtime/step_builder.hpp>

#include "fixtures.hpp"

namespace mii::test {

inline model_config fixture_config() {
  model_config c;
  c.kv_block_size = 4;  // small blocks: prompts cross many block boundaries
  c.kv_cache_blocks = 512;
  c.max_ragged_batch_size = 256;
  c.show_progress = false;
  return c;
}

// Blocks for sequence `seq` of `n_seqs`, interleaved with the other sequences' blocks on purpose.
template <class Runner>
std::vector<std::int32_t> interleaved_blocks(const Runner& runner, std::int64_t tokens, int seq, int n_seqs) {
  std::vector<std::int32_t> b;
  for (std::int64_t i = 0; i * runner.block_size() < tokens; ++i)
    b.push_back(std::int32_t((i * n_seqs + seq) % runner.kv_blocks()));
  return b;
}

// Tokens [begin, end) of prompt `seq`, as one chunk of a step.
struct piece {
  int seq;
  std::int64_t begin, end;
};

// The step plans the fixture tests run (prompt lengths by index; the ragged plan needs 3 prompts):
// every prompt whole in a step of its own; every prompt in chunks of 1, 3, 5, 7, 2, 4, ... tokens
// through the KV cache; and three ragged steps that mix prompts and chunk sizes
// (step 1: prompt 0 whole + the starts of 1 and 2; step 2: the rest of 1 + more of 2; step 3: the rest of 2).
inline std::vector<std::vector<piece>> whole_prompt_steps(const std::vector<std::int64_t>& lens) {
  std::vector<std::vector<piece>> steps;
  for (int s = 0; s < int(lens.size()); ++s) steps.push_back({{s, 0, lens[std::size_t(s)]}});
  return steps;
}
inline std::vector<std::vector<piece>> chunked_steps(const std::vector<std::int64_t>& lens) {
  std::vector<std::vector<piece>> steps;
  for (int s = 0; s < int(lens.size()); ++s)
    for (std::int64_t b = 0, size = 1, len = lens[std::size_t(s)]; b < len; b += size, size = size % 7 + 2)
      steps.push_back({{s, b, std::min(len, b + size)}});
  return steps;
}
inline std::vector<std::vector<piece>> ragged_steps(const std::vector<std::int64_t>& lens) {
  const std::int64_t c1 = lens.at(1) / 2, c2 = lens.at(2) / 3, c2b = 2 * lens.at(2) / 3;
  return {{{0, 0, lens[0]}, {1, 0, c1}, {2, 0, c2}}, {{2, c2, c2b}, {1, c1, lens[1]}}, {{2, c2b, lens[2]}}};
}
inline std::vector<std::int64_t> prompt_lengths(const model_reference& ref) {
  std::vector<std::int64_t> lens;
  for (const auto& p : ref.prompts) lens.push_back(std::int64_t(p.size()));
  return lens;
}

// Runs `steps` (each a list of prompt pieces) and returns each prompt's logits for every position.
// Every piece sees its whole prompt's length (step_chunk::rope_len), as transformers computes the
// prompt in one forward however the pieces split it.
template <class Runner>
std::vector<std::vector<float>> run_pieces(Runner& runner, const model_reference& ref,
                                           const std::vector<std::vector<piece>>& steps) {
  const int n = int(ref.prompts.size());
  std::vector<std::vector<std::int32_t>> blocks;
  for (int s = 0; s < n; ++s)
    blocks.push_back(interleaved_blocks(runner, std::int64_t(ref.prompts[std::size_t(s)].size()), s, n));
  std::vector<std::vector<float>> out(static_cast<std::size_t>(n));
  for (const auto& step : steps) {
    std::vector<runtime::step_chunk> chunks;
    for (const auto& p : step) {
      const auto& prompt = ref.prompts[std::size_t(p.seq)];
      chunks.push_back({std::span(prompt).subspan(std::size_t(p.begin), std::size_t(p.end - p.begin)), p.begin,
                        blocks[std::size_t(p.seq)], std::int64_t(prompt.size()), runtime::step_chunk::logits::all});
    }
    runner.forward(chunks);
    const auto logits = runner.logits();
    std::size_t row = 0;
    for (const auto& p : step) {
      const std::size_t len = std::size_t(p.end - p.begin) * std::size_t(ref.vocab);
      out[std::size_t(p.seq)].insert(out[std::size_t(p.seq)].end(), logits.begin() + std::ptrdiff_t(row),
                                     logits.begin() + std::ptrdiff_t(row + len));
      row += len;
    }
  }
  return out;
}

}  // namespace mii::test
