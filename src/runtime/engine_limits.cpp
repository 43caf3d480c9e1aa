#include <mii/runtime/engine.hpp>

#include <algorithm>
#include <string>

namespace mii::runtime {

engine_limits resolve_limits(const model_config& cfg, const model::model_shape& shape, const io::hf_config& hf,
                             const io::generation_config& gen, const tokenizer* tok) {
  engine_limits l;
  // A tokenizer whose ids reach past the embedding table loads, and then fails only on the
  // prompts that happen to use those ids: refuse it at load.
  if (tok && tok->vocab_size() > shape.vocab) {
    const token_id top = tok->vocab_size() - 1;
    const std::string file =
        cfg.tokenizer ? cfg.tokenizer->string() : (shape.config_file.parent_path() / "tokenizer.json").string();
    fail(file, ": the tokenizer's ids go up to ", top, " ('", tok->id_to_token(top), "') but ",
         shape.config_file.string(), " field 'vocab_size' is ", shape.vocab, " (ids must be below it)");
  }
  // EOS: generation_config.json first (it is what transformers' generate uses), then config.json,
  // then the tokenizer's own. An id outside the vocabulary can never be sampled, so generation
  // would never stop on it; one past 2^31 would wrap to another token.
  const bool from_gen = !gen.eos_token_ids.empty();
  const auto& ids = from_gen ? gen.eos_token_ids : hf.eos_token_ids;
  for (auto id : ids) {
    if (id < 0 || id >= shape.vocab)
      fail((from_gen ? (shape.config_file.parent_path() / "generation_config.json") : shape.config_file).string(),
           ": field 'eos_token_id' holds ", id, ", outside the vocabulary [0, ", shape.vocab, ") of field 'vocab_size'");
    l.eos_ids.push_back(std::int32_t(id));
  }
  if (l.eos_ids.empty() && tok)
    if (auto e = tok->eos_id()) l.eos_ids.push_back(*e);

  // The model runner plans its buffers with these before we get here; 0 must not pass for 1.
  if (cfg.max_ragged_batch_size < 1)
    fail("model_config.max_ragged_batch_size must be >= 1, got ", cfg.max_ragged_batch_size);
  if (cfg.max_ragged_sequence_count < 1)
    fail("model_config.max_ragged_sequence_count must be >= 1, got ", cfg.max_ragged_sequence_count);
  if (cfg.max_tracked_sequences < 1)
    fail("model_config.max_tracked_sequences must be >= 1, got ", cfg.max_tracked_sequences);
  if (cfg.max_length && *cfg.max_length < 2) fail("model_config.max_length must be >= 2, got ", *cfg.max_length);
  if (cfg.max_context < 2) fail("model_config.max_context must be >= 2, got ", cfg.max_context);
  // The model's context: max_position_embeddings, times the factor of a rope scaling that
  // stretches positions (linear, dynamic NTK), as vLLM derives it. Dynamic NTK computes its
  // frequencies for any length, so an explicit max_length may go past even that.
  const bool stretched = hf.rope.type == "linear" || hf.rope.type == "dynamic";
  const std::int64_t context =
      shape.max_positions > 0 && stretched ? std::int64_t(std::min(double(shape.max_positions) * hf.rope.factor, 1e15)) : shape.max_positions;
  if (cfg.max_length && context > 0 && *cfg.max_length > context && hf.rope.type != "dynamic")
    fail("model_config.max_length is ", *cfg.max_length, " but the model's max_position_embeddings is ",
         shape.max_positions, stretched ? " (" + std::to_string(context) + " with its rope scaling factor)" : std::string(),
         " (", shape.config_file.string(), ")");
  l.max_sequence = std::min(cfg.max_length.value_or(context > 0 ? context : cfg.max_context), cfg.max_context);
  if (shape.learned_positions) l.max_sequence = std::min(l.max_sequence, shape.max_positions);
  return l;
}

}  // namespace mii::runtime
