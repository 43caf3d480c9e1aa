// Block-wise FP8 checkpoints as transformers writes them ("quant_method": "fp8",
// FineGrainedFP8Config; DeepSeek-V3's layout): e4m3 weights with one weight_scale_inv per block
// of weight_block_size, inputs quantized per group of the block's columns at run time.
// - Checkpoints written by transformers 5.17 on the GPU machine
//   (tests/fixtures/make_fp8_block_references.py): llama3 in 32 x 64 blocks and qwen2 (q/k/v
//   biases) in 16 x 32 blocks and qwen3-moe (FP8 experts) in 16 x 16 blocks match torch's logits
//   of the same bytes and scales within 1e-4, and their greedy tokens.
// - The host op against a direct double-precision computation of the scheme.
// - Blocks that fused rows do not start on (v_proj at row 160 of q|k|v in 64-row blocks) are
//   copied per row: the results are bit for bit those of a checkpoint that stores one scale per
//   row and block column; the plan keeps the blocks elsewhere, and counts the scales' bytes.
// - What cannot run is refused naming the file, the tensor and the field.
#include "check_fixture.hpp"

#include <cmath>
#include <random>
#include <regex>

#include <mii/backend/host/host_backend.hpp>

#include "expect_error.hpp"

using namespace mii;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

test::fixture_check_options block_options() {
  test::fixture_check_options o;
  o.reference_variant = "fp8";
  o.tolerance = 1e-4;  // as every FP8 fixture (fp8_test.cpp, fp8_checkpoint_test.cpp)
  o.greedy_near_tie = 2e-2;
  o.greedy_max_mismatches = 1;
  return o;
}

// A copy of `fixture` with its dense linear weights quantized by mii's host conversions in R x C
// blocks and written as transformers does (weight_scale_inv beside each weight, config.json's
// quantization_config). per_row_scales: the same bytes and scales, but the scale tensors hold one
// row per weight row (each a copy of its block's), declared as 1 x C blocks.
struct block_quantized_copy {
  test::temp_dir dir{"fp8block"};
  std::vector<std::vector<std::byte>> storage;
  std::vector<io::tensor_to_write> tensors;

  block_quantized_copy(const std::string& fixture, std::int64_t R, std::int64_t C, bool per_row_scales = false) {
    test::copy_dir(test::fixture_dir(fixture), dir.path());
    set_config(per_row_scales ? 1 : R, C);
    const auto original = io::safetensors_file::open(test::fixture_dir(fixture) / "model.safetensors");
    static const std::regex linear(R"(.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight)");
    storage.reserve(original.tensors().size() * 2);
    for (const auto& t : original.tensors()) {
      if (!std::regex_match(t.name, linear)) {
        storage.emplace_back(t.bytes.begin(), t.bytes.end());
        tensors.push_back({t.name, t.type, t.shape, storage.back()});
        continue;
      }
      const std::int64_t rows = t.shape[0], cols = t.shape[1], br = (rows + R - 1) / R, bc = (cols + C - 1) / C;
      std::vector<float> w(std::size_t(rows * cols)), block_scale(std::size_t(br * bc));
      io::convert(t, dtype::f32, w.data());
      for (std::int64_t i = 0; i < br; ++i)
        for (std::int64_t j = 0; j < bc; ++j) {
          float amax = 0;
          for (std::int64_t r = i * R; r < std::min(rows, (i + 1) * R); ++r)
            for (std::int64_t c = j * C; c < std::min(cols, (j + 1) * C); ++c)
              amax = std::max(amax, std::fabs(w[std::size_t(r * cols + c)]));
          block_scale[std::size_t(i * bc + j)] = fp8_scale(amax);
        }
      std::vector<std::byte> q(std::size_t(rows * cols));
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < cols; ++c)
          q[std::size_t(r * cols + c)] =
              std::byte(to_e4m3(w[std::size_t(r * cols + c)] / block_scale[std::size_t((r / R) * bc + c / C)]));
      const std::int64_t scale_rows = per_row_scales ? rows : br;
      std::vector<std::byte> s(std::size_t(scale_rows * bc) * 4);
      for (std::int64_t i = 0; i < scale_rows; ++i)
        std::memcpy(s.data() + i * bc * 4, &block_scale[std::size_t((per_row_scales ? i / R : i) * bc)], std::size_t(bc) * 4);
      storage.push_back(std::move(q));
      tensors.push_back({t.name, dtype::f8_e4m3, t.shape, storage.back()});
      storage.push_back(std::move(s));
      tensors.push_back({t.name + "_scale_inv", dtype::f32, {scale_rows, bc}, storage.back()});
    }
  }
  void set_config(std::int64_t R, std::int64_t C, const std::string& extra = "") {
    std::string config = test::read_text(dir / "config.json");
    if (const auto at = config.find("\"quantization_config\""); at != std::string::npos) {
      const auto end = config.find('}', at);
      config.erase(at, end + 2 - at);  // the fixture's own (a transformers-written copy)
    }
    test::write_text(dir / "config.json", "{\"quantization_config\": {\"quant_method\": \"fp8\", " + extra +
                                              "\"activation_scheme\": \"dynamic\", \"weight_block_size\": [" +
                                              std::to_string(R) + ", " + std::to_string(C) + "]}, " +
                                              config.substr(config.find('{') + 1));
  }
  io::tensor_to_write* find(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return &t;
    FAIL("no tensor " << name);
    return nullptr;
  }
  void write() { io::write_safetensors(dir / "model.safetensors", tensors); }
};

std::vector<std::vector<float>> logits_of(const fs::path& dir) {
  test::harness<models::llama> h(dir, test::fixture_config());
  const auto ref = test::load_reference("llama3");
  return test::run_pieces(h.runner, ref, test::whole_prompt_steps(test::prompt_lengths(ref)));
}

model::weight_plan plan_of(const fs::path& dir, int tp = 1, int rank = 0) {
  const auto arch = models::llama::describe(models::llama::name);
  const auto c = io::load_hf_config(dir);
  static std::optional<io::checkpoint> ckpt;  // the plan points into it
  ckpt.emplace(io::checkpoint::open(dir));
  return model::plan_weights(arch, model::resolve_shape(arch, c, tp, rank), *ckpt, model::weight_quantization::none,
                             c.quantization);
}

}  // namespace

TEST_CASE("block-wise FP8 checkpoint written by transformers (llama3, 32 x 64 blocks) matches torch", "[model][fp8]") {
  test::check_fixture<models::llama>("llama3_fp8_block32x64", "llama3_fp8_block32x64", block_options());
}

TEST_CASE("block-wise FP8 checkpoint written by transformers (qwen2, qkv bias, 16 x 32 blocks) matches torch",
          "[model][fp8]") {
  test::check_fixture<models::qwen2>("qwen2_fp8_block16x32", "qwen2_fp8_block16x32", block_options());
}

TEST_CASE("block-wise FP8 MoE checkpoint written by transformers (qwen3-moe, 16 x 16 blocks) matches torch",
          "[model][fp8]") {
  // transformers writes each expert's gate / up / down with its own weight_scale_inv (the hub's
  // layout, as Qwen3-30B-A3B-FP8 is released); the router stays float32.
  test::check_fixture<models::qwen3_moe>("qwen3_moe_fp8_block16x16", "qwen3_moe_fp8_block16x16", block_options());
}

TEST_CASE("host linear_fp8 with block scales computes the block-wise scheme", "[model][fp8]") {
  // y[r][o] = sum over groups g of (sum_i xq * wq) * xs[r][g] * ws[o / R][g] + bias, against a
  // direct computation in double over the bytes the op quantized x to.
  using backend::host;
  const std::int64_t rows = 3, in = 96, out = 10;
  for (const backend::fp8_blocks blocks : {backend::fp8_blocks{4, 32}, backend::fp8_blocks{1, 96}, backend::fp8_blocks{16, 48}}) {
    INFO("blocks " << blocks.rows << " x " << blocks.cols);
    std::mt19937 rng(42);
    std::normal_distribution<float> normal;
    std::vector<float> x(static_cast<std::size_t>(rows * in)), bias(static_cast<std::size_t>(out));
    for (auto& v : x) v = normal(rng);
    x[5] = 40.0f;  // an outlier: only its own group's scale grows
    for (auto& v : bias) v = normal(rng);
    const std::int64_t groups = blocks.groups(in), scale_rows = blocks.scale_rows(out);
    std::vector<std::uint8_t> wq(std::size_t(out * in));
    for (auto& b : wq) b = to_e4m3(normal(rng) * 100.0f);
    std::vector<float> ws(std::size_t(scale_rows * groups));
    for (auto& s : ws) s = std::uniform_real_distribution<float>(1e-3f, 1e-2f)(rng);
    std::vector<std::uint8_t> xq(std::size_t(rows * in));
    std::vector<float> xs(std::size_t(rows * groups)), y(std::size_t(rows * out), 1.0f);
    const backend::fp8_weight w{wq.data(), ws.data(), nullptr, blocks, groups};
    host::context ctx(2);
    host::linear_fp8(ctx, x.data(), rows, in, w, out, bias.data(), y.data(), true, {xq.data(), xs.data()});
    const auto& value = e4m3_values();
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t g = 0; g < groups; ++g) {  // each group quantized on its own
        float amax = 0;
        for (std::int64_t i = g * blocks.cols; i < (g + 1) * blocks.cols; ++i) amax = std::max(amax, std::fabs(x[std::size_t(r * in + i)]));
        REQUIRE(xs[std::size_t(r * groups + g)] == fp8_scale(amax));
        for (std::int64_t i = g * blocks.cols; i < (g + 1) * blocks.cols; ++i)
          REQUIRE(xq[std::size_t(r * in + i)] == to_e4m3(x[std::size_t(r * in + i)] / fp8_scale(amax)));
      }
      for (std::int64_t o = 0; o < out; ++o) {
        double want = 1.0 + bias[std::size_t(o)];
        for (std::int64_t i = 0; i < in; ++i)
          want += double(value[xq[std::size_t(r * in + i)]]) * xs[std::size_t(r * groups + i / blocks.cols)] *
                  value[wq[std::size_t(o * in + i)]] * ws[std::size_t((o / blocks.rows) * groups + i / blocks.cols)];
        CHECK(std::fabs(y[std::size_t(r * out + o)] - want) <= 1e-5 * std::max(1.0, std::fabs(want)));
      }
    }
  }
}

TEST_CASE("block scales are copied per row where fused rows do not start on a block, with the same results",
          "[model][fp8]") {
  // llama3's q|k|v is 128 + 32 + 32 rows: in 64-row blocks v_proj starts at canonical row 160.
  block_quantized_copy blocks("llama3", 64, 64), rows("llama3", 64, 64, true);
  blocks.write();
  rows.write();
  const auto plan = plan_of(blocks.dir.path());
  const auto& layer = plan.layers[0];
  CHECK(layer[std::size_t(model::layer_slot::qkv_w)].fp8_blocks == backend::fp8_blocks{1, 64});
  CHECK(layer[std::size_t(model::layer_slot::o_w)].fp8_blocks == backend::fp8_blocks{64, 64});
  CHECK(layer[std::size_t(model::layer_slot::up_w)].fp8_blocks == backend::fp8_blocks{64, 64});  // gate 128 | up 128
  CHECK(layer[std::size_t(model::layer_slot::down_w)].fp8_scale_count() == 2 * 2);
  CHECK(layer[std::size_t(model::layer_slot::qkv_w)].fp8_scale_count() == 192 * 2);
  // Weights' bytes: one per element and four per scale; the rest (embedding, norms) fp32 here.
  std::size_t want = 0;
  for (const auto& e : plan.globals) want += std::size_t(e.numel()) * 4;
  for (const auto& l : plan.layers)
    for (const auto& e : l) want += e.fp8 ? std::size_t(e.numel() + 4 * e.fp8_scale_count()) : std::size_t(e.numel()) * 4;
  CHECK(plan.total_bytes(dtype::f32) == want);
  const auto a = logits_of(blocks.dir.path()), b = logits_of(rows.dir.path());
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == b[i]);
}

TEST_CASE("block-wise FP8 checkpoints mii cannot run are refused naming the file, the tensor and the field",
          "[model][fp8]") {
  block_quantized_copy copy("llama3", 32, 64);
  auto load_error = [&] {
    copy.write();
    return MII_ERROR_MESSAGE(test::harness<models::llama>(copy.dir.path()));
  };
  SECTION("a weight_scale_inv of the wrong shape") {
    copy.find("model.layers.0.mlp.up_proj.weight_scale_inv")->shape = {2, 4};
    CHECK_THAT(load_error(), Contains("model.safetensors") && Contains("'model.layers.0.mlp.up_proj.weight_scale_inv' has shape [2, 4]") &&
                                 Contains("[4, 2]") && Contains("32 x 64 blocks"));
  }
  SECTION("blocks whose columns do not divide the weight's") {
    copy.set_config(32, 96);  // the scale tensors' shapes still fit: ceil(128 / 96) = 2
    CHECK_THAT(load_error(), Contains("weight' has 128 columns, not a multiple of the FP8 blocks' 96"));
  }
  SECTION("a weight_scale (compressed-tensors) where the config says block-wise") {
    copy.find("model.layers.1.self_attn.o_proj.weight_scale_inv")->name = "model.layers.1.self_attn.o_proj.weight_scale";
    CHECK_THAT(load_error(), Contains("model.layers.1.self_attn.o_proj.weight_scale_inv"));
  }
  SECTION("block scales without a block-wise config") {
    const std::string config = test::read_text(copy.dir / "config.json");
    test::write_text(copy.dir / "config.json", "{" + config.substr(config.find("]},") + 3));
    CHECK_THAT(load_error(), Contains("_scale_inv' is a block-wise FP8 scale") && Contains("weight_block_size"));
  }
  SECTION("DeepSeek-V3.1's power-of-two activation scales") {
    copy.set_config(32, 64, "\"scale_fmt\": \"ue8m0\", ");
    CHECK_THAT(load_error(), Contains("config.json") && Contains("'quantization_config.scale_fmt'") && Contains("ue8m0"));
  }
}

TEST_CASE("tensor parallelism that cuts through FP8 blocks is refused naming the layer and the block", "[model][fp8]") {
  // llama3's o_proj has 128 columns: tp 2 gives each rank 64 (whole 64-column blocks), tp 4 gives 32.
  const fs::path dir = test::fixture_dir("llama3_fp8_block32x64");
  for (int rank = 0; rank < 2; ++rank) {
    const auto plan = plan_of(dir, 2, rank);
    CHECK(plan.layers[0][std::size_t(model::layer_slot::o_w)].col_begin == 64 * rank);
    CHECK(plan.layers[0][std::size_t(model::layer_slot::o_w)].fp8_blocks == backend::fp8_blocks{32, 64});
  }
  CHECK_THAT(MII_ERROR_MESSAGE(plan_of(dir, 4, 1)),
             Contains("model.safetensors") && Contains("columns [32, 64) of layer 0 o_proj") &&
                 Contains("64-column FP8 blocks") && Contains("tensor-parallel size"));
}
