// Weight uploads from a real safetensors file (src/cuda/weight_upload.cpp): pread into pinned
// staging on several threads, dtype conversion on the device, the weight arena. The oracle is
// the host's model::materialize, bit for bit, special values included.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <mii/io/safetensors.hpp>
#include <mii/model/weight_plan.hpp>

#include "gpu_support.hpp"
#include "test_files.hpp"

using namespace mii;
using namespace mii::test::gpu;

namespace {

// Random values with the edge cases of every conversion: NaN, infinities, -0, fp16 overflow and
// subnormals, values that round to even.
std::vector<float> values_with_edges(std::mt19937& rng, std::int64_t n) {
  std::uniform_real_distribution<float> dist(-4, 4);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = dist(rng);
  const float edges[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(), -0.0f, 65520.0f, 70000.0f, 1e-6f, -3e-7f,
                         6.1e-5f, 1.00390625f, 1.01171875f};
  for (std::size_t i = 0; i < std::size(edges) && i < v.size(); ++i) v[i * 7 % v.size()] = edges[i];
  return v;
}

std::vector<std::byte> encode(const std::vector<float>& v, dtype t) {
  std::vector<std::byte> out(v.size() * dtype_size(t));
  io::convert(v.data(), dtype::f32, t, out.data(), std::int64_t(v.size()));
  return out;
}

struct file_checkpoint {
  test::temp_dir dir{"upload"};
  io::checkpoint ckpt;
};

// model.safetensors with "big" [3000, 2048] (12 MB as 16-bit: two 8 MiB staging slots or more),
// "small" [64, 48] and "norm" [300], each in the dtype given.
std::unique_ptr<file_checkpoint> write_checkpoint(std::mt19937& rng, dtype big, dtype small, dtype norm) {
  auto f = std::make_unique<file_checkpoint>();
  const auto vb = encode(values_with_edges(rng, 3000 * 2048), big);
  const auto vs = encode(values_with_edges(rng, 64 * 48), small);
  const auto vn = encode(values_with_edges(rng, 300), norm);
  const io::tensor_to_write t[] = {{"big", big, {3000, 2048}, vb}, {"small", small, {64, 48}, vs}, {"norm", norm, {300}, vn}};
  io::write_safetensors(f->dir / "model.safetensors", t);
  f->ckpt = io::checkpoint::open(f->dir.path());
  return f;
}

std::vector<model::plan_entry> entries_of(const io::checkpoint& c) {
  const io::tensor_view* big = c.find("big");
  const io::tensor_view* small = c.find("small");
  const io::tensor_view* norm = c.find("norm");
  REQUIRE(big->fd >= 0);  // the file stays open: pieces are read with pread
  std::vector<model::plan_entry> e(4);
  e[0] = {"whole rows from two runs", {{big, 0, 1500}, {big, 1700, 1300}}, 2800, 2048, 0, false};
  e[1] = {"a column slice", {{small, 5, 10}, {small, 40, 7}}, 17, 20, 3, false};
  e[2] = {"a vector", {{norm, 100, 30}, {norm, 7, 5}}, 35, 1, 0, true};
  e[3] = {"columns of the big one", {{big, 10, 2900}}, 2900, 2000, 48, false};  // strided, 11.6 MB: two slots
  return e;
}

template <class D>
void check_uploads(typename backend::cuda<D>::context& ctx, const io::checkpoint& c, bool reserve) {
  using B = backend::cuda<D>;
  const auto entries = entries_of(c);
  if (reserve) {
    model::weight_plan plan;
    plan.layers.resize(1);
    for (std::size_t i = 0; i < entries.size(); ++i) plan.layers[0][i] = entries[i];
    B::reserve_weights(ctx, plan);
  }
  std::vector<typename B::template buffer<D>> got;
  for (const auto& e : entries) got.push_back(B::load(ctx, e));
  if (reserve) {  // one allocation, in load order, 256-byte aligned slices
    auto* base = reinterpret_cast<const std::byte*>(got[0].data());
    std::size_t at = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      CHECK(reinterpret_cast<const std::byte*>(got[i].data()) == base + at);
      at += (std::size_t(entries[i].numel()) * sizeof(D) + 255) / 256 * 256;
    }
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    INFO(entries[i].what);
    std::vector<D> want(static_cast<std::size_t>(entries[i].numel())), have(want.size());
    model::materialize(entries[i], D::tag, want.data());
    B::copy_to_host(ctx, have.data(), got[i].data(), std::int64_t(have.size()));
    ctx.synchronize();
    CHECK(std::memcmp(have.data(), want.data(), have.size() * sizeof(D)) == 0);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("cuda weight uploads from a safetensors file equal the host's materialize, bit for bit", "[gpu]",
                   bf16_t, fp16_t) {
  using D = TestType;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("weight upload");
  SECTION("the compute dtype: copied as they are") {
    const auto f = write_checkpoint(rng, D::tag, D::tag, D::tag);
    check_uploads<D>(ctx, f->ckpt, false);
    check_uploads<D>(ctx, f->ckpt, true);
  }
  SECTION("other dtypes: converted on the device") {
    const dtype other = D::tag == dtype::bf16 ? dtype::f16 : dtype::bf16;
    const auto f = write_checkpoint(rng, other, dtype::f32, dtype::f32);
    check_uploads<D>(ctx, f->ckpt, false);
    check_uploads<D>(ctx, f->ckpt, true);
  }
}

TEST_CASE("cuda weight uploads give the same bits on one thread and on many", "[gpu]") {
  using D = bf16_t;
  auto rng = rng_for("weight upload threads");
  const auto f = write_checkpoint(rng, dtype::bf16, dtype::f16, dtype::f32);
  for (const char* threads : {"1", "5"}) {
    INFO("MII_LOAD_THREADS=" << threads);
    ::setenv("MII_LOAD_THREADS", threads, 1);
    {
      backend::cuda<D>::context ctx(0);  // a new context: its uploader reads the variable
      check_uploads<D>(ctx, f->ckpt, true);
    }
    ::unsetenv("MII_LOAD_THREADS");
  }
  ::setenv("MII_LOAD_THREADS", "0", 1);
  backend::cuda<D>::context ctx(0);
  const auto entries = entries_of(f->ckpt);
  CHECK_THROWS_WITH(backend::cuda<D>::load(ctx, entries[0]), Catch::Contains("MII_LOAD_THREADS") && Catch::Contains("\"0\""));
  ::unsetenv("MII_LOAD_THREADS");
}
