// One repo's folder in the Hugging Face cache, laid out exactly as huggingface_hub lays it out
// (file_download.py), so that Python tools and mii share the files:
//
//   <cache>/models--<namespace>--<name>/
//     refs/<revision>                  the commit sha a branch or tag last resolved to (no newline)
//     blobs/<etag>                     file contents, named by the Hub's ETag (sha256 for LFS files)
//     blobs/<etag>.incomplete          a download in progress (continued with a Range request)
//     snapshots/<sha>/<file>           symlink to ../../blobs/<etag> (relative: the cache can move)
//     .no_exist/<sha>/<file>           empty: the Hub said 404 for this optional file at this commit
//   <cache>/.locks/models--<namespace>--<name>/<etag>.lock   held while a blob is written
//
// Internal (src/io/); every write is atomic (temp + rename) or done under the blob's lock.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace mii::io::detail {

// A 40-hex-digit lowercase commit sha (huggingface_hub's REGEX_COMMIT_HASH).
bool is_commit_sha(std::string_view s);

class hub_cache_repo {
 public:
  hub_cache_repo(std::filesystem::path cache_dir, std::string repo_id);

  const std::string& repo_id() const { return repo_id_; }
  const std::filesystem::path& cache_dir() const { return cache_dir_; }
  const std::filesystem::path& folder() const { return folder_; }  // <cache>/models--ns--name

  std::filesystem::path snapshot(const std::string& sha) const { return folder_ / "snapshots" / sha; }
  std::filesystem::path pointer(const std::string& sha, const std::string& file) const { return snapshot(sha) / file; }
  std::filesystem::path blob(const std::string& etag) const { return folder_ / "blobs" / etag; }
  std::filesystem::path incomplete_blob(const std::string& etag) const { return folder_ / "blobs" / (etag + ".incomplete"); }
  std::filesystem::path lock_file(const std::string& etag) const;
  std::filesystem::path ref_file(const std::string& revision) const { return folder_ / "refs" / revision; }

  // The commit sha refs/<revision> holds, if any (a revision that is a sha is its own answer).
  std::optional<std::string> commit_of(const std::string& revision) const;
  // Records revision -> sha unless the revision is that sha or the ref already says so.
  void write_ref(const std::string& revision, const std::string& sha) const;
  // A pointer that leads to a file (a dangling link, its blob removed, counts as missing).
  bool has_file(const std::string& sha, const std::string& file) const;
  // .no_exist/<sha>/<file>: the Hub said this file does not exist at that commit.
  bool known_missing(const std::string& sha, const std::string& file) const;
  void mark_missing(const std::string& sha, const std::string& file) const;
  // snapshots/<sha>/<file> -> blobs/<etag>, relative, replacing whatever was there.
  void link(const std::string& sha, const std::string& file, const std::string& etag) const;
  // CACHEDIR.TAG at the cache root (backup tools skip the cache), as huggingface_hub writes it.
  void tag_cache_dir() const;

 private:
  std::filesystem::path cache_dir_;
  std::string repo_id_;
  std::filesystem::path folder_;
};

// An exclusive flock(2) on a lock file, held for the object's life. flock locks belong to the open
// file, so two threads of one process exclude each other as two processes do, and Python's
// filelock (which huggingface_hub uses) takes the same kind of lock on the same path.
class file_lock {
 public:
  explicit file_lock(const std::filesystem::path& path);
  ~file_lock();
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;

 private:
  int fd_ = -1;
};

// Writes `text` to `path` through a uniquely named temporary file and rename(2): readers see the
// old content or the new, never a part.
void write_file_atomically(const std::filesystem::path& path, std::string_view text);
// A name no other thread or process uses: "<base>.<pid>.<counter><random>.tmp".
std::filesystem::path unique_temp_name(const std::filesystem::path& base);

}  // namespace mii::io::detail
