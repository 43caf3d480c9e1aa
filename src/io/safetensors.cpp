#include <mii/io/safetensors.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <mii/error.hpp>

#include "io/json_reader.hpp"

namespace mii::io {
namespace {

constexpr std::uint64_t max_header_bytes = 100ull << 20;  // the limit the reference library uses too

std::optional<dtype> parse_dtype(std::string_view s) {
  if (s == "F32") return dtype::f32;
  if (s == "F16") return dtype::f16;
  if (s == "BF16") return dtype::bf16;
  if (s == "F8_E4M3") return dtype::f8_e4m3;
  return std::nullopt;
}

std::string shape_str(std::span<const std::int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

std::int64_t tensor_view::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string tensor_view::shape_string() const { return shape_str(shape); }

safetensors_file::safetensors_file(safetensors_file&& o) noexcept { *this = std::move(o); }

safetensors_file& safetensors_file::operator=(safetensors_file&& o) noexcept {
  if (this != &o) {
    if (map_) munmap(map_, size_);
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    size_ = std::exchange(o.size_, 0);
    fd_ = std::exchange(o.fd_, -1);
    tensors_ = std::move(o.tensors_);
    metadata_ = std::move(o.metadata_);
    for (auto& t : tensors_) t.file = &path_;
  }
  return *this;
}

safetensors_file::~safetensors_file() {
  if (map_) munmap(map_, size_);
  if (fd_ >= 0) ::close(fd_);
}

void safetensors_file::prefetch() const {
  if (map_) madvise(map_, size_, MADV_WILLNEED);
}

safetensors_file safetensors_file::open(const std::filesystem::path& path) {
  const std::string where = path.string();
  const int fd = ::open(where.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(where, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail(where, ": cannot stat: ", std::strerror(e));
  }
  safetensors_file f;
  f.path_ = path;
  f.fd_ = fd;  // closed by f from here on, also when a check below fails
  f.size_ = std::size_t(st.st_size);
  if (f.size_ < 8) fail(where, ": file is ", f.size_, " bytes, too short for the 8-byte safetensors header length");
  f.map_ = mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (f.map_ == MAP_FAILED) {
    f.map_ = nullptr;
    fail(where, ": mmap failed: ", std::strerror(errno));
  }
  const auto* base = static_cast<const std::byte*>(f.map_);
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, base, 8);  // little-endian on every platform we build for
  if (header_len > f.size_ - 8)
    fail(where, ": header length ", header_len, " is larger than the file (", f.size_,
         " bytes): the file is truncated or not a safetensors file");
  if (header_len > max_header_bytes) fail(where, ": header length ", header_len, " exceeds the 100 MB limit");
  const std::size_t data_start = 8 + header_len;
  const std::uint64_t data_size = f.size_ - data_start;

  const auto doc = detail::json_document::from_string(
      std::string_view(reinterpret_cast<const char*>(base + 8), header_len), where + " (header)");
  const auto root = detail::json_object::expect(doc.root(), doc.origin(), "");

  struct span_check {
    std::uint64_t begin, end;
    const std::string* name;
  };
  std::vector<span_check> spans;
  for (auto [key_sv, value] : root.object()) {
    const std::string key(key_sv);
    if (key == "__metadata__") {
      const auto meta = detail::json_object::expect(value, doc.origin(), key);
      for (auto [k, v] : meta.object()) {
        std::string_view text;
        if (v.get(text)) meta.bad(k, "a string (safetensors metadata maps strings to strings)", v);
        f.metadata_.emplace_back(std::string(k), std::string(text));
      }
      continue;
    }
    const auto entry = detail::json_object::expect(value, doc.origin(), key);
    const std::string type_name = entry.require(entry.get_string("dtype"), "dtype");
    const auto shape = entry.require(entry.get_int_list("shape"), "shape");
    const auto offsets = entry.require(entry.get_int_list("data_offsets"), "data_offsets");
    const auto type = parse_dtype(type_name);
    if (!type)
      fail(where, ": tensor '", key, "' has dtype ", type_name,
           ", which mii cannot load (supported: F32, F16, BF16, F8_E4M3)");
    if (offsets.size() != 2)
      entry.invalid("data_offsets", "must hold exactly two integers [begin, end]");
    std::int64_t numel = 1;
    for (auto d : shape) {
      if (d < 0) entry.invalid("shape", "has a negative dimension " + shape_str(shape));
      if (d != 0 && numel > std::numeric_limits<std::int64_t>::max() / d)
        entry.invalid("shape", "overflows 64 bits " + shape_str(shape));
      numel *= d;
    }
    const std::int64_t begin = offsets[0], end = offsets[1];
    if (begin < 0 || end < begin)
      fail(where, ": tensor '", key, "' has data_offsets [", begin, ", ", end, "]: begin must be >= 0 and <= end");
    if (std::uint64_t(end) > data_size)
      fail(where, ": tensor '", key, "' has data_offsets [", begin, ", ", end, "] past the end of the data section (",
           data_size, " bytes): the file is truncated");
    // numel * dtype size can exceed 64 bits (and wrap to a small number) while numel does not.
    if (std::uint64_t(numel) > data_size / dtype_size(*type))
      fail(where, ": tensor '", key, "' has dtype ", type_name, " and shape ", shape_str(shape),
           ", more bytes than the whole data section (", data_size, " bytes)");
    const std::uint64_t expected = std::uint64_t(numel) * dtype_size(*type);
    if (std::uint64_t(end - begin) != expected)
      fail(where, ": tensor '", key, "' has ", end - begin, " bytes of data but dtype ", type_name, " and shape ",
           shape_str(shape), " need ", expected);
    tensor_view t;
    t.name = key;
    t.type = *type;
    t.shape = shape;
    t.bytes = {base + data_start + begin, std::size_t(end - begin)};
    t.file_offset = data_start + std::uint64_t(begin);
    f.tensors_.push_back(std::move(t));
  }
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](auto& a, auto& b) { return a.name < b.name; });
  // JSON allows a key twice (also spelled differently, with \u escapes); which entry a lookup found
  // would then be arbitrary.
  for (std::size_t i = 1; i < f.tensors_.size(); ++i)
    if (f.tensors_[i].name == f.tensors_[i - 1].name)
      fail(where, ": tensor '", f.tensors_[i].name, "' is listed twice in the header");
  for (auto& t : f.tensors_) {
    t.file = &f.path_;
    t.fd = f.fd_;
    const auto b = std::uint64_t(t.bytes.data() - (base + data_start));
    // An empty tensor occupies no bytes: it overlaps nothing, even at another tensor's offset.
    if (!t.bytes.empty()) spans.push_back({b, b + t.bytes.size(), &t.name});
  }
  std::sort(spans.begin(), spans.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      fail(where, ": tensors '", *spans[i - 1].name, "' [", spans[i - 1].begin, ", ", spans[i - 1].end, ") and '",
           *spans[i].name, "' [", spans[i].begin, ", ", spans[i].end, ") overlap");
  return f;
}

const tensor_view* safetensors_file::find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const tensor_view& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

// ---- checkpoint --------------------------------------------------------------------------------

checkpoint checkpoint::open(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  checkpoint c;
  fs::path index_file;
  if (fs::is_directory(path, ec)) {
    c.root_ = path;
    if (fs::exists(path / "model.safetensors.index.json")) {
      index_file = path / "model.safetensors.index.json";
    } else if (fs::exists(path / "model.safetensors")) {
      c.files_.push_back(safetensors_file::open(path / "model.safetensors"));
    } else {
      fail(path.string(), ": no model.safetensors or model.safetensors.index.json in this directory");
    }
  } else if (fs::is_regular_file(path, ec)) {
    c.root_ = path.parent_path();
    if (path.string().ends_with(".index.json")) {
      index_file = path;
    } else {
      c.files_.push_back(safetensors_file::open(path));
    }
  } else {
    fail(path.string(), ": checkpoint not found");
  }

  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor -> shard file name
  if (!index_file.empty()) {
    const auto doc = detail::json_document::from_file(index_file);
    const auto root = detail::json_object::expect(doc.root(), doc.origin(), "");
    const auto map = root.get_object("weight_map");
    if (!map) root.missing("weight_map");
    std::vector<std::string> shards;
    for (auto [k, v] : map->object()) {
      std::string_view file;
      if (v.get(file)) map->bad(k, "a shard file name", v);
      if (file.find('/') != std::string_view::npos || file == ".." || file.empty())
        map->invalid(k, "names shard '" + std::string(file) + "', which is not a plain file name in the directory");
      weight_map.emplace_back(std::string(k), std::string(file));
      if (std::find(shards.begin(), shards.end(), file) == shards.end()) shards.emplace_back(file);
    }
    std::sort(shards.begin(), shards.end());
    for (const auto& s : shards) {
      const fs::path shard = index_file.parent_path() / s;
      if (!fs::exists(shard)) fail(index_file.string(), ": shard '", s, "' listed in weight_map does not exist");
      c.files_.push_back(safetensors_file::open(shard));
    }
  }
  for (const auto& f : c.files_)
    for (const auto& t : f.tensors()) c.index_.push_back(&t);
  std::sort(c.index_.begin(), c.index_.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (std::size_t i = 1; i < c.index_.size(); ++i)
    if (c.index_[i]->name == c.index_[i - 1]->name)
      fail(c.root_.string(), ": tensor '", c.index_[i]->name, "' appears in both ", c.index_[i - 1]->file->string(),
           " and ", c.index_[i]->file->string());
  for (const auto& [name, file] : weight_map) {
    const tensor_view* t = c.find(name);
    if (!t) fail(index_file.string(), ": weight_map lists tensor '", name, "' in '", file, "' but that shard does not hold it");
    if (t->file->filename() != file)
      fail(index_file.string(), ": weight_map puts tensor '", name, "' in '", file, "' but it is in '",
           t->file->filename().string(), "'");
  }
  return c;
}

struct checkpoint::synthetic_store {
  std::mutex mu;
  std::deque<tensor_view> tensors;  // deque: pointers stay valid as it grows
};

checkpoint checkpoint::synthetic() {
  checkpoint c;
  c.root_ = "<random weights>";
  c.synthetic_ = std::make_shared<synthetic_store>();
  return c;
}

std::vector<tensor_view> checkpoint::synthetic_tensors() const {
  std::vector<tensor_view> out;
  if (!synthetic_) return out;
  std::lock_guard lock(synthetic_->mu);
  for (const auto& t : synthetic_->tensors)
    if (std::none_of(out.begin(), out.end(), [&](const tensor_view& o) { return o.name == t.name; })) out.push_back(t);
  return out;
}

const tensor_view* checkpoint::find(std::string_view name) const {
  auto it = std::lower_bound(index_.begin(), index_.end(), name,
                             [](const tensor_view* t, std::string_view n) { return t->name < n; });
  return it != index_.end() && (*it)->name == name ? *it : nullptr;
}

const tensor_view& checkpoint::get(std::string_view name) const {
  if (const auto* t = find(name)) return *t;
  fail(root_.string(), ": tensor '", name, "' is missing from the checkpoint");
}

const tensor_view& checkpoint::get(std::string_view name, std::span<const std::int64_t> shape) const {
  if (synthetic_) {
    std::lock_guard lock(synthetic_->mu);
    tensor_view& t = synthetic_->tensors.emplace_back();
    t.name = std::string(name);
    t.type = dtype::bf16;
    t.shape.assign(shape.begin(), shape.end());
    t.file = &root_;
    return t;
  }
  const tensor_view& t = get(name);
  if (!std::equal(t.shape.begin(), t.shape.end(), shape.begin(), shape.end()))
    fail(t.file->string(), ": tensor '", name, "' has shape ", t.shape_string(), " but the config implies ",
         shape_str(shape));
  return t;
}

std::vector<std::string_view> checkpoint::names() const {
  std::vector<std::string_view> out;
  for (auto* t : index_) out.push_back(t->name);
  return out;
}

std::size_t checkpoint::total_bytes() const {
  std::size_t n = 0;
  for (auto* t : index_) n += t->bytes.size();
  return n;
}

// ---- conversion --------------------------------------------------------------------------------

namespace {
// Tensor data need not be aligned to its element size (writers other than the reference one do
// not pad between tensors), so elements are loaded with memcpy rather than through a typed pointer.
template <class In>
float load_as_float(const In* p, std::int64_t i) {
  In v;
  std::memcpy(&v, reinterpret_cast<const std::byte*>(p) + i * std::int64_t(sizeof(In)), sizeof(In));
  if constexpr (std::is_same_v<In, float>) {
    return v;
  } else {
    return to_float(v);
  }
}
template <class Out>
Out store_from_float(float f) {
  if constexpr (std::is_same_v<Out, float>) {
    return f;
  } else if constexpr (std::is_same_v<Out, bf16_t>) {
    return to_bf16(f);
  } else if constexpr (std::is_same_v<Out, e4m3_t>) {
    return e4m3_t{to_e4m3(f)};
  } else {
    return to_fp16(f);
  }
}
template <class In, class Out>
void convert_typed(const void* in, void* out, std::int64_t n) {
  const auto* src = static_cast<const In*>(in);
  auto* dst = static_cast<Out*>(out);
  for (std::int64_t i = 0; i < n; ++i) dst[i] = store_from_float<Out>(load_as_float(src, i));
}
template <class In>
void convert_from(const void* in, dtype to, void* out, std::int64_t n) {
  switch (to) {
    case dtype::f32: return convert_typed<In, float>(in, out, n);
    case dtype::f16: return convert_typed<In, fp16_t>(in, out, n);
    case dtype::bf16: return convert_typed<In, bf16_t>(in, out, n);
    case dtype::f8_e4m3: return convert_typed<In, e4m3_t>(in, out, n);
  }
}
}  // namespace

void convert(const void* in, dtype from, dtype to, void* out, std::int64_t count) {
  if (from == to) {
    std::memcpy(out, in, std::size_t(count) * dtype_size(from));
    return;
  }
  switch (from) {
    case dtype::f32: return convert_from<float>(in, to, out, count);
    case dtype::f16: return convert_from<fp16_t>(in, to, out, count);
    case dtype::bf16: return convert_from<bf16_t>(in, to, out, count);
    case dtype::f8_e4m3: return convert_from<e4m3_t>(in, to, out, count);
  }
}

void convert(const tensor_view& t, dtype to, void* out, std::int64_t first, std::int64_t count) {
  const std::int64_t n = t.numel();
  if (count < 0) count = n - first;
  if (first < 0 || first + count > n)
    fail(t.file ? t.file->string() : std::string("<tensor>"), ": tensor '", t.name, "': elements [", first, ", ",
         first + count, ") out of range for ", n, " elements");
  convert(t.bytes.data() + std::size_t(first) * dtype_size(t.type), t.type, to, out, count);
}

// ---- writer ------------------------------------------------------------------------------------

namespace {
std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}
}  // namespace

void write_safetensors(const std::filesystem::path& path, std::span<const tensor_to_write> tensors,
                       std::span<const std::pair<std::string, std::string>> metadata) {
  std::ostringstream header;
  header << '{';
  bool first = true;
  if (!metadata.empty()) {
    header << "\"__metadata__\":{";
    for (std::size_t i = 0; i < metadata.size(); ++i)
      header << (i ? "," : "") << '"' << json_escape(metadata[i].first) << "\":\"" << json_escape(metadata[i].second)
             << '"';
    header << '}';
    first = false;
  }
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    std::int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    if (std::uint64_t(numel) * dtype_size(t.type) != t.bytes.size())
      fail("write_safetensors(", path.string(), "): tensor '", t.name, "' has ", t.bytes.size(),
           " bytes, its shape and dtype need ", numel * std::int64_t(dtype_size(t.type)));
    header << (first ? "" : ",") << '"' << json_escape(t.name) << "\":{\"dtype\":\"" << dtype_name(t.type)
           << "\",\"shape\":" << shape_str(t.shape) << ",\"data_offsets\":[" << offset << ','
           << offset + t.bytes.size() << "]}";
    offset += t.bytes.size();
    first = false;
  }
  header << '}';
  std::string h = header.str();
  while (h.size() % 8) h += ' ';  // keep the data section 8-byte aligned, as the reference writer does
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path.string(), ": cannot open for writing");
  const std::uint64_t len = h.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(h.data(), std::streamsize(h.size()));
  for (const auto& t : tensors) out.write(reinterpret_cast<const char*>(t.bytes.data()), std::streamsize(t.bytes.size()));
  if (!out) fail(path.string(), ": write failed");
}

}  // namespace mii::io
