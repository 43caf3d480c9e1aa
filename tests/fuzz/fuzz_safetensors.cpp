// Fuzzes the safetensors reader: the 8-byte header length, the JSON header (dtypes, shapes,
// data_offsets, __metadata__) and the offset checks, through safetensors_file::open and
// checkpoint::open on a single file. Every tensor that is accepted must describe bytes that are
// inside the file and agree with its shape and dtype; its data is then read and converted.
#include <algorithm>
#include <vector>

#include <mii/io/safetensors.hpp>

#include "fuzz_support.hpp"

namespace {

void check_file(const mii::io::safetensors_file& f) {
  using namespace mii;
  for (const io::tensor_view& t : f.tensors()) {
    const std::int64_t n = t.numel();
    if (n < 0) fuzz::finding("tensor '" + t.name + "' accepted with a negative element count");
    if (std::uint64_t(n) * dtype_size(t.type) != t.bytes.size())
      fuzz::finding("tensor '" + t.name + "' accepted with " + std::to_string(t.bytes.size()) +
                    " bytes for shape " + t.shape_string());
    if (t.bytes.size() > f.file_size()) fuzz::finding("tensor '" + t.name + "' is larger than its file");
    if (f.find(t.name) != &t) fuzz::finding("find('" + t.name + "') does not return the tensor");
    // Reads the first and last elements (ASan/SEGV if the span points outside the mapping).
    float out[8];
    const std::int64_t k = std::min<std::int64_t>(n, 8);
    if (k > 0) {
      io::convert(t, dtype::f32, out, 0, k);
      io::convert(t, dtype::f32, out, n - k, k);
      std::uint16_t half[8];
      io::convert(t, dtype::bf16, half, 0, k);
      io::convert(t, dtype::f16, half, n - k, k);
    }
    // A range past the end must be refused, not read.
    if (fuzz::accepts([&] { io::convert(t, dtype::f32, out, n, 1); }))
      fuzz::finding("convert accepted an element range past the end of '" + t.name + "'");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static mii::fuzz::scratch_file file("model.safetensors");
  const auto& path = file.write(data, size);
  mii::fuzz::accepts([&] { check_file(mii::io::safetensors_file::open(path)); });
  mii::fuzz::accepts([&] {
    const auto c = mii::io::checkpoint::open(path);
    for (auto name : c.names())
      if (!c.find(name)) mii::fuzz::finding("checkpoint lists '" + std::string(name) + "' but cannot find it");
    (void)c.total_bytes();
  });
  return 0;
}
