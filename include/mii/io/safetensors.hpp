// safetensors checkpoints: memory-mapped, validated, zero-copy.
//
// A `safetensors_file` maps one file and validates its header (length, JSON, dtypes, shapes,
// offsets inside the data section, no two tensors overlapping). A `checkpoint` is what a
// Hugging Face model directory holds: one model.safetensors or shards listed by
// model.safetensors.index.json. Tensor data is never copied until converted to a compute dtype.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <mii/dtype.hpp>

namespace mii::io {

struct tensor_view {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;       // points into the mapped file
  const std::filesystem::path* file = nullptr;
  // The same bytes through the file's open descriptor (-1: none, read `bytes`): loaders read
  // large ranges with pread, without a page fault per mapped page. Valid while the file is open.
  int fd = -1;
  std::uint64_t file_offset = 0;

  std::int64_t numel() const;
  // No data: a tensor of a synthetic (random-weight) checkpoint.
  bool synthetic() const { return bytes.empty() && numel() > 0; }
  std::string shape_string() const;       // "[4096, 14336]"
};

class safetensors_file {
 public:
  // Throws mii::error naming the file and the offending tensor/field/values.
  static safetensors_file open(const std::filesystem::path& path);

  safetensors_file(safetensors_file&&) noexcept;
  safetensors_file& operator=(safetensors_file&&) noexcept;
  ~safetensors_file();

  const std::filesystem::path& path() const { return path_; }
  std::span<const tensor_view> tensors() const { return tensors_; }
  const tensor_view* find(std::string_view name) const;
  // The header's __metadata__ (a string-to-string map in the format), in file order.
  std::span<const std::pair<std::string, std::string>> metadata() const { return metadata_; }
  std::size_t file_size() const { return size_; }
  int fd() const { return fd_; }  // open as long as this object (tensor_view::fd)
  // Tells the kernel we will read the whole file soon (overlaps disk reads with our work).
  void prefetch() const;

 private:
  safetensors_file() = default;
  std::filesystem::path path_;
  void* map_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;  // the mapped file, kept open for pread (the same inode as the map)
  std::vector<tensor_view> tensors_;  // sorted by name
  std::vector<std::pair<std::string, std::string>> metadata_;
};

class checkpoint {
 public:
  // `path`: a model directory (model.safetensors or model.safetensors.index.json inside), an
  // index file, or a single .safetensors file.
  static checkpoint open(const std::filesystem::path& path);
  // A checkpoint of random weights for speed runs (config.json alone, no tensor files): every
  // tensor the loader asks for with get(name, shape) exists with that shape and no data, and
  // backends fill such weights with random values on the device. find() sees no optional
  // tensors (tied heads stay tied).
  static checkpoint synthetic();
  bool is_synthetic() const { return synthetic_ != nullptr; }
  // The tensors a loader has asked a synthetic checkpoint for (unique by name, in request order):
  // the table of contents a real checkpoint of this architecture and config would have.
  std::vector<tensor_view> synthetic_tensors() const;

  const std::filesystem::path& root() const { return root_; }
  std::span<const safetensors_file> files() const { return files_; }
  const tensor_view* find(std::string_view name) const;
  // Like find, but throws mii::error naming the checkpoint and the tensor when it is absent.
  const tensor_view& get(std::string_view name) const;
  // The tensor must exist with exactly this shape; otherwise mii::error with both shapes.
  const tensor_view& get(std::string_view name, std::span<const std::int64_t> shape) const;
  std::vector<std::string_view> names() const;
  std::size_t total_bytes() const;

 private:
  std::filesystem::path root_;
  std::vector<safetensors_file> files_;
  std::vector<const tensor_view*> index_;  // all tensors sorted by name
  struct synthetic_store;
  std::shared_ptr<synthetic_store> synthetic_;
};

// Converts `count` elements starting at element `first` of `t` to `to`, writing to `out`.
// F32/F16/BF16 in any direction; bf16/f16 rounding is round-to-nearest-even.
void convert(const tensor_view& t, dtype to, void* out, std::int64_t first = 0, std::int64_t count = -1);
void convert(const void* in, dtype from, dtype to, void* out, std::int64_t count);

// Writes a safetensors file (used by tests, tools and random-weight benchmarks).
struct tensor_to_write {
  std::string name;
  dtype type;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;
};
void write_safetensors(const std::filesystem::path& path, std::span<const tensor_to_write> tensors,
                       std::span<const std::pair<std::string, std::string>> metadata = {});

}  // namespace mii::io
