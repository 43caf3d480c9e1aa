#include <mii/runtime/control_packet.hpp>

#include <bit>
#include <cstring>

#include <mii/error.hpp>

namespace mii::runtime {

namespace {

constexpr std::int32_t packet_magic = 0x6d696931;  // "mii1"

class word_writer {
 public:
  void i32(std::int32_t v) { w_.push_back(v); }
  void u64(std::uint64_t v) {
    w_.push_back(std::int32_t(std::uint32_t(v >> 32)));
    w_.push_back(std::int32_t(std::uint32_t(v)));
  }
  void i64(std::int64_t v) { u64(std::uint64_t(v)); }
  void f32(float v) { w_.push_back(std::bit_cast<std::int32_t>(v)); }
  void str(const std::string& s) {
    i64(std::int64_t(s.size()));
    const std::size_t at = w_.size();
    w_.resize(at + (s.size() + 3) / 4, 0);
    if (!s.empty()) std::memcpy(w_.data() + at, s.data(), s.size());
  }
  void ids(const std::vector<token_id>& v) {
    i64(std::int64_t(v.size()));
    w_.insert(w_.end(), v.begin(), v.end());
  }
  std::vector<std::int32_t> take() { return std::move(w_); }

 private:
  std::vector<std::int32_t> w_;
};

class word_reader {
 public:
  explicit word_reader(std::span<const std::int32_t> w) : w_(w) {}
  std::int32_t i32() {
    need(1);
    return w_[at_++];
  }
  std::uint64_t u64() {
    need(2);
    const auto hi = std::uint32_t(w_[at_]), lo = std::uint32_t(w_[at_ + 1]);
    at_ += 2;
    return std::uint64_t(hi) << 32 | lo;
  }
  std::int64_t i64() { return std::int64_t(u64()); }
  float f32() { return std::bit_cast<float>(i32()); }
  std::size_t count() {
    const std::int64_t n = i64();
    if (n < 0 || std::uint64_t(n) > std::uint64_t(w_.size()) * 4) bad();
    return std::size_t(n);
  }
  std::string str() {
    const std::size_t n = count(), words = (n + 3) / 4;
    need(words);
    std::string s(n, '\0');
    if (n) std::memcpy(s.data(), w_.data() + at_, n);
    at_ += words;
    return s;
  }
  std::vector<token_id> ids() {
    const std::size_t n = count();
    need(n);
    std::vector<token_id> v(w_.begin() + std::ptrdiff_t(at_), w_.begin() + std::ptrdiff_t(at_ + n));
    at_ += n;
    return v;
  }
  bool at_end() const { return at_ == w_.size(); }
  [[noreturn]] void bad() const {
    fail("internal: a control packet of ", w_.size(), " words is malformed at word ", at_,
         " (the tensor-parallel ranks are out of step)");
  }

 private:
  void need(std::size_t n) const {
    if (w_.size() - at_ < n) bad();
  }
  std::span<const std::int32_t> w_;
  std::size_t at_ = 0;
};

void put_request(word_writer& w, const request& r) {
  w.u64(r.id);
  w.u64(r.index);
  w.str(r.prompt_text);
  w.ids(r.tokens);
  w.i64(r.prompt_len);
  w.i64(r.rope_len);
  w.u64(r.kv_variant);
  w.i64(r.max_new);
  w.i64(r.min_new);
  w.i32(std::int32_t(r.ignore_eos) | std::int32_t(r.return_full_text) << 1 | std::int32_t(r.sampling.greedy) << 2);
  w.f32(r.sampling.temperature);
  w.i32(r.sampling.top_k);
  w.f32(r.sampling.top_p);
  w.f32(r.sampling.min_p);
  w.u64(r.sampling.seed);
  w.f32(r.repetition_penalty);
  w.f32(r.presence_penalty);
  w.f32(r.frequency_penalty);
  w.i64(std::int64_t(r.logit_bias.size()));
  for (const auto& [id, bias] : r.logit_bias) {
    w.i32(id);
    w.f32(bias);
  }
  w.i32(r.logprobs);
  w.i32(r.prompt_logprobs);
  w.i32(r.n);
  w.i64(std::int64_t(r.stop_strings.size()));
  for (const auto& s : r.stop_strings) w.str(s);
}

std::unique_ptr<request> get_request(word_reader& in) {
  auto r = std::make_unique<request>();
  r->id = in.u64();
  r->index = std::size_t(in.u64());
  r->prompt_text = in.str();
  r->tokens = in.ids();
  r->prompt_len = in.i64();
  r->rope_len = in.i64();
  r->kv_variant = in.u64();
  r->max_new = in.i64();
  r->min_new = in.i64();
  const std::int32_t flags = in.i32();
  r->ignore_eos = flags & 1;
  r->return_full_text = flags & 2;
  r->sampling.greedy = flags & 4;
  r->sampling.temperature = in.f32();
  r->sampling.top_k = in.i32();
  r->sampling.top_p = in.f32();
  r->sampling.min_p = in.f32();
  r->sampling.seed = in.u64();
  r->repetition_penalty = in.f32();
  r->presence_penalty = in.f32();
  r->frequency_penalty = in.f32();
  const std::size_t biases = in.count();
  for (std::size_t i = 0; i < biases; ++i) {
    const std::int32_t id = in.i32();
    r->logit_bias.emplace_back(id, in.f32());
  }
  r->logprobs = in.i32();
  r->prompt_logprobs = in.i32();
  r->n = in.i32();
  if (r->n < 1) in.bad();
  const std::size_t stops = in.count();
  for (std::size_t i = 0; i < stops; ++i) r->stop_strings.push_back(in.str());
  if (r->prompt_len != std::int64_t(r->tokens.size())) in.bad();
  r->total_tokens = r->prompt_len;
  r->max_total = r->prompt_len + r->max_new;
  return r;
}

}  // namespace

std::vector<std::int32_t> encode(const control_packet& p) {
  word_writer w;
  w.i32(packet_magic);
  w.i32(p.stop ? 1 : 0);
  w.i64(std::int64_t(p.cancels.size()));
  for (const auto& c : p.cancels) {
    w.u64(c.id);
    w.i32(std::int32_t(c.why));
    w.str(c.message);
  }
  w.i64(std::int64_t(p.requests.size()));
  for (const auto& r : p.requests) put_request(w, *r);
  return w.take();
}

control_packet decode(std::span<const std::int32_t> words) {
  word_reader in(words);
  if (in.i32() != packet_magic) in.bad();
  control_packet p;
  p.stop = in.i32() != 0;
  const std::size_t cancels = in.count();
  for (std::size_t i = 0; i < cancels; ++i) {
    cancel_order c;
    c.id = in.u64();
    c.why = generation_finish_reason(in.i32());
    c.message = in.str();
    p.cancels.push_back(std::move(c));
  }
  const std::size_t requests = in.count();
  for (std::size_t i = 0; i < requests; ++i) p.requests.push_back(get_request(in));
  if (!in.at_end()) in.bad();
  return p;
}

}  // namespace mii::runtime
