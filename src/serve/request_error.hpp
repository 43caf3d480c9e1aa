// A request the server refuses, with everything an OpenAI-style error body carries:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// Thrown by request decoding and the handlers; the connection turns it into the HTTP answer.
#pragma once
#include <string>
#include <utility>

#include <mii/error.hpp>

namespace mii::serve {

struct request_error : error {
  request_error(int status, std::string message, std::string param = {}, std::string code = {})
      : error(message), status(status), param(std::move(param)), code(std::move(code)) {}

  int status;         // 400, 401, 404, 413, 503...
  std::string param;  // the request field at fault ("max_tokens", "messages[1].content"), or empty
  std::string code;   // OpenAI's machine-readable code ("model_not_found"), or empty
};

// OpenAI's error "type" for a status: invalid_request_error for every client error (a bad key and
// an unknown model included: OpenAI says which in "code"), server_error otherwise.
inline const char* error_type(int status) { return status < 500 ? "invalid_request_error" : "server_error"; }

}  // namespace mii::serve
