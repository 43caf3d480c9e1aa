#include "io/hub_cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include <mii/error.hpp>

namespace mii::io::detail {

namespace fs = std::filesystem;

bool is_commit_sha(std::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

namespace {

// huggingface_hub's repo_folder_name: "models--" + the id with '/' replaced by "--".
std::string repo_folder_name(const std::string& repo_id) {
  std::string out = "models";
  std::size_t begin = 0;
  for (std::size_t slash; (slash = repo_id.find('/', begin)) != std::string::npos; begin = slash + 1)
    out += "--" + repo_id.substr(begin, slash - begin);
  return out + "--" + repo_id.substr(begin);
}

std::string read_small_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  if (in) s << in.rdbuf();
  return s.str();
}

void make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec && !fs::is_directory(dir)) fail(dir.string(), ": cannot create the directory: ", ec.message());
}

}  // namespace

hub_cache_repo::hub_cache_repo(fs::path cache_dir, std::string repo_id)
    : cache_dir_(std::move(cache_dir)), repo_id_(std::move(repo_id)), folder_(cache_dir_ / repo_folder_name(repo_id_)) {}

fs::path hub_cache_repo::lock_file(const std::string& etag) const {
  return cache_dir_ / ".locks" / folder_.filename() / (etag + ".lock");
}

std::optional<std::string> hub_cache_repo::commit_of(const std::string& revision) const {
  if (is_commit_sha(revision)) return revision;
  std::error_code ec;
  if (!fs::is_regular_file(ref_file(revision), ec)) return std::nullopt;
  std::string sha = read_small_file(ref_file(revision));
  while (!sha.empty() && (sha.back() == '\n' || sha.back() == '\r' || sha.back() == ' ')) sha.pop_back();
  if (!is_commit_sha(sha))
    fail(ref_file(revision).string(), ": holds \"", sha.substr(0, 80), "\", which is not a 40-hex-digit commit sha");
  return sha;
}

void hub_cache_repo::write_ref(const std::string& revision, const std::string& sha) const {
  if (revision == sha) return;
  std::error_code ec;
  if (fs::is_regular_file(ref_file(revision), ec) && read_small_file(ref_file(revision)) == sha) return;
  make_dirs(ref_file(revision).parent_path());
  write_file_atomically(ref_file(revision), sha);
}

bool hub_cache_repo::has_file(const std::string& sha, const std::string& file) const {
  std::error_code ec;
  return fs::is_regular_file(pointer(sha, file), ec);  // follows the link
}

bool hub_cache_repo::known_missing(const std::string& sha, const std::string& file) const {
  std::error_code ec;
  return fs::is_regular_file(folder_ / ".no_exist" / sha / file, ec);
}

void hub_cache_repo::mark_missing(const std::string& sha, const std::string& file) const {
  // Best effort, as in huggingface_hub: it only saves a request next time.
  const fs::path p = folder_ / ".no_exist" / sha / file;
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  if (!ec && !fs::exists(p, ec)) std::ofstream(p, std::ios::binary);
}

void hub_cache_repo::link(const std::string& sha, const std::string& file, const std::string& etag) const {
  const fs::path at = pointer(sha, file);
  make_dirs(at.parent_path());
  // Relative, as huggingface_hub makes it ("../../blobs/<etag>" for a top-level file).
  const fs::path target = blob(etag).lexically_relative(at.parent_path());
  // A link under a temporary name renamed over the pointer: the pointer is always either the old
  // entry or the whole new link, and two processes linking the same file at once both succeed.
  const fs::path temp = unique_temp_name(at);
  std::error_code ec;
  fs::create_symlink(target, temp, ec);
  if (ec) fail(temp.string(), ": cannot create a symbolic link to ", target.string(), ": ", ec.message());
  fs::rename(temp, at, ec);
  if (ec) {
    fs::remove(temp, ec);
    fail(at.string(), ": cannot put the link in place: ", ec.message());
  }
}

void hub_cache_repo::tag_cache_dir() const {
  const fs::path tag = cache_dir_ / "CACHEDIR.TAG";
  std::error_code ec;
  if (fs::exists(tag, ec)) return;
  try {
    write_file_atomically(tag,
                          "Signature: 8a477f597d28d172789f06886806bc55\n"
                          "# This file is a cache directory tag created by mii (the Hugging Face Hub cache).\n"
                          "# For information about cache directory tags see https://bford.info/cachedir/\n");
  } catch (const error&) {
    // Best effort, as in huggingface_hub: a read-only cache still serves its files.
  }
}

file_lock::file_lock(const fs::path& path) {
  make_dirs(path.parent_path());
  // 0664, as huggingface_hub: users sharing a cache can all wait on the lock.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0664);
  if (fd_ < 0) fail(path.string(), ": cannot open the lock file: ", std::strerror(errno));
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    // Some network filesystems have no flock; the blob still appears only by rename, so a
    // missing lock costs at most a download done twice.
    if (errno == ENOLCK || errno == EOPNOTSUPP) break;
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    fail(path.string(), ": cannot lock: ", std::strerror(err));
  }
}

file_lock::~file_lock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

fs::path unique_temp_name(const fs::path& base) {
  static std::atomic<unsigned> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream name;
  name << base.filename().string() << '.' << ::getpid() << '.' << counter++ << std::hex << (rng() & 0xffffff) << ".tmp";
  return base.parent_path() / name.str();
}

void write_file_atomically(const fs::path& path, std::string_view text) {
  const fs::path temp = unique_temp_name(path);
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(text.data(), std::streamsize(text.size()));
    if (!out) {
      std::error_code ec;
      fs::remove(temp, ec);
      fail(temp.string(), ": cannot write");
    }
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    fail(path.string(), ": cannot write: ", ec.message());
  }
}

}  // namespace mii::io::detail
