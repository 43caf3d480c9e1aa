// The Hub's file protocol, as huggingface_hub speaks it (file_download.py): a HEAD of
// {endpoint}/{repo}/resolve/{revision}/{file} gives the commit (X-Repo-Commit), the blob name
// (X-Linked-Etag, else ETag), the size (X-Linked-Size, else Content-Length) and, for a large
// (LFS) file, the CDN address it redirects to; a GET of that address gives the bytes. Errors
// become messages that say what to do (a gated repo: set HF_TOKEN). Internal (src/io/).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include <mii/error.hpp>
#include <mii/io/hub.hpp>

namespace mii::io::detail {

// The Hub could not be reached or answered 429/5xx: the cache may still serve the files.
struct hub_unreachable : error {
  using error::error;
};

// What is being fetched, for requests and messages.
struct hub_file {
  const hub_settings& settings;
  const std::string& repo;
  const std::string& revision;  // what the URL names: the revision asked for, or the commit it resolved to
  std::string file;
  std::string asked = {};       // for messages: the revision asked for, when `revision` is its commit
  // "repo org/name, revision main (commit <sha>), file config.json"
  std::string describe() const;
};

struct hub_file_metadata {
  bool exists = false;       // false: the Hub answered 404 "entry not found" (the repo and revision exist)
  std::string commit;        // X-Repo-Commit (also on that 404), validated as a 40-hex sha
  std::string etag;          // the blob name: validated as a plain file name
  std::uint64_t size = 0;
  std::string download_url;  // the CDN address of an LFS file, else the resolve URL
};

// {endpoint}/{repo}/resolve/{revision}/{file}, quoted as huggingface_hub quotes it.
std::string resolve_url(const hub_file& f);

// HEAD, following relative redirects only (a renamed repo), as huggingface_hub does.
hub_file_metadata fetch_metadata(const hub_file& f);

// Downloads the blob into `incomplete` (continuing what it holds with a Range request, and
// resuming after a dropped or stalled connection up to 5 times in a row without progress),
// checks its size and, for an LFS file (a 64-hex ETag), its sha256, and renames it to `blob`.
// The caller holds the blob's lock. A wrong checksum deletes the download and names both hashes.
void download_blob(const hub_file& f, const hub_file_metadata& meta, const std::filesystem::path& incomplete,
                   const std::filesystem::path& blob, bool show_progress);

}  // namespace mii::io::detail
