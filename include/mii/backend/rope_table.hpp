// The rotary-embedding descriptor every backend's rope op takes, and the rule that picks a token's
// frequencies: one definition for the host reference and the CUDA kernel.
//
// Some rope variants depend on the length of the forward pass that computes a token, because
// transformers recomputes the frequencies per forward from seq_len = last position + 1:
// longrope uses its long factors past original_max_position_embeddings, dynamic NTK grows its
// base past max_position_embeddings. transformers computes a prompt in one forward, so all of a
// prompt's tokens see the prompt's length, and each later token its own position + 1. mii may
// split a prompt over several steps (Dynamic SplitFuse) or mix sequences in one step, so the
// length is per token: max(the sequence's rope_len, position + 1), where rope_len is the length
// of the forward that computed the sequence's prompt (step_batch::seq_rope_len). Keys written to
// the KV cache keep the rotation they were written with, as in transformers' cache.
#pragma once
#include <cstdint>
#include <math.h>

#if defined(__CUDACC__)
#define MII_ROPE_HD __host__ __device__
#else
#define MII_ROPE_HD
#endif

namespace mii::backend {

// How a token's frequencies depend on the length of its forward.
enum class rope_length_rule : std::int32_t {
  fixed,        // row 0 always (default, linear, llama3)
  longrope,     // row 1 (long factors) when the length passes original_len, else row 0 (short)
  dynamic_ntk,  // row 0 up to original_len; past it, frequencies of a base grown with the length
};

// Rotary frequencies: `rows` tables of rot_dim/2 inverse frequencies and a cos/sin scale per row,
// and the rule that picks a row (or computes the frequencies) for a token. A layer with its own
// frequencies (another theta) is another rope_table.
struct rope_table {
  const float* inv_freq = nullptr;  // [rows][rot_dim / 2]
  const float* scale = nullptr;     // [rows]; null: 1
  std::int32_t rows = 0;
  std::int32_t rot_dim = 0;         // rotated dims per head; the rest pass through
  rope_length_rule rule = rope_length_rule::fixed;
  std::int32_t original_len = 0;    // longrope: original_max_position_embeddings; dynamic: max_position_embeddings
  double theta = 10000.0;           // dynamic: the configured base
  double factor = 1.0;              // dynamic: the scaling factor
};

// The length of the forward transformers computes the token at `pos` in, for a sequence whose
// prompt was computed in a forward of `seq_rope_len` tokens (0: the token's own length).
MII_ROPE_HD inline std::int32_t rope_forward_length(std::int32_t seq_rope_len, std::int32_t pos) {
  return seq_rope_len > pos + 1 ? seq_rope_len : pos + 1;
}

// The row of inv_freq / scale a token computed in a forward of `len` tokens uses.
MII_ROPE_HD inline int rope_row(const rope_table& r, std::int32_t len) {
  return r.rule == rope_length_rule::longrope && r.rows > 1 && len > r.original_len ? 1 : 0;
}

// Dynamic NTK past original_len: the frequencies come from a base grown with the length,
// theta * (factor * len / original_len - (factor - 1)) ^ (rot_dim / (rot_dim - 2)), computed in
// double (transformers computes it in fp32; the difference is far below fp32 logits' rounding).
MII_ROPE_HD inline bool rope_grows_base(const rope_table& r, std::int32_t len) {
  return r.rule == rope_length_rule::dynamic_ntk && len > r.original_len;
}
MII_ROPE_HD inline double dynamic_ntk_base(const rope_table& r, std::int32_t len) {
  const double grown = r.factor * double(len) / double(r.original_len) - (r.factor - 1.0);
  return r.theta * ::pow(grown, double(r.rot_dim) / double(r.rot_dim - 2));
}
// Frequency i (of rot_dim / 2) for a base: 1 / base^(2i / rot_dim).
MII_ROPE_HD inline float rope_inv_freq(double base, int i, int rot_dim) {
  return float(1.0 / ::pow(base, double(2 * i) / double(rot_dim)));
}

}  // namespace mii::backend
