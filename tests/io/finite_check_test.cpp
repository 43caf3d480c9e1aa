// io::first_non_finite / io::require_finite (model_config.check_weights): NaN and both
// infinities found in every dtype mii loads, at the right element; the largest finite values
// and subnormals are not flagged; the message names the file, the tensor and the position.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include <mii/io/finite_check.hpp>
#include <mii/io/safetensors.hpp>

#include "expect_error.hpp"
#include "test_files.hpp"

using Catch::Matchers::Contains;
namespace io = mii::io;

namespace {

// `values` in dtype `t`, as raw bytes.
std::vector<std::byte> encode(mii::dtype t, const std::vector<float>& values) {
  std::vector<std::byte> out(values.size() * mii::dtype_size(t));
  io::convert(values.data(), mii::dtype::f32, t, out.data(), std::int64_t(values.size()));
  return out;
}

io::tensor_view view(mii::dtype t, std::vector<std::int64_t> shape, const std::vector<std::byte>& bytes) {
  io::tensor_view v;
  v.name = "w";
  v.type = t;
  v.shape = std::move(shape);
  v.bytes = bytes;
  return v;
}

}  // namespace

TEST_CASE("first_non_finite finds NaN and infinities in f32, f16 and bf16", "[io][check-weights]") {
  constexpr float inf = std::numeric_limits<float>::infinity();
  for (mii::dtype t : {mii::dtype::f32, mii::dtype::f16, mii::dtype::bf16}) {
    INFO(mii::dtype_name(t));
    // Largest finite values of each format, subnormals, signed zeros: all finite.
    const float big = t == mii::dtype::f16 ? 65504.0f : t == mii::dtype::bf16 ? 3.38953139e38f : 3.40282347e38f;
    const std::vector<float> clean = {0.0f, -0.0f, 1.0f, -2.5f, big, -big, 6e-8f, 1e-40f};
    const auto clean_bytes = encode(t, clean);
    CHECK_FALSE(io::first_non_finite(view(t, {2, 4}, clean_bytes)));
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), inf, -inf}) {
      for (std::size_t at : {std::size_t(0), std::size_t(5), clean.size() - 1}) {
        auto values = clean;
        values[at] = bad;
        const auto bytes = encode(t, values);
        const auto found = io::first_non_finite(view(t, {2, 4}, bytes));
        REQUIRE(found);
        CHECK(found->index == std::int64_t(at));
        CHECK(std::isnan(found->value) == std::isnan(bad));
        if (!std::isnan(bad)) CHECK(found->value == bad);
      }
    }
  }
}

TEST_CASE("require_finite names the file, the first tensor in name order and the element", "[io][check-weights]") {
  mii::test::temp_dir dir("finite");
  const auto file = dir / "model.safetensors";
  const auto ok = encode(mii::dtype::bf16, std::vector<float>(12, 0.5f));
  auto with_inf = std::vector<float>(12, 0.5f);
  with_inf[7] = -std::numeric_limits<float>::infinity();
  const auto bad_b = encode(mii::dtype::bf16, with_inf);
  auto with_nan = std::vector<float>(6, 1.0f);
  with_nan[2] = std::numeric_limits<float>::quiet_NaN();
  const auto bad_c = encode(mii::dtype::f16, with_nan);
  const std::vector<io::tensor_to_write> tensors = {
      {"c.weight", mii::dtype::f16, {6}, bad_c}, {"a.weight", mii::dtype::bf16, {2, 6}, ok}, {"b.weight", mii::dtype::bf16, {2, 6}, bad_b}};
  io::write_safetensors(file, tensors);
  for (unsigned threads : {1u, 3u}) {
    INFO(threads << " thread(s)");
    // b.weight comes before c.weight in name order; flat element 7 of [2, 6] is [1, 1].
    CHECK_THAT(MII_ERROR_MESSAGE(io::require_finite(io::checkpoint::open(dir.path()), threads)),
               Contains(file.string()) && Contains("'b.weight' (BF16 [2, 6])") && Contains("element [1, 1] is -inf"));
  }
  io::write_safetensors(file, std::vector<io::tensor_to_write>{tensors[1]});
  CHECK_NOTHROW(io::require_finite(io::checkpoint::open(dir.path())));
}
