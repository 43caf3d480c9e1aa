// The HTTP client the Hub downloads use: HEAD and GET over libcurl, the response headers kept,
// a GET's body streamed to the caller from any byte offset. Nothing Hub-specific here
// (hub_fetch.hpp knows the Hub). Internal (src/io/). Thread-safe: each call has its own handle.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <mii/error.hpp>

namespace mii::io::detail {

struct http_request {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  long timeout_s = 0;                // the whole request (0: no limit)
  long connect_timeout_s = 10;
  long stall_timeout_s = 0;          // give up after this long without receiving a byte (0: never)
  bool follow_redirects = false;     // GET: where a 3xx leads, up to 10 times
};

struct http_response {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // of the last response, in order
  std::string body;                  // a body not taken by the caller (error texts), its first 4 KB
  // The value of a header (case-insensitive name), the last one when repeated.
  std::optional<std::string> header(std::string_view name) const;
};

// No HTTP answer came, or it was cut: the name does not resolve, the connection is refused or
// drops, a timeout, a TLS failure. The message names the URL.
struct http_transport_error : error {
  using error::error;
};

// True when mii was built with libcurl; otherwise every call below throws.
bool http_available();

http_response http_head(const http_request& request);

// GET, asking for the bytes from `offset` on (a Range request) when it is not 0. Once the final
// response's headers are in, `take_body(response)` says whether its body goes to `on_data`
// (true) or is kept as the response's error text (false). An exception from either callback
// ends the transfer and comes out of http_get.
http_response http_get(const http_request& request, std::uint64_t offset,
                       const std::function<bool(const http_response&)>& take_body,
                       const std::function<void(const char*, std::size_t)>& on_data);

}  // namespace mii::io::detail
