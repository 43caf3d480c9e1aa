#include "io/hub_http.hpp"

#include <algorithm>
#include <cctype>
#include <exception>
#include <memory>
#include <mutex>

#if MII_HAVE_CURL
#include <curl/curl.h>
#endif

namespace mii::io::detail {

std::optional<std::string> http_response::header(std::string_view name) const {
  auto same = [&](const std::string& n) {
    return n.size() == name.size() && std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
           });
  };
  for (auto it = headers.rbegin(); it != headers.rend(); ++it)
    if (same(it->first)) return it->second;
  return std::nullopt;
}

#if MII_HAVE_CURL

bool http_available() { return true; }

namespace {

constexpr std::size_t error_body_limit = 4096;

// One transfer's state, reached from curl's C callbacks.
struct transfer {
  CURL* curl = nullptr;
  http_response response;
  const std::function<bool(const http_response&)>* take_body = nullptr;
  const std::function<void(const char*, std::size_t)>* on_data = nullptr;
  bool decided = false, taking = false;
  std::exception_ptr failure;  // thrown by a callback; rethrown after curl returns

  void decide() {
    if (decided) return;
    decided = true;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    taking = take_body && (*take_body)(response);
  }
};

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* self) {
  auto* t = static_cast<transfer*>(self);
  const std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    t->response.headers.clear();  // a new response (after a redirect or a 100 Continue)
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    t->response.headers.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  return size * count;
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* self) {
  auto* t = static_cast<transfer*>(self);
  const std::size_t n = size * count;
  try {
    t->decide();
    if (t->taking) {
      (*t->on_data)(data, n);
    } else if (t->response.body.size() < error_body_limit) {
      t->response.body.append(data, std::min(n, error_body_limit - t->response.body.size()));
    }
    return n;
  } catch (...) {
    t->failure = std::current_exception();
    return 0;  // anything but n: curl ends the transfer (CURLE_WRITE_ERROR)
  }
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct curl_handle {
  CURL* curl;
  curl_slist* headers = nullptr;
  curl_handle() : curl((global_init(), curl_easy_init())) {
    if (!curl) fail("libcurl: cannot create a transfer handle");
  }
  ~curl_handle() {
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
  }
};

http_response perform(const http_request& r, bool head, std::uint64_t offset,
                      const std::function<bool(const http_response&)>* take_body,
                      const std::function<void(const char*, std::size_t)>* on_data) {
  curl_handle h;
  transfer t;
  t.curl = h.curl;
  t.take_body = take_body;
  t.on_data = on_data;
  char error_text[CURL_ERROR_SIZE] = {};
  for (const auto& line : r.headers) h.headers = curl_slist_append(h.headers, line.c_str());
  CURL* c = h.curl;
  curl_easy_setopt(c, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h.headers);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "mii/0.1 (huggingface_hub-compatible)");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM: safe in threads
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_text);
#if LIBCURL_VERSION_NUM >= 0x075500  // 7.85
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, long(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, long(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, r.connect_timeout_s);
  if (r.timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT, r.timeout_s);
  if (r.stall_timeout_s > 0) {
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r.stall_timeout_s);
  }
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, r.follow_redirects ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  if (head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  // CURLOPT_RANGE rather than CURLOPT_RESUME_FROM: a server that ignores the range and answers
  // 200 with the whole file is then ours to handle (start over), not a curl error.
  const std::string range = std::to_string(offset) + "-";
  if (offset > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());

  const CURLcode rc = curl_easy_perform(c);
  if (t.failure) std::rethrow_exception(t.failure);
  if (rc != CURLE_OK)
    throw http_transport_error(r.url + ": " + (error_text[0] ? std::string(error_text) : curl_easy_strerror(rc)));
  t.decide();  // a response without a body (HEAD, an empty file) still gets its decision
  return std::move(t.response);
}

}  // namespace

http_response http_head(const http_request& request) { return perform(request, true, 0, nullptr, nullptr); }

http_response http_get(const http_request& request, std::uint64_t offset,
                       const std::function<bool(const http_response&)>& take_body,
                       const std::function<void(const char*, std::size_t)>& on_data) {
  return perform(request, false, offset, &take_body, &on_data);
}

#else  // built without libcurl

bool http_available() { return false; }

namespace {
[[noreturn]] void no_curl(const http_request& r) {
  fail("cannot fetch ", r.url, ": mii was built without libcurl (install libcurl4-openssl-dev and rebuild), so Hub ids ",
       "resolve from the Hugging Face cache only");
}
}  // namespace

http_response http_head(const http_request& request) { no_curl(request); }
http_response http_get(const http_request& request, std::uint64_t, const std::function<bool(const http_response&)>&,
                       const std::function<void(const char*, std::size_t)>&) {
  no_curl(request);
}

#endif

}  // namespace mii::io::detail
