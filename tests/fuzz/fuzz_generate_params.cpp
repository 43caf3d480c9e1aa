// Fuzzes generate_params: every field from the input bytes (NaN, infinities, huge, negative and
// denormal values included), validated by mii::validate. Parameters that pass are run through a
// real pipeline -- the 2-layer fixture Llama on the host backend, with a context of 16 tokens so
// that every run is short -- with a prompt from the input (text, possibly invalid UTF-8, or token ids,
// possibly outside the vocabulary), through the batch call or serve(). Checked after every run:
//  - invalid parameters make a batch call throw mii::error before any work and make a serve()
//    request end with an error response; prompts that cannot run get finish_reason error with
//    a message, the others complete;
//  - no KV block stays in use;
//  - the output honours the parameters: length limits, no stop string in the text, the streamed
//    deltas add up to generated_text, return_full_text prepends the prompt;
//  - a seeded or greedy request gives the same tokens when run again.
#include <algorithm>
#include <cmath>
#include <limits>

#include <mii/models/llama.hpp>
#include <mii/pipeline.hpp>

#include "fuzz_support.hpp"

namespace {

using mii::fuzz::byte_reader;
using mii::fuzz::finding;

constexpr std::int64_t context_tokens = 16;

mii::generation_pipeline& pipe() {
  static mii::generation_pipeline p = [] {
    mii::model_config cfg;
    cfg.backend = "host";
    cfg.host_threads = 1;
    cfg.max_length = context_tokens;
    cfg.kv_block_size = 4;
    cfg.kv_cache_blocks = 8;  // two sequences of the longest length
    cfg.max_ragged_batch_size = 16;
    cfg.show_progress = false;
    return mii::pipeline<mii::models::llama, mii::backend::host>(
        mii::fuzz::source_dir() / "tests/fixtures/models/llama2", cfg);
  }();
  return p;
}

// Interesting values first (by the low bits of a byte), raw bits otherwise.
double fuzz_double(byte_reader& in) {
  static const double table[] = {0.0, -0.0, 1.0, 0.5, 1e-45, 1e-300, 5e-324, 1e300, -1.0, 2.0,
                                 std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                                 std::numeric_limits<double>::quiet_NaN(), 1.0 + 1e-16, 0.9, 1e-8};
  const std::uint8_t pick = in.u8();
  if (pick < 0xC0) return table[pick % std::size(table)];
  return in.value<double>();
}
std::int64_t fuzz_int(byte_reader& in) {
  static const std::int64_t table[] = {0, 1, 2, 3, 5, 8, 15, 16, 17, 24, -1, 1000000,
                                       std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min(),
                                       std::int64_t(1) << 31, std::int64_t(1) << 32};
  const std::uint8_t pick = in.u8();
  if (pick < 0xC0) return table[pick % std::size(table)];
  return in.value<std::int64_t>();
}

bool contains_any(std::string_view text, const std::vector<std::string>& stops) {
  return std::any_of(stops.begin(), stops.end(),
                     [&](const std::string& s) { return !s.empty() && text.find(s) != std::string_view::npos; });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mii;
  byte_reader in(data, size);
  const std::uint8_t mode = in.u8();
  const bool serving = mode % 3 == 2;
  generate_params p;
  const std::uint8_t set = in.u8();  // which optional fields are set
  p.max_length = fuzz_int(in);
  if (set & 1) p.max_new_tokens = fuzz_int(in);
  p.min_new_tokens = fuzz_int(in);
  p.ignore_eos = set & 2;
  p.return_full_text = set & 4;
  p.do_sample = set & 8;
  p.top_p = fuzz_double(in);
  if (set & 16) p.top_k = fuzz_int(in);
  if (set & 32) p.temperature = fuzz_double(in);
  if (set & 64) p.seed = in.value<std::uint64_t>();
  for (std::uint8_t n = in.u8() % 4; n > 0; --n) p.stop.push_back(in.bytes(in.u8() % 6));
  const bool streaming = set & 128;
  const std::string prompt = in.rest();

  const bool valid = fuzz::accepts([&] { validate(p); });
  auto& engine = pipe();
  std::string streamed;
  std::size_t finished_events = 0;
  if (streaming)
    p.stream = [&](const stream_event& e) {
      if (e.prompt_index != (serving ? 7 : 0)) finding("stream event for prompt " + std::to_string(e.prompt_index));
      if (e.finished) ++finished_events;
      streamed += e.text;
    };

  // Ids for generate_ids (any value) and serve() (the encoded text; invalid UTF-8 ends the input).
  std::vector<token_id> ids;
  if (mode % 3 == 1)
    for (std::size_t i = 0; i + 1 < prompt.size(); i += 2)
      ids.push_back(token_id(std::int8_t(prompt[i])) * 256 + std::uint8_t(prompt[i + 1]));
  if (serving && !fuzz::accepts([&] { ids = engine.tok().encode(prompt); })) return 0;

  std::vector<response> out;
  const auto run = [&] {
    switch (mode % 3) {
      case 0: return engine({prompt}, p);
      case 1: return engine.generate_ids({ids}, p);
      default: {  // serve(): one request arriving at the first poll
        std::vector<response> got(1);
        bool submitted = false, done = false;
        engine.serve(
            [&](std::vector<serve_request>& incoming) {
              if (!submitted) incoming.push_back({7, ids, &p});
              submitted = true;
            },
            [&](std::size_t id, response r) {
              if (id != 7 || done) finding("serve() answered an unknown or finished request");
              got[0] = std::move(r);
              done = true;
            },
            [&] { return !submitted; });
        if (!done) finding("serve() returned without answering its request");
        return got;
      }
    }
  };
  const bool ran = fuzz::accepts([&] { out = run(); });
  if (engine.kv_blocks_in_use() != 0) finding("KV blocks still in use after a call");
  if (!ran) {
    // Batch calls refuse invalid parameters before any work; serve() answers them with an error
    // response instead.
    if (valid && !serving) finding("valid parameters were refused");
    if (!valid && serving) finding("serve() threw for invalid parameters instead of answering with an error");
    return 0;
  }
  if (!valid && !serving) finding("invalid parameters were accepted");
  if (out.size() != 1) finding("one prompt, " + std::to_string(out.size()) + " responses");
  const response& r = out[0];
  if (!valid && r.finish_reason != generation_finish_reason::error) finding("serve() ran a request with invalid parameters");
  if (r.finish_reason == generation_finish_reason::error) {
    if (r.error.empty()) finding("an error response without a message");
    return 0;
  }
  if (r.finish_reason == generation_finish_reason::none) finding("a response that did not finish");
  if (r.generated_length != std::int64_t(r.token_ids.size())) finding("generated_length != token_ids.size()");
  // max_length bounds prompt + generated unless max_new_tokens is given; the context always does.
  const std::int64_t longest = p.max_new_tokens ? context_tokens : std::min(p.max_length, context_tokens);
  if (r.generated_length < 1 || r.prompt_length + r.generated_length > longest)
    finding("generated " + std::to_string(r.generated_length) + " tokens after a prompt of " +
            std::to_string(r.prompt_length));
  if (p.max_new_tokens && r.generated_length > *p.max_new_tokens) finding("more than max_new_tokens generated");
  for (auto id : r.token_ids)
    if (id < 0 || id >= engine.shape().vocab) finding("sampled id " + std::to_string(id) + " outside the vocabulary");
  // return_full_text prepends the prompt: the text given, or for ids their decoding (the stop
  // strings and the stream concern only what follows).
  std::string_view text = r.generated_text;
  if (p.return_full_text) {
    const std::string given = mode % 3 == 0 ? prompt : engine.tok().decode(ids, /*skip_special_tokens=*/true);
    if (mode % 3 == 0 && !text.starts_with(given)) finding("return_full_text did not prepend the prompt");
    if (text.starts_with(given)) text.remove_prefix(given.size());
  }
  if (contains_any(text, p.stop)) finding("generated_text contains a stop string");
  if (streaming) {
    if (streamed != text) finding("streamed text != generated_text");
    if (finished_events != 1) finding(std::to_string(finished_events) + " finished stream events");
  }
  // Reproducible: greedy, or sampled with a seed.
  const bool greedy = !p.do_sample || (p.temperature && *p.temperature == 0.0);
  if ((greedy || p.seed) && !serving) {
    p.stream = nullptr;
    const auto again = run();
    if (again.at(0).token_ids != r.token_ids) finding("the same seeded request gave different tokens");
  }
  return 0;
}
