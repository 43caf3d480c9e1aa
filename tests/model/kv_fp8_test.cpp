// The FP8 KV cache (model_config.kv_cache_dtype = "fp8_e4m3", backend/kv_fp8.hpp) on the host
// backend:
// - rope_store_kv writes each key and value vector as mii::to_e4m3(x / s) with s =
//   fp8_scale(max |x|) (the conversions checked against torch in fp8_test.cpp) at the slot the
//   compute-dtype cache uses, and attention over it equals, bit for bit, attention over a cache
//   holding the dequantized values;
// - every fixture with the FP8 cache matches transformers whose cache stores the same rounded
//   keys and values (tests/fixtures/make_fp8_kv_references.py, torch on the GPU machine): logits
//   within 5e-4 relative (1e-4 for all fixtures but one: see fp8_kv_options) over whole prompts,
//   chunks and ragged steps, and the greedy tokens; the demo
//   model's perplexity equals torch's with the FP8 cache and with FP8 linears + FP8 cache;
// - through the engine: copy-on-write of shared blocks copies their scales (n samples equal the
//   prompt run alone), prefix caching changes no token, blocks cost what kv_fp8.hpp says, and a
//   dtype mii does not have is refused naming the field.
#include "check_fixture.hpp"

#include <cmath>
#include <cstring>
#include <random>

#include <mii/pipeline.hpp>

#include "expect_error.hpp"

using namespace mii;
using Catch::Matchers::Contains;
using mii::backend::fp8_kv_layer;
using mii::backend::kv_layer;
using mii::test::check_fixture;
using mii::test::fixture_check_options;
using host = mii::backend::host;

namespace {

// A key or value element within a few fp32 roundings of the midpoint between two e4m3 codes may
// round to one code in mii and to the other in torch (their fp32 sums run in different orders),
// and one element of a short head vector moving by a whole e4m3 step moves that token's logits
// more than one activation element does for the FP8 linears (fp8_test.cpp, 1e-4). Seen once over
// the 21 fixtures: qwen2, prompt 0, its last token only, 2.75e-4 of max |logit| — traced to one
// value element of that token at 5.7e-7 relative from a midpoint (x / s = -27.0000153 rounds to -28
// in mii; scaling mii's values by 1 - 1e-6 makes it round to -26 and the token match to 4.7e-7).
// Every other fixture is within 1e-4. Hence 5e-4 here, and the greedy near-tie rule of fp8_test.cpp.
fixture_check_options fp8_kv_options() {
  fixture_check_options o;
  o.config.kv_cache_dtype = "fp8_e4m3";
  o.reference_variant = "fp8kv";
  o.tolerance = 5e-4;
  o.greedy_near_tie = 2e-2;
  o.greedy_max_mismatches = 1;
  return o;
}

template <class Model>
void check_fp8_kv(const std::string& fixture) {
  check_fixture<Model>(fixture, fixture, fp8_kv_options());
}

// One ragged step over a cache with block ids interleaved across sequences: (cached, fresh)
// tokens per sequence.
struct kv_case {
  int heads = 4, kv_heads = 2, head_dim = 24, block_size = 4;
  std::vector<std::pair<int, int>> seqs{{0, 9}, {5, 1}, {13, 6}};
};

}  // namespace

TEST_CASE("FP8 KV ops: the bytes and scales of every vector, and attention equal to the dequantized cache's",
          "[model][kvfp8]") {
  const kv_case c;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  const int hd = c.head_dim, bs = c.block_size, n_seqs = int(c.seqs.size());
  int max_blocks = 0;
  for (auto [cached, fresh] : c.seqs) max_blocks = std::max(max_blocks, (cached + fresh + bs - 1) / bs);
  const int n_blocks = max_blocks * n_seqs;
  std::vector<std::vector<std::int32_t>> blocks(static_cast<std::size_t>(n_seqs)), tokens(static_cast<std::size_t>(n_seqs));
  std::vector<runtime::step_chunk> chunks;
  for (int s = 0; s < n_seqs; ++s) {
    for (int b = 0; b < max_blocks; ++b) blocks[std::size_t(s)].push_back(b * n_seqs + (s + b) % n_seqs);
    tokens[std::size_t(s)].assign(std::size_t(c.seqs[std::size_t(s)].first + c.seqs[std::size_t(s)].second), 0);
  }
  // Step 1 writes every sequence's cached tokens; step 2 the fresh ones, and attends.
  auto step = [&](bool second) {
    chunks.clear();
    for (int s = 0; s < n_seqs; ++s) {
      const auto [cached, fresh] = c.seqs[std::size_t(s)];
      const int begin = second ? cached : 0, count = second ? fresh : cached;
      if (count == 0) continue;
      chunks.push_back({std::span(tokens[std::size_t(s)]).subspan(std::size_t(begin), std::size_t(count)), begin,
                        blocks[std::size_t(s)], 0, runtime::step_chunk::logits::last});
    }
    runtime::step_builder builder;
    builder.build(chunks);
    return builder;
  };
  const backend::fp8_kv_layer<std::uint8_t> q8{nullptr, bs, c.kv_heads, hd};
  std::vector<std::uint8_t> fp8(std::size_t(n_blocks * q8.block_stride()), 0xcd);
  std::vector<float> plain(std::size_t(n_blocks) * 2 * std::size_t(c.kv_heads * bs * hd), NAN);
  host::context ctx(2);
  const backend::attention_shape shape{c.heads, c.kv_heads, hd, 0.3f, 0, 0.f};
  const std::int64_t stride = std::int64_t(c.heads + 2 * c.kv_heads) * hd;
  std::vector<float> qkv_last;
  runtime::step_builder last;
  for (bool second : {false, true}) {
    runtime::step_builder b = step(second);
    const auto batch = b.bind(b.data().data());
    std::vector<float> qkv(std::size_t(batch.n_tokens * stride));
    // Vectors of very different sizes (a scale per vector is the point), one all zero.
    for (std::size_t i = 0; i < qkv.size(); ++i) qkv[i] = normal(rng) * std::exp2(float(int(i / std::size_t(hd)) % 9 - 4));
    std::fill_n(qkv.begin() + (c.heads + 1) * hd, hd, 0.f);
    std::vector<float> qkv_copy = qkv;
    host::rope_store_kv<layers::rotary_style::none>(ctx, batch, qkv.data(), shape, {}, kv_layer<float>{plain.data(), bs, c.kv_heads, hd});
    host::rope_store_kv<layers::rotary_style::none>(ctx, batch, qkv_copy.data(), shape, {},
                                                    fp8_kv_layer<std::uint8_t>{fp8.data(), bs, c.kv_heads, hd});
    CHECK(qkv_copy == qkv);
    qkv_last = qkv;
    last = std::move(b);
  }
  // Every written vector: bytes and scale as the definition says; and the dequantized values
  // into a cache of floats.
  std::vector<float> dequantized = plain;
  int vectors = 0, zero_vectors = 0;
  for (int s = 0; s < n_seqs; ++s)
    for (int pos = 0; pos < c.seqs[std::size_t(s)].first + c.seqs[std::size_t(s)].second; ++pos)
      for (int which = 0; which < 2; ++which)
        for (int h = 0; h < c.kv_heads; ++h) {
          const std::int64_t block = blocks[std::size_t(s)][std::size_t(pos / bs)];
          const float* x = plain.data() + (((block * 2 + which) * c.kv_heads + h) * bs + pos % bs) * hd;
          const std::uint8_t* bytes = fp8.data() + block * q8.block_stride() + q8.value_at(which, h, pos % bs);
          float scale;
          std::memcpy(&scale, fp8.data() + block * q8.block_stride() + q8.scale_at(which, h, pos % bs), 4);
          float amax = 0;
          for (int i = 0; i < hd; ++i) amax = std::max(amax, std::fabs(x[i]));
          INFO("sequence " << s << ", position " << pos << (which ? ", values" : ", keys") << ", head " << h);
          REQUIRE(scale == fp8_scale(amax));
          zero_vectors += amax == 0;
          for (int i = 0; i < hd; ++i) {
            REQUIRE(bytes[i] == to_e4m3(x[i] / scale));
            dequantized[std::size_t(x - plain.data() + i)] = e4m3_to_float(bytes[i]) * scale;
          }
          ++vectors;
        }
  CHECK(vectors == 2 * c.kv_heads * (9 + 6 + 19));
  CHECK(zero_vectors >= 1);
  const auto batch = last.bind(last.data().data());
  std::vector<float> want(std::size_t(batch.n_tokens * c.heads * hd)), got(want.size());
  host::attention(ctx, batch, qkv_last.data(), shape, kv_layer<const float>{dequantized.data(), bs, c.kv_heads, hd},
                  want.data());
  host::attention(ctx, batch, qkv_last.data(), shape, fp8_kv_layer<const std::uint8_t>{fp8.data(), bs, c.kv_heads, hd},
                  got.data());
  CHECK(got == want);
  // And the rounding is real: the plain cache's attention differs.
  std::vector<float> unquantized(want.size());
  host::attention(ctx, batch, qkv_last.data(), shape, kv_layer<const float>{plain.data(), bs, c.kv_heads, hd},
                  unquantized.data());
  CHECK(unquantized != want);
}

TEST_CASE("llama-3 with the FP8 KV cache matches torch's FP8-cache reference", "[model][kvfp8]") {
  check_fp8_kv<models::llama>("llama3");
}
TEST_CASE("llama-2 and mistral (sliding window) with the FP8 KV cache match torch", "[model][kvfp8]") {
  check_fp8_kv<models::llama>("llama2");
  check_fp8_kv<models::mistral>("mistral");
}
TEST_CASE("qwen2, qwen3 (q/k norms) and their MoE with the FP8 KV cache match torch", "[model][kvfp8]") {
  check_fp8_kv<models::qwen2>("qwen2");
  check_fp8_kv<models::qwen3>("qwen3");
  check_fp8_kv<models::qwen2_moe>("qwen2_moe");
  check_fp8_kv<models::qwen3_moe>("qwen3_moe");
}
TEST_CASE("mixtral, phi-2 and phi-3 with the FP8 KV cache match torch", "[model][kvfp8]") {
  check_fp8_kv<models::mixtral>("mixtral");
  check_fp8_kv<models::phi>("phi2");
  check_fp8_kv<models::phi3>("phi3");
  check_fp8_kv<models::phi3>("phi3_cross");
}
TEST_CASE("falcon and opt with the FP8 KV cache match torch", "[model][kvfp8]") {
  check_fp8_kv<models::falcon>("falcon_new");
  check_fp8_kv<models::falcon>("falcon_old");
  check_fp8_kv<models::falcon>("falcon_rw");
  check_fp8_kv<models::opt>("opt");
  check_fp8_kv<models::opt>("opt_postln");
}
TEST_CASE("rope scalings and gemma 2 / 3 (soft-capping, per-layer windows) with the FP8 KV cache match torch",
          "[model][kvfp8]") {
  check_fp8_kv<models::llama>("llama_dynamic");
  check_fp8_kv<models::llama>("llama_linear");
  check_fp8_kv<models::gemma2>("gemma2");
  check_fp8_kv<models::gemma3>("gemma3");
}

TEST_CASE("demo model: perplexity with the FP8 KV cache (and with FP8 linears too) equals torch's", "[model][kvfp8]") {
  const auto dir = test::fixture_dir("demo-llama");
  const auto doc = mii::detail::json_document::from_file(dir / "perplexity_fp8kv.json");
  const auto root = mii::detail::json_object::expect(doc.root(), doc.origin(), "");
  test::model_reference seqs;
  seqs.prompts = test::int_lists(root, "sequences");
  REQUIRE(seqs.prompts.size() >= 10);
  auto perplexity = [&](const model_config& cfg) { return test::perplexity<models::llama>(dir, cfg, seqs); };
  model_config kv = test::fixture_config();
  kv.kv_cache_dtype = "fp8_e4m3";
  model_config both = kv;
  both.quantization = "fp8";
  const double base = perplexity(test::fixture_config()), with_kv = perplexity(kv), with_both = perplexity(both);
  const double torch_kv = double(*root.raw("perplexity_fp8kv")), torch_both = double(*root.raw("perplexity_fp8_fp8kv"));
  WARN("demo perplexity: unquantized " << base << ", FP8 KV " << with_kv << " (torch " << torch_kv << ", "
                                       << 100 * (with_kv / base - 1) << " %), FP8 linears + KV " << with_both
                                       << " (torch " << torch_both << ", " << 100 * (with_both / base - 1) << " %)");
  CHECK(std::fabs(with_kv / torch_kv - 1) < 1e-4);
  CHECK(std::fabs(with_both / torch_both - 1) < 1e-4);
  CHECK(with_kv != base);  // the cache really rounds
  CHECK(with_kv / base - 1 < 0.01);
  CHECK(with_both / base - 1 < 0.01);
}

namespace {

model_config engine_config() {
  model_config c;
  c.backend = "host";
  c.kv_block_size = 4;
  c.kv_cache_blocks = 256;
  c.max_length = 512;
  c.kv_cache_dtype = "fp8_e4m3";
  c.show_progress = false;
  return c;
}

generate_params sampled(std::int32_t n, std::uint64_t seed) {
  generate_params p;
  p.n = n;
  p.seed = seed;
  p.temperature = 1.3;
  p.max_new_tokens = 10;
  p.ignore_eos = true;
  return p;
}

}  // namespace

TEST_CASE("FP8 KV cache through the engine: shared blocks copied with their scales, prefix caching exact",
          "[model][kvfp8]") {
  const auto dir = test::fixture_dir("demo-llama");
  SECTION("n samples (copy-on-write of the prompt's partial block) equal the prompt run alone") {
    model_config c = engine_config();
    c.prefix_caching = false;
    auto pipe = mii::pipeline(dir, c);
    const std::string prompt = "DeepSpeed is a";  // a partial last block, shared until the samples write it
    const auto together = pipe(prompt, sampled(3, 77));
    REQUIRE(together.samples.size() == 3);
    for (std::uint64_t k = 0; k < 3; ++k) {
      INFO("sample " << k);
      CHECK(together.samples[k].token_ids == pipe(prompt, sampled(1, 77 + k)).token_ids);
    }
  }
  SECTION("greedy answers with prefix caching equal those without") {
    generate_params g;
    g.do_sample = false;
    g.max_new_tokens = 12;
    const std::vector<std::string> prompts = {"The quick brown fox jumps over", "The quick brown fox jumps over the lazy",
                                              "Seattle is"};
    model_config off = engine_config();
    off.prefix_caching = false;
    auto cached = mii::pipeline(dir, engine_config());
    auto plain = mii::pipeline(dir, off);
    const auto warm = cached(prompts, g);  // fills the prefix cache
    const auto again = cached(prompts, g);
    const auto fresh = plain(prompts, g);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      INFO("prompt " << i);
      CHECK(again[i].token_ids == fresh[i].token_ids);
      CHECK(warm[i].token_ids == fresh[i].token_ids);
    }
    CHECK(cached.stats().prefix_cache_hit_tokens > 0);
  }
}

TEST_CASE("FP8 KV cache: a block costs e4m3 bytes plus a scale per vector; other dtypes refused naming the field",
          "[model][kvfp8]") {
  const auto dir = test::fixture_dir("llama3");
  model_config c = engine_config();
  auto fp8 = mii::pipeline(dir, c);
  c.kv_cache_dtype = "auto";
  auto plain = mii::pipeline(dir, c);
  const auto cfg = io::load_hf_config(dir);
  const std::int64_t layers = cfg.num_hidden_layers, kv_heads = cfg.num_key_value_heads,
                     head_dim = cfg.head_dim > 0 ? cfg.head_dim : cfg.hidden_size / cfg.num_attention_heads;
  // [layers][blocks][keys and values, kv_heads, block_size] vectors: head_dim e4m3 bytes + a 4-byte
  // scale each on the FP8 cache, head_dim fp32 values on the host's compute-dtype cache.
  const std::int64_t vectors = layers * 256 * 2 * kv_heads * 4;
  CHECK(std::int64_t(fp8.memory().kv_cache_bytes) == vectors * (head_dim + 4));
  CHECK(std::int64_t(plain.memory().kv_cache_bytes) == vectors * head_dim * 4);
  for (const char* bad : {"fp8_e5m2", "int8", "bf16"}) {
    c.kv_cache_dtype = bad;
    const std::string msg = MII_ERROR_MESSAGE(mii::pipeline(dir, c));
    CHECK_THAT(msg, Contains("model_config.kv_cache_dtype") && Contains(bad) && Contains("fp8_e4m3"));
  }
}
