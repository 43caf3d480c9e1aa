// Fuzzes mii-serve's request decoding (src/serve/protocol.cpp): the input's first byte picks the
// endpoint ('c' /v1/completions, 'h' /v1/chat/completions, 'm' /mii/{deployment}; other bytes by
// their value mod 3), the rest is the request body. Checked:
//  - a request_error (a 4xx/404 naming the field) is the only refusal; any other exception, a
//    crash or a sanitizer report is a finding;
//  - its error body is valid JSON (messages quote client bytes);
//  - an accepted request gives parameters mii::validate accepts once fitted to a context, chat
//    template variables that are valid JSON, and prompts that are not empty.
#include <cstdint>
#include <string>

#include <mii/config.hpp>

#include "fuzz_support.hpp"
#include "io/json_reader.hpp"
#include "serve/protocol.hpp"
#include "serve/request_error.hpp"
#include "serve/responses.hpp"

namespace {

using mii::fuzz::finding;

void must_parse(const std::string& json, const char* what) {
  try {
    (void)mii::detail::json_document::from_string(json, what);
  } catch (const mii::error& e) {
    finding(std::string(what) + " is not valid JSON: " + e.what() + "\n" + json.substr(0, 2000));
  }
}

void must_validate(mii::generate_params p, std::optional<std::int64_t> max_tokens, std::optional<std::int64_t> fallback,
                   std::int64_t prompt_tokens, bool fitted) {
  if (fitted) {
    try {
      mii::serve::fit_to_context(p, max_tokens, fallback, prompt_tokens, 64, "prompt", "max_tokens");
    } catch (const mii::serve::request_error&) {
      return;  // too long for the context: a 400 the server sends
    }
  }
  try {
    mii::validate(p);
  } catch (const mii::error& e) {
    finding(std::string("decoded parameters fail mii::validate: ") + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t pick = data[0];
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  const int endpoint = pick == 'c' ? 0 : pick == 'h' ? 1 : pick == 'm' ? 2 : pick % 3;
  try {
    switch (endpoint) {
      case 0: {
        const auto r = mii::serve::decode_completion_request(body, "demo");
        if (r.prompts.empty()) finding("a completion request with no prompt was accepted");
        for (const auto& p : r.prompts)
          if (p.is_ids && p.ids.empty()) finding("an empty token-id prompt was accepted");
        must_validate(r.params, r.max_tokens, mii::serve::default_completion_max_tokens, 1 + std::int64_t(size % 70), true);
        break;
      }
      case 1: {
        const auto r = mii::serve::decode_chat_request(body, "demo");
        must_parse(r.template_variables, "chat template variables");
        must_validate(r.params, r.max_tokens, std::nullopt, 1 + std::int64_t(size % 70), true);
        break;
      }
      default: {
        const auto r = mii::serve::decode_mii_request(body);
        if (r.prompts.empty()) finding("an MII request with no prompt was accepted");
        must_validate(r.params, std::nullopt, std::nullopt, 0, false);
        break;
      }
    }
  } catch (const mii::serve::request_error& e) {
    if (e.status < 400 || e.status > 499) finding("a refusal with status " + std::to_string(e.status));
    if (std::string(e.what()).empty()) finding("a refusal without a message");
    must_parse(mii::serve::error_json(e.status, e.what(), e.param, e.code), "the error body");
  }
  return 0;
}
