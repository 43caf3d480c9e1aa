// Qwen3, Qwen3-MoE and Qwen2-MoE against transformers (tests/fixtures/make_fixtures.py): logits of
// whole prompts, of chunks through the KV cache and of ragged steps within 1e-5, and the 32 greedy
// tokens. Then what must not load: impossible config values and weights of the wrong shape are
// refused naming the file and the field or tensor, and a config that places the sparse layers
// elsewhere than the weights do cannot load silently. The sparse-layer rule, the router and
// shared-expert settings and their tensor-parallel slices are checked on hand-written configs.
#include "check_fixture.hpp"

#include <mii/io/hf_config.hpp>
#include <mii/io/safetensors.hpp>
#include <mii/model/model_shape.hpp>

#include "expect_error.hpp"

using namespace mii;
using Catch::Matchers::Contains;
using mii::test::check_fixture;
using mii::test::harness;
using mii::test::tolerance;
using mii::test::whole_prompts;
namespace fs = std::filesystem;

TEST_CASE("qwen3 fixture (q/k norms, head_dim 32 with 4 heads on hidden 64, tied) matches transformers", "[model]") {
  check_fixture<models::qwen3>("qwen3", "qwen3");
}
TEST_CASE("qwen3-moe fixture (top-2 of 8 renormalised, layer 1 dense) matches transformers", "[model]") {
  check_fixture<models::qwen3_moe>("qwen3_moe", "qwen3_moe");
}
TEST_CASE("qwen3-moe in transformers 5's stacked-expert layout matches transformers", "[model]") {
  check_fixture<models::qwen3_moe>("qwen3_moe_v5layout", "qwen3_moe");
}
TEST_CASE("qwen2-moe fixture (shared expert behind a sigmoid gate, top-2 not renormalised) matches transformers",
          "[model]") {
  check_fixture<models::qwen2_moe>("qwen2_moe", "qwen2_moe");
}

namespace {

// A copy of a fixture that a test may break in one place.
struct fixture_copy {
  std::string fixture;
  test::temp_dir dir{"qwen"};
  explicit fixture_copy(std::string name) : fixture(std::move(name)) { test::copy_dir(test::fixture_dir(fixture), dir.path()); }
  fs::path config() const { return dir / "config.json"; }
  void edit_config(std::string_view from, std::string_view to) const {
    test::write_text(config(), test::replace_once(test::read_text(config()), from, to));
  }
  // Rewrites model.safetensors with tensor `name` given `shape` (its leading bytes, or zeros).
  void reshape_tensor(const std::string& name, std::vector<std::int64_t> shape) const {
    const auto original = io::safetensors_file::open(test::fixture_dir(fixture) / "model.safetensors");
    std::vector<io::tensor_to_write> out;
    std::vector<std::byte> data;
    bool found = false;
    for (const auto& t : original.tensors()) {
      if (t.name != name) {
        out.push_back({t.name, t.type, t.shape, t.bytes});
        continue;
      }
      found = true;
      std::int64_t n = 1;
      for (auto d : shape) n *= d;
      data.assign(std::size_t(n) * dtype_size(t.type), std::byte{0});
      std::copy_n(t.bytes.begin(), std::min(data.size(), t.bytes.size()), data.begin());
      out.push_back({t.name, t.type, shape, data});
    }
    REQUIRE(found);
    io::write_safetensors(dir / "model.safetensors", out);
  }
  template <class Model>
  std::string load_error() const {
    return MII_ERROR_MESSAGE(harness<Model>(dir.path()));
  }
};

}  // namespace

TEST_CASE("qwen-moe: impossible router and sparse-layer settings are refused, naming config.json and the field", "[model]") {
  fixture_copy c("qwen3_moe");
  const std::string where = c.config().string();
  SECTION("more experts per token than experts") {
    c.edit_config("\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": 9");
    CHECK_THAT(c.load_error<models::qwen3_moe>(),
               Contains(where) && Contains("'num_experts_per_tok' is 9") && Contains("= 8]"));
  }
  SECTION("no expert per token") {
    c.edit_config("\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": 0");
    CHECK_THAT(c.load_error<models::qwen3_moe>(), Contains(where) && Contains("'num_experts_per_tok' is 0"));
  }
  SECTION("decoder_sparse_step 0 (transformers divides by it)") {
    c.edit_config("\"decoder_sparse_step\": 1", "\"decoder_sparse_step\": 0");
    CHECK_THAT(c.load_error<models::qwen3_moe>(), Contains(where) && Contains("'decoder_sparse_step'") && Contains("got 0"));
  }
  SECTION("an mlp_only_layers entry that is no layer") {
    const std::string text = test::read_text(c.config());
    const auto at = text.find("\"mlp_only_layers\"");
    REQUIRE(at != std::string::npos);
    const auto close = text.find(']', at);
    test::write_text(c.config(), text.substr(0, at) + "\"mlp_only_layers\": [1, 3" + text.substr(close));
    CHECK_THAT(c.load_error<models::qwen3_moe>(),
               Contains(where) && Contains("'mlp_only_layers'") && Contains("[1] is 3") && Contains("num_hidden_layers = 3"));
  }
  SECTION("an expert size of 0") {
    c.edit_config("\"moe_intermediate_size\": 32", "\"moe_intermediate_size\": 0");
    CHECK_THAT(c.load_error<models::qwen3_moe>(), Contains(where) && Contains("'moe_intermediate_size'"));
  }
}

TEST_CASE("qwen-moe: a config that puts the sparse layers elsewhere than the weights does not load", "[model]") {
  // The fixture's layers 0 and 2 are routed, layer 1 dense (mlp_only_layers = [1]); with
  // decoder_sparse_step 2 and no exception layer 0 would be dense, and its dense MLP is not in
  // the checkpoint.
  fixture_copy c("qwen3_moe");
  const std::string text = test::read_text(c.config());
  const auto at = text.find("\"mlp_only_layers\"");
  REQUIRE(at != std::string::npos);
  test::write_text(c.config(), text.substr(0, at) + "\"mlp_only_layers\": [" + text.substr(text.find(']', at)));
  c.edit_config("\"decoder_sparse_step\": 1", "\"decoder_sparse_step\": 2");
  CHECK_THAT(c.load_error<models::qwen3_moe>(), Contains("tensor 'model.layers.0.mlp.") && Contains("is missing"));
}

TEST_CASE("qwen3: q/k norm weights of the wrong shape are refused, naming the file, the tensor and both shapes", "[model]") {
  fixture_copy c("qwen3");
  c.reshape_tensor("model.layers.1.self_attn.k_norm.weight", {16});
  CHECK_THAT(c.load_error<models::qwen3>(), Contains("model.safetensors") &&
                                                Contains("model.layers.1.self_attn.k_norm.weight") &&
                                                Contains("[16]") && Contains("[32]"));
}

TEST_CASE("qwen2-moe: a shared expert gate of the wrong shape is refused", "[model]") {
  fixture_copy c("qwen2_moe");
  c.reshape_tensor("model.layers.1.mlp.shared_expert_gate.weight", {2, 64});
  CHECK_THAT(c.load_error<models::qwen2_moe>(), Contains("model.safetensors") &&
                                                    Contains("model.layers.1.mlp.shared_expert_gate.weight") &&
                                                    Contains("[2, 64]") && Contains("[1, 64]"));
}

// The router option must reach the computation: Qwen2-MoE renormalised like Mixtral is another
// model, whose logits the fixture tolerance must tell apart.
TEST_CASE("qwen2-moe with norm_topk_prob switched on no longer matches transformers", "[model]") {
  const auto ref = test::load_reference("qwen2_moe");
  fixture_copy c("qwen2_moe");
  c.edit_config("\"norm_topk_prob\": false", "\"norm_topk_prob\": true");
  harness<models::qwen2_moe> h(c.dir.path());
  REQUIRE(h.runner.shape().renormalise_topk);
  const auto got = whole_prompts(h, ref);
  double worst = 0;
  for (std::size_t s = 0; s < got.size(); ++s)
    worst = std::max(worst, test::max_relative_error(got[s].data(), ref.logits[s].data(), got[s].size()));
  INFO("max relative error with norm_topk_prob true: " << worst);
  CHECK(worst > 100 * tolerance);
}

namespace {

model::model_shape shape_of(const model::arch_description& a, std::string_view json, int tp = 1, int rank = 0) {
  return model::resolve_shape(a, io::parse_hf_config(json, "qwen/config.json"), tp, rank);
}
const std::string qwen2_moe_json = R"({"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe",
  "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 6, "num_attention_heads": 4,
  "num_key_value_heads": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48, "num_experts": 6,
  "num_experts_per_tok": 2, "decoder_sparse_step": 2, "mlp_only_layers": [3], "use_sliding_window": false,
  "sliding_window": 0})";

}  // namespace

TEST_CASE("qwen-moe shapes: sparse layers, router and shared expert follow transformers' rules", "[model]") {
  const auto a = models::qwen2_moe::describe(models::qwen2_moe::name);
  SECTION("decoder_sparse_step 2 with layer 3 in mlp_only_layers: layers 1 and 5 routed") {
    const auto s = shape_of(a, qwen2_moe_json);
    CHECK(s.sparse_mlp == std::vector<bool>{false, true, false, false, false, true});
    CHECK(s.has_dense_mlp());
    CHECK(s.ffn == 128);
    CHECK(s.expert_ffn == 32);
    CHECK(s.shared_ffn == 48);
    CHECK(s.shared_expert_gated);
    CHECK_FALSE(s.renormalise_topk);  // Qwen2-MoE's default
    CHECK(s.experts == 6);
    CHECK(s.top_k == 2);
    CHECK(s.qkv_bias);
    CHECK_FALSE(s.o_bias);
    CHECK_FALSE(s.qk_norm);
  }
  SECTION("tensor parallelism splits the dense, expert and shared inner sizes alike") {
    const auto s = shape_of(a, qwen2_moe_json, 2, 1);
    CHECK(s.local_ffn == 64);
    CHECK(s.local_expert_ffn == 16);
    CHECK(s.local_shared_ffn == 24);
  }
  SECTION("a shared expert size tensor_parallel does not divide is refused, naming the field") {
    CHECK(shape_of(a, qwen2_moe_json, 4, 3).local_shared_ffn == 12);
    const std::string j = test::replace_once(qwen2_moe_json, "\"shared_expert_intermediate_size\": 48",
                                             "\"shared_expert_intermediate_size\": 50");
    CHECK_THAT(MII_ERROR_MESSAGE(shape_of(a, j, 4, 0)), Contains("qwen/config.json") &&
                                                            Contains("'shared_expert_intermediate_size' is 50") &&
                                                            Contains("tensor_parallel = 4"));
  }
  SECTION("qwen2_moe's q/k/v biases follow config.qkv_bias") {
    std::string j = qwen2_moe_json;
    j.insert(j.size() - 1, R"(, "qkv_bias": false)");
    CHECK_THAT(MII_ERROR_MESSAGE(shape_of(a, j)), Contains("mii::models::qwen2_moe was built with qkv bias on"));
  }
}

TEST_CASE("qwen3 and qwen3-moe shapes: q/k norms, head_dim, num_experts spellings", "[model]") {
  SECTION("qwen3 without head_dim takes transformers' default 128, not hidden / heads") {
    const auto s = shape_of(models::qwen3::describe(models::qwen3::name),
                            R"({"model_type": "qwen3", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                                "intermediate_size": 96, "num_hidden_layers": 2, "vocab_size": 512})");
    CHECK(s.head_dim == 128);
    CHECK(s.qk_norm);
    CHECK(s.qk_norm_offset == 0.0f);
    CHECK(s.sparse_mlp.empty());
  }
  const auto a = models::qwen3_moe::describe(models::qwen3_moe::name);
  const std::string base = R"({"model_type": "qwen3_moe", "hidden_size": 64, "num_attention_heads": 4,
      "num_key_value_heads": 2, "intermediate_size": 96, "moe_intermediate_size": 16, "num_hidden_layers": 4,
      "vocab_size": 512, "norm_topk_prob": true, "num_experts_per_tok": 2, )";
  SECTION("num_experts, or num_local_experts as transformers 5's attribute map may write it") {
    for (const char* key : {"\"num_experts\": 4}", "\"num_local_experts\": 4}"}) {
      INFO(key);
      const auto s = shape_of(a, base + key);
      CHECK(s.experts == 4);
      CHECK(s.renormalise_topk);
      CHECK(s.shared_ffn == 0);
      CHECK(s.sparse_mlp == std::vector<bool>(4, true));
      CHECK_FALSE(s.has_dense_mlp());
      CHECK(s.head_dim == 16);  // Qwen3MoeConfig has no head_dim default: hidden / heads
    }
  }
  SECTION("qwen3_moe's sliding window is refused like qwen2's") {
    CHECK_THAT(MII_ERROR_MESSAGE(shape_of(a, base + R"("num_experts": 4, "use_sliding_window": true})")),
               Contains("'use_sliding_window' is true") && Contains("Qwen3-MoE"));
  }
}

// The released checkpoints' config.json (transformers 4.x spelling: rope_theta, torch_dtype, a
// sliding_window that use_sliding_window leaves off), resolved as mii loads them.
TEST_CASE("hub configs of Qwen3-8B, Qwen3-30B-A3B and Qwen1.5-MoE-A2.7B resolve to their shapes", "[model]") {
  SECTION("Qwen3-8B") {
    const auto s = shape_of(models::qwen3::describe(models::qwen3::name), R"({
      "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
      "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
      "initializer_range": 0.02, "intermediate_size": 12288, "max_position_embeddings": 40960,
      "max_window_layers": 36, "model_type": "qwen3", "num_attention_heads": 32, "num_hidden_layers": 36,
      "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
      "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
      "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})",
                            2, 1);
    CHECK(s.head_dim == 128);
    CHECK(s.local_heads == 16);
    CHECK(s.local_kv_heads == 4);
    CHECK(s.kv_head_begin == 4);
    CHECK(s.local_ffn == 6144);
    CHECK_FALSE(s.window);
    CHECK(s.rope.theta == 1e6);
    CHECK(s.qk_norm);
    CHECK_FALSE(s.qkv_bias);
  }
  SECTION("Qwen3-30B-A3B") {
    const auto s = shape_of(models::qwen3_moe::describe(models::qwen3_moe::name), R"({
      "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
      "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128,
      "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144,
      "max_position_embeddings": 40960, "max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe",
      "moe_intermediate_size": 768, "norm_topk_prob": true, "num_attention_heads": 32, "num_experts": 128,
      "num_experts_per_tok": 8, "num_hidden_layers": 48, "num_key_value_heads": 4, "output_router_logits": false,
      "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
      "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
      "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})",
                            4, 2);
    CHECK(s.experts == 128);
    CHECK(s.top_k == 8);
    CHECK(s.renormalise_topk);
    CHECK(s.sparse_mlp == std::vector<bool>(48, true));
    CHECK(s.local_expert_ffn == 192);
    CHECK(s.q_dim() == 8 * 128);
    CHECK(s.local_kv_heads == 1);
    CHECK(s.kv_head_begin == 2);
  }
  SECTION("Qwen1.5-MoE-A2.7B") {
    const auto s = shape_of(models::qwen2_moe::describe(models::qwen2_moe::name), R"({
      "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
      "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
      "intermediate_size": 5632, "max_position_embeddings": 8192, "max_window_layers": 21, "model_type": "qwen2_moe",
      "num_attention_heads": 16, "num_hidden_layers": 24, "num_key_value_heads": 16, "rms_norm_eps": 1e-06,
      "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
      "transformers_version": "4.40.0.dev0", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936,
      "decoder_sparse_step": 1, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
      "num_experts_per_tok": 4, "num_experts": 60, "norm_topk_prob": false, "output_router_logits": false,
      "router_aux_loss_coef": 0.001})");
    CHECK_FALSE(s.window);  // use_sliding_window is false: the 32768 is not used
    CHECK(s.experts == 60);
    CHECK(s.top_k == 4);
    CHECK_FALSE(s.renormalise_topk);
    CHECK(s.expert_ffn == 1408);
    CHECK(s.shared_ffn == 5632);
    CHECK(s.shared_expert_gated);
    CHECK(s.sparse_mlp == std::vector<bool>(24, true));
    CHECK(s.qkv_bias);
    CHECK(s.head_dim == 128);
  }
}
