// mii-serve-overhead: what HTTP adds to one request, measured in one process on one pipeline
// (src/serve/overhead_bench.hpp; docs/serving.md). Prints one JSON object (stdout, or --out)
// and a short table on stderr:
//
//   mii-serve-overhead bench/configs/mistral-7b --random-weights --requests 200 --prompt 512 --gen 128
//
// Exit status: 0 when every request ran, 1 a load error or failed requests, 2 a usage error.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <mii/chat.hpp>
#include <mii/error.hpp>
#include <mii/io/hub.hpp>
#include <mii/pipeline.hpp>

#include "serve/command_line.hpp"
#include "serve/overhead_bench.hpp"
#include "serve/server.hpp"

namespace {

void usage(std::ostream& os) {
  os << "usage: mii-serve-overhead MODEL_DIR [options] [mii-serve engine options]\n"
        "What HTTP adds to one request: one pipeline, called in-process (submit_ids with a stream callback)\n"
        "and through a mii-serve server on that same pipeline (streamed /v1/completions, one keep-alive\n"
        "connection on 127.0.0.1), one request at a time in pairs: the same random token-id prompt on both\n"
        "paths, in a seeded random order; greedy, ignore_eos. Prefix caching is off (the second request of\n"
        "a pair would find the prompt cached). Prints a JSON object: both paths' latency and time to first\n"
        "token (p50/p90/p99), and HTTP minus in-process within each pair (median, p10, p90, mean, and a 95 %\n"
        "bootstrap interval of the median), in milliseconds; a table on stderr.\n"
        "  --requests N     measured requests per path, i.e. pairs (default 200)\n"
        "  --warmup W       unmeasured requests per path first (default 4)\n"
        "  --prompt P       prompt tokens per request (default 512)\n"
        "  --gen G          generated tokens per request (default 128)\n"
        "  --vocab V        prompt ids are drawn below V (default: the model's vocabulary)\n"
        "  --seed S         prompts, order within pairs, bootstrap (default 1)\n"
        "  --out FILE       write the JSON there instead of stdout\n"
        "  -h, --help       this text\n"
        "Engine options are mii-serve's (--backend auto|cuda|host, --random-weights, --max-model-len,\n"
        "--kv-cache-blocks, --host-threads, --no-cuda-graphs, ...; see mii-serve --help); the server\n"
        "listens on 127.0.0.1 on a free port, so --host and --port are not taken.\n";
}

[[noreturn]] void usage_error(const std::string& why) {
  std::cerr << "mii-serve-overhead: " << why << "\n";
  usage(std::cerr);
  std::exit(2);
}

std::int64_t integer(const std::string& flag, const std::string& text, std::int64_t min) {
  try {
    std::size_t used = 0;
    const auto v = std::stoll(text, &used);
    if (used == text.size() && v >= min) return v;
  } catch (const std::exception&) {
  }
  usage_error(flag + " needs a whole number >= " + std::to_string(min) + ", got '" + text + "'");
}

void note(const std::string& text) { std::cerr << "mii-serve-overhead: " << text << "\n"; }

}  // namespace

int main(int argc, char** argv) {
  mii::serve::overhead_options o;
  std::optional<std::string> out;
  std::vector<std::string> serve_args;  // MODEL_DIR and the engine options, for mii-serve's parser
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
    if (a == "--requests") o.requests = integer(a, value(), 1);
    else if (a == "--warmup") o.warmup = integer(a, value(), 0);
    else if (a == "--prompt") o.prompt = integer(a, value(), 1);
    else if (a == "--gen") o.gen = integer(a, value(), 1);
    else if (a == "--vocab") o.vocab = std::int32_t(std::min<std::int64_t>(integer(a, value(), 4), 1 << 30));
    else if (a == "--seed") o.seed = std::uint64_t(integer(a, value(), 0));
    else if (a == "--out") out = value();
    else if (a == "--host" || a == "--port")
      usage_error(a + " is not taken: the server listens on 127.0.0.1 on a free port, inside this process");
    else serve_args.push_back(a);
  }
  mii::serve::command_line cl;
  try {
    // No MII_API_KEY: the server is this process's own; --api-key still works (the client sends it).
    cl = mii::serve::parse_command_line(serve_args, nullptr);
  } catch (const mii::serve::usage_error& e) {
    usage_error(e.what());
  }
  // As mii-serve runs, except: prefix caching off (see the usage), a loopback port of its own, quiet.
  cl.engine.prefix_caching = false;
  cl.server.host = "127.0.0.1";
  cl.server.port = 0;
  signal(SIGPIPE, SIG_IGN);  // as mii-serve: a peer gone mid-write is an error code

  try {
    // The same wiring as tools/mii_serve.cpp: a Hub id becomes its snapshot, then the pipeline,
    // the chat template and the server over that pipeline.
    cl.model_dir = mii::serve::resolve_model_dir(cl, note);
    auto pipe = mii::pipeline(cl.model_dir, cl.engine);
    std::optional<mii::chat_template> chat = mii::serve::chat_template_of(cl);
    mii::serve::server srv(pipe, std::move(chat), cl.server);
    // What can only be checked against the loaded model is still a usage error.
    if (o.prompt + o.gen > pipe.max_sequence_length())
      throw mii::serve::usage_error("--prompt " + std::to_string(o.prompt) + " and --gen " + std::to_string(o.gen) +
                                    " make " + std::to_string(o.prompt + o.gen) + " tokens, more than the context of " +
                                    std::to_string(pipe.max_sequence_length()) + " (--max-model-len)");
    if (o.vocab > pipe.shape().vocab)
      throw mii::serve::usage_error("--vocab " + std::to_string(o.vocab) + " is more than the model's " +
                                    std::to_string(pipe.shape().vocab) + " tokens");
    note(std::string(pipe.model_name()) + " on " + std::string(pipe.backend_name()) + ", server at " + srv.url() + "; " +
         std::to_string(o.warmup) + " warm-up and " + std::to_string(o.requests) + " measured requests per path");
    const std::int64_t every = std::max<std::int64_t>(1, o.requests / 10);
    o.progress = [&](std::int64_t done) {
      if (done % every == 0 || done == o.requests) note(std::to_string(done) + " of " + std::to_string(o.requests) + " pairs");
    };
    const auto r = mii::serve::run_overhead(pipe, srv, o);
    srv.shutdown(std::chrono::seconds(5));
    pipe.shutdown();

    const std::string json = mii::serve::to_json(cl.model_dir.string(), o, r);
    if (out) {
      std::ofstream f(*out);
      f << json << "\n";
      if (!f.flush()) mii::fail("cannot write ", *out);
    } else {
      std::cout << json << "\n";
    }
    std::cerr << mii::serve::to_table(o, r);
    if (r.failed_pairs) {
      note(std::to_string(r.failed_pairs) + " pairs failed; the first: " + r.first_error);
      return 1;
    }
  } catch (const mii::serve::usage_error& e) {
    std::cerr << "mii-serve-overhead: " << e.what() << "\n";
    usage(std::cerr);
    return 2;
  } catch (const std::exception& e) {
    note(e.what());
    return 1;
  }
  return 0;
}
