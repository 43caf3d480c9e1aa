// safetensors files and checkpoints: files written here are read back bit for bit; dtype
// conversion is checked against an independent rounding computation; sharded checkpoints are
// opened through their index; and every malformed input is a mii::error naming the file, the
// tensor or field, and the offending values.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <fstream>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <mii/error.hpp>
#include <mii/io/safetensors.hpp>

#include "expect_error.hpp"
#include "test_files.hpp"

using Catch::Matchers::Contains;
using mii::dtype;
namespace fs = std::filesystem;
namespace io = mii::io;

namespace {

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span(v));
}

template <class T>
std::vector<T> values_of(const io::tensor_view& t) {
  std::vector<T> v(t.bytes.size() / sizeof(T));
  std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

// A file with exactly this header text and `data_bytes` bytes of data; the 8-byte length prefix
// is the header's size unless `declared_len` says otherwise.
fs::path raw_file(const mii::test::temp_dir& dir, const std::string& name, std::string_view header,
                  std::size_t data_bytes, std::optional<std::uint64_t> declared_len = {}) {
  const std::uint64_t len = declared_len.value_or(header.size());
  std::string text(reinterpret_cast<const char*>(&len), 8);
  text += header;
  text.append(data_bytes, '\x5a');
  mii::test::write_text(dir / name, text);
  return dir / name;
}

// ---- independent reference rounding ------------------------------------------------------------

float float_of_bits(std::uint32_t u) { return std::bit_cast<float>(u); }

// f32 -> bf16 by comparing exact distances to the two neighbouring bf16 values (in double), ties
// to the even one. No bit tricks shared with the implementation.
std::uint16_t reference_bf16(float x) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
  if (std::isinf(x)) return std::uint16_t(u >> 16);
  const std::uint32_t lo_bits = u & 0xffff0000u;
  const int exponent = int((u >> 23) & 0xffu);
  const double ulp = std::ldexp(1.0, exponent == 0 ? -133 : exponent - 134);
  const double ax = std::fabs(double(x)), lo = std::fabs(double(float_of_bits(lo_bits))), hi = lo + ulp;
  const std::uint16_t down = std::uint16_t(lo_bits >> 16), up = std::uint16_t(down + 1);
  if (ax - lo < hi - ax) return down;
  if (hi - ax < ax - lo) return up;
  return (down & 1u) ? up : down;
}

// Every non-negative finite half value, decoded from the IEEE definition; index = bit pattern.
const std::vector<double>& half_values() {
  static const std::vector<double> v = [] {
    std::vector<double> out;
    for (std::uint32_t h = 0; h <= 0x7bffu; ++h) {
      const int e = int(h >> 10);
      const double m = double(h & 0x3ffu);
      out.push_back(e == 0 ? std::ldexp(m, -24) : std::ldexp(1024.0 + m, e - 25));
    }
    return out;
  }();
  return v;
}

double reference_half_to_double(std::uint16_t h) {
  const double sign = (h & 0x8000u) ? -1.0 : 1.0;
  const std::uint16_t a = h & 0x7fffu;
  if (a == 0x7c00u) return sign * std::numeric_limits<double>::infinity();
  if (a > 0x7c00u) return std::numeric_limits<double>::quiet_NaN();
  return sign * half_values()[a];
}

// f32 -> f16: nearest half value by search over the decoded table, ties to even, overflow at
// max + half an ulp (65520) to infinity.
std::uint16_t reference_f16(float x) {
  const std::uint16_t sign = std::signbit(x) ? 0x8000u : 0u;
  const double ax = std::fabs(double(x));
  if (ax >= 65520.0) return std::uint16_t(sign | 0x7c00u);
  const auto& v = half_values();
  const auto it = std::upper_bound(v.begin(), v.end(), ax);  // first value > ax
  const std::uint16_t down = std::uint16_t(it - v.begin() - 1);
  if (v[down] == ax || it == v.end()) return std::uint16_t(sign | down);
  const std::uint16_t up = std::uint16_t(down + 1);
  const double d_down = ax - v[down], d_up = v[up] - ax;
  const std::uint16_t pick = d_down < d_up ? down : d_up < d_down ? up : ((down & 1u) ? up : down);
  return std::uint16_t(sign | pick);
}

}  // namespace

TEST_CASE("safetensors: a written file reads back bit for bit", "[io][safetensors]") {
  mii::test::temp_dir dir("io");
  const std::vector<float> f32 = {1.0f, -2.5f, 3.25f, 1e-30f, -0.0f, 65504.0f};
  const std::vector<std::uint16_t> f16 = {0x3c00, 0xc100, 0x0001, 0x7bff, 0x8000};  // odd count: misaligns what follows
  const std::vector<std::uint16_t> bf16 = {0x3f80, 0xbf80, 0x4049, 0x0001};
  const std::vector<float> scalar = {42.5f};
  const std::vector<float> after_odd_f16 = {7.0f, -8.0f};
  const std::vector<std::uint16_t> none;
  const std::string odd_name = "quote\"back\\slash\ttab.weight";
  const std::vector<io::tensor_to_write> tensors = {
      {"z.empty_first", dtype::bf16, {0, 4}, bytes_of(none)},  // shares offset 0 with the next tensor
      {"layer.f32", dtype::f32, {2, 3}, bytes_of(f32)},
      {"layer.f16", dtype::f16, {5}, bytes_of(f16)},
      {"layer.after_f16", dtype::f32, {2}, bytes_of(after_odd_f16)},
      {"layer.bf16", dtype::bf16, {2, 1, 2}, bytes_of(bf16)},
      {"scalar", dtype::f32, {}, bytes_of(scalar)},
      {"empty.middle", dtype::f16, {3, 0}, bytes_of(none)},
      {odd_name, dtype::f32, {1}, bytes_of(scalar)},
  };
  const std::vector<std::pair<std::string, std::string>> metadata = {{"format", "pt"}, {"note", "a \"quoted\"\nline"}};
  const fs::path file = dir / "model.safetensors";
  io::write_safetensors(file, tensors, metadata);

  auto f = io::safetensors_file::open(file);
  CHECK(f.path() == file);
  CHECK(f.file_size() == fs::file_size(file));
  REQUIRE(f.tensors().size() == tensors.size());
  for (std::size_t i = 1; i < f.tensors().size(); ++i) CHECK(f.tensors()[i - 1].name < f.tensors()[i].name);
  for (const auto& w : tensors) {
    INFO("tensor " << w.name);
    const io::tensor_view* t = f.find(w.name);
    REQUIRE(t != nullptr);
    CHECK(t->type == w.type);
    CHECK(t->shape == w.shape);
    CHECK(t->file == &f.path());
    REQUIRE(t->bytes.size() == w.bytes.size());
    if (!w.bytes.empty()) CHECK(std::memcmp(t->bytes.data(), w.bytes.data(), w.bytes.size()) == 0);
  }
  CHECK(f.find("absent") == nullptr);
  CHECK(f.find("layer") == nullptr);  // a prefix of names is not a name

  const io::tensor_view& s = *f.find("scalar");
  CHECK(s.numel() == 1);
  CHECK(s.shape_string() == "[]");
  CHECK(f.find("z.empty_first")->numel() == 0);
  CHECK(f.find("empty.middle")->shape_string() == "[3, 0]");
  CHECK(f.find("layer.bf16")->shape_string() == "[2, 1, 2]");

  // Conversion reads misaligned data (an F32 tensor right after 10 bytes of F16).
  std::vector<float> out(2);
  io::convert(*f.find("layer.after_f16"), dtype::f32, out.data());
  CHECK(out == after_odd_f16);
  std::vector<float> bf(4);
  io::convert(*f.find("layer.bf16"), dtype::f32, bf.data());
  CHECK(bf == std::vector<float>{1.0f, -1.0f, 3.140625f, float_of_bits(0x00010000u)});
  std::vector<float> part(2);
  io::convert(*f.find("layer.f32"), dtype::f32, part.data(), 3, 2);
  CHECK(part == std::vector<float>{1e-30f, -0.0f});

  const auto md = f.metadata();
  REQUIRE(md.size() == 2);
  CHECK(md[0] == metadata[0]);
  CHECK(md[1] == metadata[1]);

  SECTION("moving a file keeps its tensors pointing at its path") {
    auto moved = std::move(f);
    CHECK(moved.find("scalar")->file == &moved.path());
    std::vector<float> v(1);
    io::convert(*moved.find("scalar"), dtype::f32, v.data());
    CHECK(v[0] == 42.5f);
  }
  SECTION("the header is the format's: 8-byte length, JSON, data 8-byte aligned") {
    const std::string raw = mii::test::read_text(file);
    std::uint64_t len = 0;
    std::memcpy(&len, raw.data(), 8);
    CHECK(len % 8 == 0);
    CHECK(raw.size() == 8 + len + 4 * 6 + 2 * 5 + 4 * 2 + 2 * 4 + 4 + 4);
    CHECK_THAT(raw.substr(8, len), Contains("\"__metadata__\":{\"format\":\"pt\""));
  }
  SECTION("a range past the tensor is refused") {
    std::vector<float> big(8);
    CHECK_THAT(MII_ERROR_MESSAGE(io::convert(*f.find("layer.f32"), dtype::f32, big.data(), 4, 3)),
               Contains(file.string()) && Contains("'layer.f32'") && Contains("[4, 7)") && Contains("6 elements"));
  }
}

TEST_CASE("safetensors: the writer refuses data that does not match shape and dtype", "[io][safetensors]") {
  mii::test::temp_dir dir("io");
  const std::vector<float> three(3);
  const std::vector<io::tensor_to_write> t = {{"w", dtype::f32, {2, 2}, bytes_of(three)}};
  CHECK_THAT(MII_ERROR_MESSAGE(io::write_safetensors(dir / "x.safetensors", t)),
             Contains("'w'") && Contains("12 bytes") && Contains("need 16"));
}

TEST_CASE("conversion f32 -> bf16 -> f32 rounds to nearest even", "[io][convert]") {
  const std::uint64_t seed = mii::test::test_seed("f32 -> bf16 rounding");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  std::vector<float> in;
  // Edge cases: exact ties (low half 0x8000) with even and odd kept bits, just off the ties, the
  // largest finite values (rounding up overflows to infinity), subnormals, zeros, infinities.
  for (std::uint32_t hi : {0x3f80u, 0x3f81u, 0x7f7fu, 0x7f7eu, 0x0000u, 0x0001u, 0x007fu, 0x8000u, 0xbf81u, 0xff7fu})
    for (std::uint32_t lo : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) in.push_back(float_of_bits(hi << 16 | lo));
  in.push_back(std::numeric_limits<float>::infinity());
  in.push_back(-std::numeric_limits<float>::infinity());
  while (in.size() < 200000) {
    const float x = float_of_bits(std::uint32_t(rng()));
    if (!std::isnan(x)) in.push_back(x);
  }
  std::vector<mii::bf16_t> half(in.size());
  io::convert(in.data(), dtype::f32, dtype::bf16, half.data(), std::int64_t(in.size()));
  std::vector<float> back(in.size());
  io::convert(half.data(), dtype::bf16, dtype::f32, back.data(), std::int64_t(in.size()));
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const std::uint16_t want = reference_bf16(in[i]);
    if (half[i].bits != want || std::bit_cast<std::uint32_t>(back[i]) != std::uint32_t(want) << 16) {
      if (++mismatches <= 5)
        FAIL_CHECK("f32 bits 0x" << std::hex << std::bit_cast<std::uint32_t>(in[i]) << " -> bf16 0x" << half[i].bits
                                 << ", expected 0x" << want);
    }
  }
  CHECK(mismatches == 0);

  SECTION("NaN stays NaN (quiet), whatever its payload") {
    for (std::uint32_t bits : {0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x7f80ffffu}) {
      mii::bf16_t h;
      const float x = float_of_bits(bits);
      io::convert(&x, dtype::f32, dtype::bf16, &h, 1);
      float y;
      io::convert(&h, dtype::bf16, dtype::f32, &y, 1);
      CHECK(std::isnan(y));
    }
  }
}

TEST_CASE("conversion f16 <-> f32 matches the IEEE definition", "[io][convert]") {
  SECTION("every half value decodes exactly") {
    std::vector<std::uint16_t> all(65536);
    for (std::uint32_t i = 0; i < 65536; ++i) all[i] = std::uint16_t(i);
    std::vector<float> out(all.size());
    io::convert(all.data(), dtype::f16, dtype::f32, out.data(), 65536);
    for (std::uint32_t i = 0; i < 65536; ++i) {
      const double want = reference_half_to_double(std::uint16_t(i));
      if (std::isnan(want)) {
        CHECK(std::isnan(out[i]));
      } else if (double(out[i]) != want || std::signbit(out[i]) != std::signbit(want)) {
        FAIL_CHECK("half 0x" << std::hex << i << " -> " << out[i] << ", expected " << want);
      }
    }
  }
  SECTION("f32 -> f16 rounds to nearest even, overflowing to infinity") {
    const std::uint64_t seed = mii::test::test_seed("f32 -> f16 rounding");
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    std::vector<float> in = {0.0f, -0.0f, 65504.0f, 65519.996f, 65520.0f, -65520.0f, 1e-8f, 2.9802322e-8f /* 2^-25: tie to 0 */,
                             8.940697e-8f /* 1.5 * 2^-23: tie between subnormals 1 and 2 -> 2 */,
                             std::numeric_limits<float>::infinity()};
    const auto& v = half_values();
    std::uniform_int_distribution<std::size_t> pick(0, v.size() - 2);
    while (in.size() < 100000) {
      const std::size_t h = pick(rng);
      switch (rng() % 4) {
        case 0: in.push_back(float((v[h] + v[h + 1]) / 2)); break;  // an exact tie (representable in f32)
        case 1: in.push_back(std::uniform_real_distribution<float>(-70000.0f, 70000.0f)(rng)); break;
        case 2: in.push_back(std::uniform_real_distribution<float>(-1e-4f, 1e-4f)(rng)); break;  // subnormal halves
        default: {
          const float x = float_of_bits(std::uint32_t(rng()));
          in.push_back(std::isnan(x) ? 0.0f : x);
        }
      }
    }
    std::vector<mii::fp16_t> out(in.size());
    io::convert(in.data(), dtype::f32, dtype::f16, out.data(), std::int64_t(in.size()));
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      const std::uint16_t want = reference_f16(in[i]);
      if (out[i].bits != want && ++mismatches <= 5)
        FAIL_CHECK("f32 " << in[i] << " (bits 0x" << std::hex << std::bit_cast<std::uint32_t>(in[i]) << ") -> f16 0x"
                          << out[i].bits << ", expected 0x" << want);
    }
    CHECK(mismatches == 0);
  }
  SECTION("bf16 -> f16 goes through the exact f32 value") {
    const std::vector<std::uint16_t> b = {0x3f80, 0x4049, 0x477f, 0x4780 /* 65536: overflows */, 0x3380 /* 2^-24 */};
    std::vector<mii::fp16_t> h(b.size());
    io::convert(b.data(), dtype::bf16, dtype::f16, h.data(), std::int64_t(b.size()));
    for (std::size_t i = 0; i < b.size(); ++i) CHECK(h[i].bits == reference_f16(float_of_bits(std::uint32_t(b[i]) << 16)));
  }
}

// ---- sharded checkpoints -----------------------------------------------------------------------

namespace {

struct sharded_fixture {
  mii::test::temp_dir dir{"ckpt"};
  std::vector<std::vector<float>> data;  // one vector per tensor, value = tensor index + element / 100
  std::vector<std::string> names = {"model.embed.weight", "model.layers.0.w", "model.layers.0.b",
                                    "model.layers.1.w", "model.layers.1.b", "lm_head.weight"};
  std::vector<int> shard_of = {0, 0, 1, 1, 2, 2};
  std::vector<std::string> shard_names = {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                          "model-00003-of-00003.safetensors"};

  sharded_fixture() {
    for (std::size_t i = 0; i < names.size(); ++i) {
      std::vector<float> v(4 + i);
      for (std::size_t j = 0; j < v.size(); ++j) v[j] = float(i) + float(j) / 100.0f;
      data.push_back(std::move(v));
    }
    for (int s = 0; s < 3; ++s) write_shard(s, names);
    write_index(default_map());
  }
  void write_shard(int s, const std::vector<std::string>& which) {
    std::vector<io::tensor_to_write> t;
    for (std::size_t i = 0; i < names.size(); ++i)
      if (shard_of[i] == s && std::find(which.begin(), which.end(), names[i]) != which.end())
        t.push_back({names[i], dtype::f32, {std::int64_t(data[i].size())}, bytes_of(data[i])});
    io::write_safetensors(dir / shard_names[std::size_t(s)], t);
  }
  std::vector<std::pair<std::string, std::string>> default_map() const {
    std::vector<std::pair<std::string, std::string>> m;
    for (std::size_t i = 0; i < names.size(); ++i) m.emplace_back(names[i], shard_names[std::size_t(shard_of[i])]);
    return m;
  }
  void write_index(const std::vector<std::pair<std::string, std::string>>& map) {
    std::string j = "{\"metadata\": {\"total_size\": 1234}, \"weight_map\": {";
    for (std::size_t i = 0; i < map.size(); ++i)
      j += (i ? ", " : "") + ("\"" + map[i].first + "\": \"" + map[i].second + "\"");
    mii::test::write_text(index(), j + "}}");
  }
  fs::path index() const { return dir / "model.safetensors.index.json"; }
};

}  // namespace

TEST_CASE("checkpoint: a sharded directory is opened through its index", "[io][checkpoint]") {
  sharded_fixture fx;
  for (const fs::path& where : {fx.dir.path(), fx.index()}) {
    INFO("opened as " << where);
    const auto c = io::checkpoint::open(where);
    CHECK(c.root() == fx.dir.path());
    REQUIRE(c.files().size() == 3);
    for (std::size_t s = 0; s < 3; ++s) CHECK(c.files()[s].path().filename() == fx.shard_names[s]);
    std::vector<std::string> sorted = fx.names;
    std::sort(sorted.begin(), sorted.end());
    const auto names = c.names();
    CHECK(std::vector<std::string>(names.begin(), names.end()) == sorted);
    std::size_t total = 0;
    for (std::size_t i = 0; i < fx.names.size(); ++i) {
      INFO("tensor " << fx.names[i]);
      const io::tensor_view* t = c.find(fx.names[i]);
      REQUIRE(t != nullptr);
      CHECK(t->file->filename() == fx.shard_names[std::size_t(fx.shard_of[i])]);
      const std::int64_t n = std::int64_t(fx.data[i].size());
      CHECK(&c.get(fx.names[i], std::vector<std::int64_t>{n}) == t);
      CHECK(values_of<float>(*t) == fx.data[i]);
      total += t->bytes.size();
    }
    CHECK(c.total_bytes() == total);
    CHECK(c.find("model.layers.2.w") == nullptr);
  }
}

TEST_CASE("checkpoint: a single file, or a directory holding model.safetensors", "[io][checkpoint]") {
  mii::test::temp_dir dir("ckpt");
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  const std::vector<io::tensor_to_write> t = {{"w", dtype::f32, {2, 3}, bytes_of(v)}};
  io::write_safetensors(dir / "model.safetensors", t);
  for (const fs::path& where : {dir.path(), dir / "model.safetensors"}) {
    const auto c = io::checkpoint::open(where);
    CHECK(c.root() == dir.path());
    REQUIRE(c.files().size() == 1);
    CHECK(c.get("w").shape == std::vector<std::int64_t>{2, 3});

    SECTION("a missing tensor names the checkpoint and the tensor") {
      CHECK_THAT(MII_ERROR_MESSAGE(c.get("model.norm.weight")),
                 Contains(dir.path().string()) && Contains("'model.norm.weight'") && Contains("missing"));
      CHECK_THAT(MII_ERROR_MESSAGE(c.get("model.norm.weight", std::vector<std::int64_t>{2, 3})),
                 Contains("'model.norm.weight'") && Contains("missing"));
    }
    SECTION("a mis-shaped tensor names the file, the tensor and both shapes") {
      CHECK_THAT(MII_ERROR_MESSAGE(c.get("w", std::vector<std::int64_t>{3, 2})),
                 Contains((dir / "model.safetensors").string()) && Contains("'w'") && Contains("[2, 3]") &&
                     Contains("[3, 2]"));
      CHECK_THAT(MII_ERROR_MESSAGE(c.get("w", std::vector<std::int64_t>{2, 3, 1})), Contains("[2, 3, 1]"));
      CHECK_THAT(MII_ERROR_MESSAGE(c.get("w", std::vector<std::int64_t>{6})), Contains("[6]") && Contains("[2, 3]"));
    }
  }
}

TEST_CASE("checkpoint: broken sharded checkpoints name the index, shard and tensor", "[io][checkpoint]") {
  sharded_fixture fx;
  const std::string index = fx.index().string();

  SECTION("the index names a shard that does not exist") {
    auto map = fx.default_map();
    map[3].second = "model-00009-of-00003.safetensors";
    fx.write_index(map);
    CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(fx.dir.path())),
               Contains(index) && Contains("'model-00009-of-00003.safetensors'") && Contains("does not exist"));
  }
  SECTION("the index puts a tensor in the wrong shard") {
    auto map = fx.default_map();
    map[1].second = fx.shard_names[2];  // model.layers.0.w is in shard 1
    fx.write_index(map);
    CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(fx.dir.path())),
               Contains(index) && Contains("'model.layers.0.w'") && Contains("'" + fx.shard_names[2] + "'") &&
                   Contains("'" + fx.shard_names[0] + "'"));
  }
  SECTION("the index lists a tensor that no shard holds") {
    fx.write_shard(1, {"model.layers.1.w"});  // drops model.layers.0.b from shard 2
    CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(fx.dir.path())),
               Contains(index) && Contains("'model.layers.0.b'") && Contains("'" + fx.shard_names[1] + "'"));
  }
  SECTION("a tensor stored in two shards") {
    fx.shard_of[3] = 2;  // model.layers.1.w written to shard 3 as well as shard 2
    fx.write_shard(2, fx.names);
    CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(fx.dir.path())),
               Contains("'model.layers.1.w'") && Contains("both") && Contains(fx.shard_names[1]) &&
                   Contains(fx.shard_names[2]));
  }
  SECTION("malformed index JSON") {
    mii::test::write_text(fx.index(), "{\"weight_map\": {\"a\": ");
    CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(fx.dir.path())), Contains(index) && Contains("malformed JSON"));
  }
  SECTION("an index without weight_map") {
    mii::test::write_text(fx.index(), "{\"metadata\": {}}");
    CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(fx.dir.path())), Contains(index) && Contains("'weight_map'"));
  }
  SECTION("a weight_map entry that is not a file name") {
    mii::test::write_text(fx.index(), "{\"weight_map\": {\"model.embed.weight\": 3}}");
    CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(fx.dir.path())),
               Contains(index) && Contains("weight_map.model.embed.weight") && Contains("integer 3"));
    mii::test::write_text(fx.index(), "{\"weight_map\": {\"model.embed.weight\": \"../elsewhere.safetensors\"}}");
    CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(fx.dir.path())),
               Contains("weight_map.model.embed.weight") && Contains("'../elsewhere.safetensors'"));
  }
}

TEST_CASE("checkpoint: missing paths", "[io][checkpoint]") {
  mii::test::temp_dir dir("ckpt");
  CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(dir / "no-such-model")),
             Contains((dir / "no-such-model").string()) && Contains("not found"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(dir.path())),
             Contains(dir.path().string()) && Contains("model.safetensors") && Contains("model.safetensors.index.json"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::safetensors_file::open(dir / "absent.safetensors")),
             Contains((dir / "absent.safetensors").string()) && Contains("No such file"));
}

// ---- malformed files ---------------------------------------------------------------------------

TEST_CASE("safetensors: malformed files name the file, the tensor and the values", "[io][safetensors]") {
  mii::test::temp_dir dir("bad");
  auto open = [](const fs::path& p) { return io::safetensors_file::open(p); };

  SECTION("shorter than the 8-byte length") {
    mii::test::write_text(dir / "short.safetensors", "abcde");
    const auto p = dir / "short.safetensors";
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("5 bytes") && Contains("8-byte"));
    mii::test::write_text(p, "");
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("0 bytes"));
  }
  SECTION("header length larger than the file") {
    const auto p = raw_file(dir, "len.safetensors", "{}", 10, 1000);
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)),
               Contains(p.string()) && Contains("header length 1000") && Contains("(20 bytes)"));
    const auto q = raw_file(dir, "huge.safetensors", "{}", 0, ~std::uint64_t(0));
    CHECK_THAT(MII_ERROR_MESSAGE(open(q)), Contains(q.string()) && Contains("header length 18446744073709551615"));
  }
  SECTION("header JSON that does not parse or is not an object") {
    const auto p = raw_file(dir, "json.safetensors", "{\"w\": {\"dtype\": \"F32\", ", 0);
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("malformed JSON"));
    const auto q = raw_file(dir, "array.safetensors", "[1, 2]", 0);
    CHECK_THAT(MII_ERROR_MESSAGE(open(q)), Contains(q.string()) && Contains("must be a JSON object") && Contains("array"));
  }
  SECTION("a tensor entry missing a field") {
    const auto p = raw_file(dir, "field.safetensors", R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4);
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("'w.shape'") && Contains("missing"));
    const auto q = raw_file(dir, "field2.safetensors", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4);
    CHECK_THAT(MII_ERROR_MESSAGE(open(q)), Contains("'w.data_offsets'") && Contains("two integers"));
    const auto r = raw_file(dir, "field3.safetensors", R"({"w": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}})", 4);
    CHECK_THAT(MII_ERROR_MESSAGE(open(r)), Contains("'w.dtype'") && Contains("a string") && Contains("integer 5"));
  }
  SECTION("offsets past the end of the data (a truncated file)") {
    const auto p = raw_file(dir, "trunc.safetensors",
                            R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                "b": {"dtype": "F32", "shape": [8], "data_offsets": [16, 48]}})",
                            40);
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("'b'") && Contains("[16, 48]") &&
                                               Contains("40 bytes") && Contains("truncated"));
  }
  SECTION("overlapping tensors") {
    const auto p = raw_file(dir, "overlap.safetensors",
                            R"({"first": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                "second": {"dtype": "F16", "shape": [4], "data_offsets": [8, 16]}})",
                            16);
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("'first'") && Contains("'second'") &&
                                               Contains("[0, 16)") && Contains("[8, 16)") && Contains("overlap"));
  }
  SECTION("empty tensors occupy no bytes, so they overlap nothing") {
    const auto p = raw_file(dir, "empty.safetensors",
                            R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                "b": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
                                "c": {"dtype": "F32", "shape": [2, 0], "data_offsets": [8, 8]},
                                "d": {"dtype": "F32", "shape": [0], "data_offsets": [16, 16]}})",
                            16);
    CHECK(open(p).tensors().size() == 4);
  }
  SECTION("data size that does not match shape and dtype") {
    const auto p = raw_file(dir, "size.safetensors", R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 16]}})", 16);
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("'w'") && Contains("16 bytes") &&
                                               Contains("BF16") && Contains("[2, 3]") && Contains("need 12"));
  }
  SECTION("a shape whose byte size overflows 64 bits is not taken for zero bytes") {
    // 2^62 F32 elements are 2^64 bytes: modulo 2^64 that is 0, which [0, 0] would match.
    const auto p = raw_file(dir, "wrap.safetensors",
                            R"({"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})", 8);
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("'w'") && Contains("[4611686018427387904]"));
    const auto q = raw_file(dir, "wrap2.safetensors",
                            R"({"w": {"dtype": "F16", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 8);
    CHECK_THAT(MII_ERROR_MESSAGE(open(q)), Contains("'w") && Contains("[4294967296, 4294967296]"));
  }
  SECTION("F8_E4M3 tensors load and decode as torch's float8_e4m3fn") {
    const auto p = raw_file(dir, "f8.safetensors", R"({"w": {"dtype": "F8_E4M3", "shape": [6], "data_offsets": [0, 6]}})", 6);
    // 1, -1, 448 (largest), 2^-9 (smallest subnormal), 2^-6 (smallest normal), 0.5
    const unsigned char bytes[6] = {0x38, 0xb8, 0x7e, 0x01, 0x08, 0x30};
    {
      std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-6, std::ios::end);
      f.write(reinterpret_cast<const char*>(bytes), 6);
    }
    const auto file = open(p);
    const auto* t = file.find("w");
    REQUIRE(t);
    CHECK(t->type == dtype::f8_e4m3);
    float v[6];
    io::convert(*t, dtype::f32, v);
    CHECK(v[0] == 1.0f);
    CHECK(v[1] == -1.0f);
    CHECK(v[2] == 448.0f);
    CHECK(v[3] == std::ldexp(1.0f, -9));
    CHECK(v[4] == std::ldexp(1.0f, -6));
    CHECK(v[5] == 0.5f);
  }
  SECTION("dtypes mii cannot load") {
    for (const std::string type : {"I64", "F8_E5M2", "F64", "BOOL"}) {
      const auto p = raw_file(dir, type + ".safetensors",
                              R"({"w": {"dtype": ")" + type + R"(", "shape": [1], "data_offsets": [0, 8]}})", 8);
      CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("'w'") && Contains("dtype " + type) &&
                                                 Contains("F32, F16, BF16, F8_E4M3"));
    }
  }
  SECTION("a negative dimension") {
    const auto p = raw_file(dir, "neg.safetensors", R"({"w": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 0]}})", 0);
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)),
               Contains(p.string()) && Contains("'w.shape'") && Contains("negative") && Contains("[2, -3]"));
  }
  SECTION("reversed or negative offsets") {
    const auto p = raw_file(dir, "rev.safetensors", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8);
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("'w'") && Contains("[8, 4]"));
    const auto q = raw_file(dir, "negoff.safetensors", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 8);
    CHECK_THAT(MII_ERROR_MESSAGE(open(q)), Contains("'w'") && Contains("[-4, 0]"));
  }
  SECTION("metadata must map strings to strings") {
    const auto p = raw_file(dir, "meta.safetensors", R"({"__metadata__": {"format": "pt", "step": 3}})", 0);
    CHECK_THAT(MII_ERROR_MESSAGE(open(p)), Contains(p.string()) && Contains("'__metadata__.step'") && Contains("integer 3"));
  }
  SECTION("a checkpoint directory whose model.safetensors is broken names that file") {
    raw_file(dir, "model.safetensors", "{\"w\": 1}", 0);
    CHECK_THAT(MII_ERROR_MESSAGE(io::checkpoint::open(dir.path())),
               Contains((dir / "model.safetensors").string()) && Contains("'w'") && Contains("JSON object"));
  }
}
