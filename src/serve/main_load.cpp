// mii-serve-load: closed-loop load through a running mii-serve (src/serve/load_generator.hpp);
// prints one JSON line with mii-bench's load metrics. For the HTTP mode of the load scenario:
//
//   mii-serve MODEL --port 8000 --max-model-len 4096 &
//   mii-serve-load --url http://127.0.0.1:8000 --clients 32 --requests 256 --prompt 1200:2600 --gen 60:128 --vocab 32000
#include <cstdlib>
#include <iostream>
#include <string>

#include <mii/error.hpp>

#include "serve/load_generator.hpp"

namespace {

void usage(std::ostream& os) {
  os << "usage: mii-serve-load [options]\n"
        "Closed-loop clients against a running mii-serve (/v1/completions, random token-id prompts,\n"
        "ignore_eos, greedy, streamed); prints one JSON line: requests_per_s, output_tokens_per_s,\n"
        "effective_requests_per_s (within the SLA), latency_p50/p90/p99, ttft_p50/p99, tpot_p50 (seconds).\n"
        "  --url URL            the server (default http://127.0.0.1:8000)\n"
        "  --api-key KEY        (default: MII_API_KEY)\n"
        "  --model NAME         the served name (default: asked from /v1/models)\n"
        "  --clients N          closed-loop clients (default 32)\n"
        "  --requests N         requests in all (default 64)\n"
        "  --prompt LO:HI       prompt tokens, uniform (default 1200:2600)\n"
        "  --gen LO:HI          generated tokens, uniform (default 60:128)\n"
        "  --vocab N            prompt ids are drawn below N (default 32000)\n"
        "  --shared-prefix N    every prompt starts with the same N tokens, then its own LO:HI tokens\n"
        "  --seed S             (default 1)\n"
        "  --sla-ttft-ms MS     SLA: first token within MS (default 2000)\n"
        "  --sla-tps T          SLA: later tokens at T per second or more (default 4)\n"
        "  -h, --help           this text\n";
}

[[noreturn]] void usage_error(const std::string& why) {
  std::cerr << "mii-serve-load: " << why << "\n";
  usage(std::cerr);
  std::exit(2);
}

std::int64_t integer(const std::string& flag, const std::string& text) {
  try {
    std::size_t used = 0;
    const auto v = std::stoll(text, &used);
    if (used == text.size() && v >= 0) return v;
  } catch (const std::exception&) {
  }
  usage_error(flag + " needs a number >= 0, got '" + text + "'");
}

void range(const std::string& flag, const std::string& text, std::int64_t& lo, std::int64_t& hi) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) usage_error(flag + " needs LO:HI, got '" + text + "'");
  lo = integer(flag, text.substr(0, colon));
  hi = integer(flag, text.substr(colon + 1));
  if (lo < 1 || hi < lo) usage_error(flag + " needs 1 <= LO <= HI, got '" + text + "'");
}

}  // namespace

int main(int argc, char** argv) {
  mii::serve::load_options o;
  if (const char* key = std::getenv("MII_API_KEY")) o.api_key = key;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage(std::cout);
      return 0;
    }
    if (a == "--url") o.url = value();
    else if (a == "--api-key") o.api_key = value();
    else if (a == "--model") o.model = value();
    else if (a == "--clients") o.clients = int(integer(a, value()));
    else if (a == "--requests") o.requests = integer(a, value());
    else if (a == "--prompt") range(a, value(), o.prompt_lo, o.prompt_hi);
    else if (a == "--gen") range(a, value(), o.gen_lo, o.gen_hi);
    else if (a == "--vocab") o.vocab = std::int32_t(integer(a, value()));
    else if (a == "--shared-prefix") o.shared_prefix = integer(a, value());
    else if (a == "--seed") o.seed = std::uint64_t(integer(a, value()));
    else if (a == "--sla-ttft-ms") o.sla_ttft_s = double(integer(a, value())) / 1000.0;
    else if (a == "--sla-tps") o.sla_tokens_per_s = double(integer(a, value()));
    else usage_error("unknown option " + a);
  }
  if (o.clients < 1) usage_error("--clients needs a number >= 1");
  try {
    const auto r = mii::serve::run_load(o);
    std::cout << mii::serve::to_json(o, r) << "\n";
    if (r.failures) {
      std::cerr << "mii-serve-load: " << r.failures << " requests failed; the first: " << r.first_error << "\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "mii-serve-load: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
