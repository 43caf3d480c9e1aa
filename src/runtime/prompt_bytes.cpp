#include <algorithm>
#include <limits>

#include <mii/runtime/engine.hpp>

namespace mii::runtime {

std::size_t max_prompt_bytes(const tokenizer& tok, std::int64_t max_tokens) {
  std::size_t longest = 1;
  for (token_id id = 0; id < tok.vocab_size(); ++id) longest = std::max(longest, tok.id_to_token(id).size());
  constexpr std::size_t shrink_allowance = 4;
  const std::size_t per_token = longest * shrink_allowance;
  if (max_tokens <= 0) return 0;
  if (std::size_t(max_tokens) > std::numeric_limits<std::size_t>::max() / per_token)
    return std::numeric_limits<std::size_t>::max();
  return std::size_t(max_tokens) * per_token;
}

}  // namespace mii::runtime
