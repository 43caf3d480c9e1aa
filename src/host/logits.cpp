// The host backend's logit operations around sampling: log-probability summaries, penalties and
// biases applied in place, and single logits read back.
#include <mii/backend/host/host_backend.hpp>

#include <mii/runtime/sampling.hpp>

namespace mii::backend {

void host::summarize_rows(context& ctx, const float* logits, std::int64_t vocab, std::span<const std::int32_t> rows,
                          std::int32_t top_n, float* lse, std::int32_t* top_ids, float* top_logits) {
  ctx.parallel_for(std::int64_t(rows.size()), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t j = begin; j < end; ++j) {
      const runtime::row_summary s = runtime::summarize_row(logits + std::int64_t(rows[std::size_t(j)]) * vocab, vocab, top_n);
      lse[j] = s.logsumexp;
      for (std::int32_t k = 0; k < top_n; ++k) {
        const bool have = std::size_t(k) < s.top_ids.size();
        top_ids[j * top_n + k] = have ? s.top_ids[std::size_t(k)] : -1;
        top_logits[j * top_n + k] = have ? s.top_logits[std::size_t(k)] : 0.0f;
      }
    }
  });
}

void host::edit_logits(context&, float* logits, std::int64_t vocab, std::span<const runtime::logit_edit> edits,
                       float* replaced) {
  for (std::size_t i = 0; i < edits.size(); ++i) {
    float& x = logits[std::int64_t(edits[i].row) * vocab + edits[i].token];
    if (replaced) replaced[i] = x;
    x = runtime::apply_edit(x, edits[i]);
  }
}

void host::gather_logits(context&, const float* logits, std::int64_t vocab, std::span<const std::int32_t> rows,
                         std::span<const std::int32_t> tokens, float* out) {
  for (std::size_t i = 0; i < rows.size(); ++i) out[i] = logits[std::int64_t(rows[i]) * vocab + tokens[i]];
}

}  // namespace mii::backend
