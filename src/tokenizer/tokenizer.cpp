// The public mii::tokenizer: file loading, encode (added tokens -> normalizer -> pre-tokenizer ->
// BPE -> post-processor) and decode.
#include "mii/tokenizer/tokenizer.hpp"

#include <fstream>
#include <sstream>

#include "mii/error.hpp"
#include "tokenizer/tokenizer_impl.hpp"
#include "tokenizer/unicode.hpp"

namespace mii {

namespace detail {

namespace {

std::string read_file(const std::filesystem::path& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (required) mii::fail(path.string(), ": cannot open tokenizer file");
    return {};
  }
  std::string data;
  in.seekg(0, std::ios::end);
  data.resize(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (!in) mii::fail(path.string(), ": read error");
  return data;
}

// Per-thread scratch space for encode, so that encoding allocates nothing once warm.
struct encode_scratch {
  std::vector<tok::text_split> raw_splits, norm_splits;
  std::string normalized;
  tok::pre_tokenize_state pre;
};

}  // namespace

std::optional<std::string_view> tokenizer_impl::decode_text(token_id id) const {
  if (id < 0 || id >= id_limit) return std::nullopt;
  if (const std::int32_t a = added_by_id[static_cast<std::size_t>(id)]; a >= 0) return added_decode_text[static_cast<std::size_t>(a)];
  if (id >= model->id_limit()) return std::nullopt;
  const std::string_view s = model->id_to_token(id);
  if (s.empty() && !model->token_to_id(s)) return std::nullopt;  // a gap in the vocabulary
  return s;
}

void tokenizer_impl::encode_into(std::string_view text, bool add_special_tokens, std::vector<token_id>& out) const {
  if (const std::size_t bad = tok::find_invalid_utf8(text); bad != std::string_view::npos)
    mii::fail("tokenizer: input is not valid UTF-8 (first bad byte 0x", "0123456789ABCDEF"[static_cast<unsigned char>(text[bad]) >> 4],
              "0123456789ABCDEF"[static_cast<unsigned char>(text[bad]) & 15], " at byte offset ", bad, ")");
  thread_local encode_scratch scratch;
  encode_scratch& s = scratch;
  const std::size_t first = out.size();

  const auto tokenize_text = [&](std::string_view piece_text, bool at_origin) {
    if (piece_text.empty()) return;
    if (!pre_tokenizer) {
      model->tokenize(piece_text, out);
      return;
    }
    tok::pre_tokenize_state& st = s.pre;
    st.buffer.assign(piece_text);
    st.pieces.clear();
    st.next.clear();
    st.pieces.push_back({0, static_cast<std::uint32_t>(piece_text.size()), at_origin});
    pre_tokenizer->apply(st);
    for (const tok::piece& p : st.pieces) model->tokenize(st.text(p), out);
  };

  // 1. Added tokens in the raw text.
  if (raw_added.empty()) s.raw_splits.assign(1, {0, static_cast<std::uint32_t>(text.size()), -1});
  else raw_added.split(text, added, s.raw_splits);
  for (const tok::text_split& split : s.raw_splits) {
    if (split.id >= 0) {
      out.push_back(split.id);
      continue;
    }
    if (split.end == split.begin) continue;
    std::string_view segment = text.substr(split.begin, split.end - split.begin);
    const bool segment_at_origin = split.begin == 0;
    // 2. Normalize the text between added tokens, 3. find the normalized added tokens in it.
    if (normalizer && normalizer->apply(segment, s.normalized)) segment = s.normalized;
    if (normalized_added.empty()) {
      tokenize_text(segment, segment_at_origin);
      continue;
    }
    // s.normalized may back `segment`; keep the splits' text alive in a copy while tokenizing.
    const std::string held(segment);
    normalized_added.split(held, added, s.norm_splits);
    const std::vector<tok::text_split> norm_splits = s.norm_splits;
    for (const tok::text_split& ns : norm_splits) {
      if (ns.id >= 0) out.push_back(ns.id);
      else tokenize_text(std::string_view(held).substr(ns.begin, ns.end - ns.begin), segment_at_origin && ns.begin == 0);
    }
  }
  if (add_special_tokens && post) {
    if (!post->prefix.empty()) out.insert(out.begin() + static_cast<std::ptrdiff_t>(first), post->prefix.begin(), post->prefix.end());
    out.insert(out.end(), post->suffix.begin(), post->suffix.end());
  }
}

}  // namespace detail

tokenizer tokenizer::from_file(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    file = path / "tokenizer.json";
    if (!std::filesystem::exists(file, ec))
      mii::fail(path.string(), ": directory has no tokenizer.json");
  } else if (!std::filesystem::exists(path, ec)) {
    mii::fail(path.string(), ": no such file or directory");
  }
  const std::string json = detail::read_file(file, true);
  const std::string config = detail::read_file(file.parent_path() / "tokenizer_config.json", false);
  return tokenizer(detail::load_tokenizer(json, file.string(), config));
}

tokenizer tokenizer::from_json(std::string_view json, std::string origin) {
  return tokenizer(detail::load_tokenizer(json, std::move(origin)));
}

std::vector<token_id> tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<token_id> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->encode_into(text, add_special_tokens, ids);
  return ids;
}

std::vector<std::vector<token_id>> tokenizer::encode_batch(std::span<const std::string> texts,
                                                           bool add_special_tokens) const {
  std::vector<std::vector<token_id>> out;
  out.reserve(texts.size());
  for (const std::string& t : texts) out.push_back(encode(t, add_special_tokens));
  return out;
}

std::string tokenizer::decode(std::span<const token_id> ids, bool skip_special_tokens) const {
  detail::tok::decode_run run(impl_->decoder);
  for (const token_id id : ids) {
    if (impl_->skipped(id, skip_special_tokens)) continue;
    if (const auto text = impl_->decode_text(id)) run.push(*text);
  }
  run.finish();
  return std::move(run.text());
}

std::int32_t tokenizer::vocab_size() const { return impl_->id_limit; }

std::optional<token_id> tokenizer::token_to_id(std::string_view token) const {
  for (const auto& a : impl_->added)
    if (a.content == token) return a.id;
  return impl_->model->token_to_id(token);
}

std::string_view tokenizer::id_to_token(token_id id) const {
  if (id < 0 || id >= impl_->id_limit) return {};
  if (const std::int32_t a = impl_->added_by_id[static_cast<std::size_t>(id)]; a >= 0)
    return impl_->added[static_cast<std::size_t>(a)].content;
  return impl_->model->id_to_token(id);
}

bool tokenizer::is_special(token_id id) const {
  if (id < 0 || id >= impl_->id_limit) return false;
  const std::int32_t a = impl_->added_by_id[static_cast<std::size_t>(id)];
  return a >= 0 && impl_->added[static_cast<std::size_t>(a)].special;
}

std::optional<token_id> tokenizer::bos_id() const { return impl_->bos; }
std::optional<token_id> tokenizer::eos_id() const { return impl_->eos; }

}  // namespace mii
