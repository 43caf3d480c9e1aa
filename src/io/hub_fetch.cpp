#include "io/hub_fetch.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <mii/io/progress.hpp>

#include "io/hub_cache.hpp"
#include "io/hub_http.hpp"
#include "io/sha256.hpp"

namespace mii::io::detail {

namespace fs = std::filesystem;

namespace {

// Python's urllib.parse.quote: letters, digits, "_.-~" and the `safe` characters stay.
std::string quote(std::string_view s, std::string_view safe) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~' || safe.find(char(c)) != std::string_view::npos) {
      out.push_back(char(c));
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// "scheme://host:port" of a URL: the part a token must not leave.
std::string origin_of(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const auto path = url.find_first_of("/?#", scheme + 3);
  return url.substr(0, path);
}

// huggingface_hub's _normalize_etag: a weak "W/" prefix and the quotes go.
std::string normalize_etag(std::string e) {
  if (e.starts_with("W/")) e.erase(0, 2);
  e.erase(std::remove(e.begin(), e.end(), '"'), e.end());
  return e;
}

bool is_sha256(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The blob name becomes a path: only a plain name is accepted from the server.
bool safe_file_name(std::string_view s) {
  return !s.empty() && s.size() <= 200 && s != "." && s != ".." && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::vector<std::string> auth_headers(const hub_settings& s) {
  if (s.token.empty()) return {};
  return {"Authorization: Bearer " + s.token};
}

std::string token_advice(const hub_settings& s) {
  return s.token.empty() ? "no token was sent: set HF_TOKEN (or log in with `hf auth login`, which writes $HF_HOME/token)"
                         : "the token sent (HF_TOKEN or the token file) was refused or has no access";
}

// An HTTP error status as a message saying what it means and what to do.
[[noreturn]] void http_failure(const hub_file& f, const std::string& url, const http_response& r) {
  const std::string code = r.header("X-Error-Code").value_or("");
  std::string detail = r.header("X-Error-Message").value_or("");
  if (detail.empty() && !r.body.empty() && r.body.size() < 300 && r.body.find('<') == std::string::npos) detail = r.body;
  const std::string status = "HTTP " + std::to_string(r.status) + " from " + url;
  const std::string said = detail.empty() ? "" : " (the Hub says: " + detail + ")";
  const std::string page = f.settings.endpoint + "/" + f.repo;
  if (code == "GatedRepo" || (r.status == 403 && code.empty()))
    fail(f.describe(), ": ", status, ": ", f.repo, " is a gated repo: accept its conditions at ", page,
         " with your account and set HF_TOKEN to a token of that account; ", token_advice(f.settings), said);
  if (r.status == 401 || r.status == 403)
    fail(f.describe(), ": ", status, ": the Hub refused access: the repo does not exist, or it is private or gated; ",
         token_advice(f.settings), said);
  if (r.status == 404) {
    if (code == "RevisionNotFound")
      fail(f.describe(), ": ", status, ": revision '", f.revision, "' not found in ", f.repo, said);
    if (code == "RepoNotFound") fail(f.describe(), ": ", status, ": repo ", f.repo, " not found on ", f.settings.endpoint, said);
    fail(f.describe(), ": ", status, ": not found (the repo, the revision or the file does not exist)", said);
  }
  if (r.status == 408 || r.status == 429 || r.status >= 500)
    throw hub_unreachable(f.describe() + ": " + status + ": the Hub is unavailable or limiting requests" + said);
  fail(f.describe(), ": ", status, said);
}

bool retryable(long status) { return status == 408 || status == 429 || status >= 500; }

// "bytes START-END/TOTAL" -> START (or -1).
long long content_range_start(const http_response& r) {
  const auto v = r.header("Content-Range");
  if (!v || !v->starts_with("bytes ")) return -1;
  return std::strtoll(v->c_str() + 6, nullptr, 10);
}

// The open .incomplete file: appended to, hashed as it grows.
class partial_file {
 public:
  explicit partial_file(const fs::path& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) fail(path.string(), ": cannot open for writing: ", std::strerror(errno));
    struct stat st {};
    ::fstat(fd_, &st);
    size_ = std::uint64_t(st.st_size);
  }
  ~partial_file() {
    if (fd_ >= 0) ::close(fd_);
  }
  partial_file(const partial_file&) = delete;
  partial_file& operator=(const partial_file&) = delete;

  std::uint64_t size() const { return size_; }

  // Hashes what an earlier run left (the digest covers the whole file).
  void hash_existing() {
    hash_.reset();
    std::vector<char> buf(1 << 20);
    for (std::uint64_t at = 0; at < size_;) {
      const ssize_t n = ::pread(fd_, buf.data(), std::min<std::uint64_t>(buf.size(), size_ - at), off_t(at));
      if (n <= 0) fail(path_.string(), ": cannot read back: ", n < 0 ? std::strerror(errno) : "file shrank");
      hash_.update(buf.data(), std::size_t(n));
      at += std::uint64_t(n);
    }
  }
  void truncate() {
    if (::ftruncate(fd_, 0) != 0) fail(path_.string(), ": cannot truncate: ", std::strerror(errno));
    size_ = 0;
    hash_.reset();
  }
  void append(const char* data, std::size_t n) {
    for (std::size_t done = 0; done < n;) {
      const ssize_t w = ::pwrite(fd_, data + done, n - done, off_t(size_ + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail(path_.string(), ": cannot write: ", std::strerror(errno));
      done += std::size_t(w);
    }
    hash_.update(data, n);
    size_ += n;
  }
  std::string digest() { return hash_.hex_digest(); }
  void sync() {
    if (::fsync(fd_) != 0) fail(path_.string(), ": cannot flush to disk: ", std::strerror(errno));
  }

 private:
  fs::path path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  sha256 hash_;
};

std::string megabytes(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", double(bytes) / 1e6);
  return buf;
}

}  // namespace

std::string hub_file::describe() const {
  const bool pinned = !asked.empty() && asked != revision;
  return "repo " + repo + ", revision " + (pinned ? asked + " (commit " + revision + ")" : revision) + ", file " + file;
}

std::string resolve_url(const hub_file& f) {
  return f.settings.endpoint + "/" + f.repo + "/resolve/" + quote(f.revision, "") + "/" + quote(f.file, "/");
}

hub_file_metadata fetch_metadata(const hub_file& f) {
  http_request req;
  req.url = resolve_url(f);
  req.headers = auth_headers(f.settings);
  req.headers.push_back("Accept-Encoding: identity");  // the size of the file, not of a compressed body
  req.timeout_s = f.settings.metadata_timeout_s;
  req.connect_timeout_s = f.settings.metadata_timeout_s;
  http_response r;
  for (int hop = 0;; ++hop) {
    try {
      r = http_head(req);
    } catch (const http_transport_error& e) {
      throw hub_unreachable(f.describe() + ": cannot reach the Hub: " + e.what());
    }
    const auto location = r.header("Location");
    // A relative redirect is the Hub's own (a renamed repo): follow it; an absolute one is the
    // CDN of an LFS file: its address is the answer.
    if (r.status >= 300 && r.status < 400 && location && location->starts_with("/") && hop < 10) {
      req.url = origin_of(f.settings.endpoint) + *location;
      continue;
    }
    break;
  }
  hub_file_metadata m;
  const auto commit = r.header("X-Repo-Commit");
  // "Entry not found" (a mirror may leave the code out): the repo and revision exist, the file not.
  const std::string code = r.header("X-Error-Code").value_or("");
  if (r.status == 404 && (code == "EntryNotFound" || code.empty())) {
    if (commit && is_commit_sha(*commit)) m.commit = *commit;
    return m;
  }
  if (r.status >= 400) http_failure(f, req.url, r);
  if (!commit || !is_commit_sha(*commit))
    fail(f.describe(), ": ", req.url, " answered without a valid X-Repo-Commit header (got \"", commit.value_or(""),
         "\"): HF_ENDPOINT (", f.settings.endpoint, ") does not look like a Hugging Face Hub, or a proxy rewrites its answers");
  m.exists = true;
  m.commit = *commit;
  m.etag = normalize_etag(r.header("X-Linked-Etag").value_or(r.header("ETag").value_or("")));
  if (!safe_file_name(m.etag))
    fail(f.describe(), ": ", req.url, " answered with ETag \"", m.etag, "\", which cannot name a blob in the cache");
  const bool redirect = r.status >= 300 && r.status < 400;
  const auto size = r.header("X-Linked-Size") ? r.header("X-Linked-Size") : redirect ? std::nullopt : r.header("Content-Length");
  char* end = nullptr;
  if (!size || size->empty() || (m.size = std::strtoull(size->c_str(), &end, 10), *end != '\0'))
    fail(f.describe(), ": ", req.url, " answered without the file's size (X-Linked-Size or Content-Length)");
  m.download_url = redirect && r.header("Location") ? *r.header("Location") : req.url;
  return m;
}

void download_blob(const hub_file& f, const hub_file_metadata& meta, const fs::path& incomplete, const fs::path& blob,
                   bool show_progress) {
  http_request req;
  req.url = meta.download_url;
  // The token goes to the Hub only: a CDN address is signed, and S3 refuses a second credential.
  if (origin_of(meta.download_url) == origin_of(f.settings.endpoint)) req.headers = auth_headers(f.settings);
  req.headers.push_back("Accept-Encoding: identity");
  req.connect_timeout_s = f.settings.download_timeout_s;
  req.stall_timeout_s = f.settings.download_timeout_s;
  req.follow_redirects = true;

  partial_file out(incomplete);
  if (out.size() > meta.size) out.truncate();  // not a prefix of this blob: start over
  out.hash_existing();
  progress_bar bar(f.repo + " " + f.file + " (MB)", show_progress);
  const auto mb = [](std::uint64_t b) { return std::size_t((b + 999'999) / 1'000'000); };
  int tries_left = 5;  // in a row without a byte of progress, as huggingface_hub's http_get
  std::string last_problem;
  while (out.size() < meta.size) {
    const std::uint64_t before = out.size();
    bool restart = false;
    try {
      const http_response r = http_get(
          req, out.size(),
          [&](const http_response& head) {
            if (head.status == 200 && out.size() > 0) out.truncate();  // the range was ignored: the whole file comes
            if (head.status == 206 && content_range_start(head) != (long long)out.size()) {
              restart = true;  // not the range asked for: drop what we have and ask again from 0
              return false;
            }
            return head.status == 200 || head.status == 206;
          },
          [&](const char* data, std::size_t n) {
            if (out.size() + n > meta.size)
              fail(f.describe(), ": ", meta.download_url, " sent more than the ", meta.size, " bytes the Hub announced");
            out.append(data, n);
            bar.update(mb(out.size()), mb(meta.size));
          });
      if (restart) {
        out.truncate();
        last_problem = meta.download_url + " answered a range other than the one asked for";
      } else if (r.status == 416) {
        out.truncate();  // what we hold does not fit this file: start over
        last_problem = meta.download_url + ": HTTP 416 (range not satisfiable)";
      } else if (retryable(r.status)) {
        last_problem = "HTTP " + std::to_string(r.status) + " from " + meta.download_url;
      } else if (r.status != 200 && r.status != 206) {
        http_failure(f, meta.download_url, r);
      } else if (out.size() < meta.size) {
        last_problem = meta.download_url + ": the connection closed after " + std::to_string(out.size()) + " of " +
                       std::to_string(meta.size) + " bytes";
      }
    } catch (const http_transport_error& e) {
      last_problem = e.what();
    }
    if (out.size() >= meta.size) break;
    if (out.size() > before) tries_left = 5;
    if (--tries_left == 0)
      fail(f.describe(), ": download failed: ", last_problem, "; the ", out.size(), " bytes received are kept in ",
           incomplete.string(), " and the next attempt continues from there");
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * (5 - tries_left)));
  }
  bar.update(mb(meta.size), mb(meta.size));
  bar.finish();
  if (is_sha256(meta.etag)) {
    const std::string got = out.digest();
    if (got != meta.etag) {
      std::error_code ec;
      fs::remove(incomplete, ec);
      fail(f.describe(), ": checksum mismatch: the ", megabytes(meta.size), " downloaded from ", meta.download_url,
           " have sha256 ", got, " but the Hub's ETag says ", meta.etag,
           "; the bad download was deleted (a proxy or disk corrupted it; run again to download it anew)");
    }
  }
  out.sync();
  std::error_code ec;
  fs::rename(incomplete, blob, ec);
  if (ec) fail(blob.string(), ": cannot move the finished download into place: ", ec.message());
}

}  // namespace mii::io::detail
