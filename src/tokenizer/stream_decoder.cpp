// Streaming detokenization. Each push feeds one token through the incremental decoder pipeline
// (decoder.hpp) and returns the text that became final; flush() finishes the pipeline. Because
// decode() runs the very same pipeline over all ids, the deltas always add up to decode(ids):
// no half characters (byte-level and byte-fallback stages hold incomplete UTF-8 back) and no
// wrong leading spaces (the first-token rules see the true first token).
#include "mii/tokenizer/tokenizer.hpp"
#include "tokenizer/tokenizer_impl.hpp"

namespace mii {

tokenizer::stream_decoder::stream_decoder(std::shared_ptr<const detail::tokenizer_impl> impl, bool skip_special,
                                          std::vector<token_id> context)
    : impl_(std::move(impl)), skip_special_(skip_special) {
  state_ = std::make_unique<detail::stream_state>(impl_->decoder);
  if (context.empty()) return;
  // The context's own text (as a full decode renders it) is not emitted again; its tokens are
  // fed so that what follows is rendered as it is in decode(context + ids).
  const std::string context_text = tokenizer(impl_).decode(context, skip_special_);
  for (const token_id id : context) {
    if (impl_->skipped(id, skip_special_)) continue;
    if (const auto text = impl_->decode_text(id)) state_->run.push(*text);
  }
  const std::size_t already = state_->run.text().size();
  state_->skip_bytes = context_text.size() > already ? context_text.size() - already : 0;
  state_->run.text().clear();
}

tokenizer::stream_decoder::stream_decoder(const stream_decoder& other)
    : impl_(other.impl_), skip_special_(other.skip_special_), ids_(other.ids_),
      state_(std::make_unique<detail::stream_state>(*other.state_)) {}

tokenizer::stream_decoder& tokenizer::stream_decoder::operator=(const stream_decoder& other) {
  if (this != &other) *this = stream_decoder(other);
  return *this;
}

tokenizer::stream_decoder::stream_decoder(stream_decoder&&) noexcept = default;
tokenizer::stream_decoder& tokenizer::stream_decoder::operator=(stream_decoder&&) noexcept = default;
tokenizer::stream_decoder::~stream_decoder() = default;

namespace {
std::string take(detail::stream_state& st) {
  std::string& text = st.run.text();
  std::string delta;
  if (st.skip_bytes >= text.size()) {
    st.skip_bytes -= text.size();
  } else {
    delta.assign(text, st.skip_bytes, std::string::npos);
    st.skip_bytes = 0;
  }
  text.clear();
  return delta;
}
}  // namespace

std::string tokenizer::stream_decoder::push(token_id id) {
  ids_.push_back(id);
  if (impl_->skipped(id, skip_special_)) return {};
  const auto text = impl_->decode_text(id);
  if (!text) return {};
  state_->run.push(*text);
  return take(*state_);
}

std::string tokenizer::stream_decoder::flush() {
  state_->run.finish();
  std::string rest = take(*state_);
  state_ = std::make_unique<detail::stream_state>(impl_->decoder);  // ready for a fresh stream
  return rest;
}

tokenizer::stream_decoder tokenizer::make_stream_decoder(bool skip_special_tokens, std::vector<token_id> context) const {
  return stream_decoder(impl_, skip_special_tokens, std::move(context));
}

}  // namespace mii
