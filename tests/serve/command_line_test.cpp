// mii-serve's options: what each sets, the defaults, and the usage errors.
#include <catch2/catch.hpp>

#include <sstream>

#include "serve/command_line.hpp"

using namespace mii::serve;
using Catch::Matchers::Contains;

namespace {

command_line parse(std::vector<std::string> args, const char* env_key = nullptr) { return parse_command_line(args, env_key); }

std::string usage_error_of(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const usage_error& e) {
    return e.what();
  }
  FAIL("accepted");
  return {};
}

}  // namespace

TEST_CASE("mii-serve options: defaults", "[serve][cli]") {
  const auto c = parse({"/models/Mistral-7B-v0.1/"});
  CHECK(c.model_dir == "/models/Mistral-7B-v0.1/");
  CHECK(c.server.service.served_model_name == "Mistral-7B-v0.1");
  CHECK(c.server.host == "127.0.0.1");
  CHECK(c.server.port == 8000);
  CHECK(c.server.service.api_key.empty());
  CHECK(c.server.service.max_queue == 1024);
  CHECK(c.server.max_body_bytes == 8u << 20);
  CHECK(c.server.max_header_bytes == 16u << 10);
  CHECK(c.shutdown_timeout == std::chrono::seconds(30));
  CHECK(c.engine.backend == "auto");
  CHECK_FALSE(c.engine.show_progress);
  CHECK(parse({"-h"}).help);
  CHECK(parse({"m", "--help"}).help);
  std::ostringstream usage;
  print_usage(usage);
  CHECK_THAT(usage.str(), Contains("usage: mii-serve MODEL_DIR"));
  CHECK(default_served_name("demo-llama") == "demo-llama");
  CHECK(default_served_name("./a/b//") == "b");
}

TEST_CASE("mii-serve options: each one lands where it should", "[serve][cli]") {
  const auto c = parse({"m", "--host", "0.0.0.0", "--port", "0", "--api-key", "k", "--served-model-name", "x",
                        "--chat-template", "t.jinja", "--max-queue", "7", "--max-body-bytes", "1000", "--max-header-bytes",
                        "4096", "--read-timeout", "1.5", "--write-timeout", "2", "--shutdown-timeout", "0.25",
                        "--http-threads", "3", "--quiet", "--backend", "host", "--max-model-len", "4096",
                        "--max-batch-tokens", "512", "--max-sequences", "64", "--kv-cache-blocks", "100",
                        "--kv-cache-memory-fraction", "0.5", "--kv-block-size", "16", "--host-threads", "2",
                        "--no-cuda-graphs", "--tokenizer", "tok.json", "--random-weights"});
  CHECK(c.server.host == "0.0.0.0");
  CHECK(c.server.port == 0);
  CHECK(c.server.service.api_key == "k");
  CHECK(c.server.service.served_model_name == "x");
  CHECK(c.chat_template == "t.jinja");
  CHECK(c.server.service.max_queue == 7);
  CHECK(c.server.max_body_bytes == 1000);
  CHECK(c.server.max_header_bytes == 4096);
  CHECK(c.server.read_timeout == std::chrono::milliseconds(1500));
  CHECK(c.server.write_timeout == std::chrono::seconds(2));
  CHECK(c.shutdown_timeout == std::chrono::milliseconds(250));
  CHECK(c.server.http_threads == 3);
  CHECK(c.quiet);
  CHECK(c.engine.backend == "host");
  CHECK(c.engine.max_context == 4096);
  CHECK(c.engine.max_length == 4096);
  CHECK(c.engine.max_ragged_batch_size == 512);
  CHECK(c.engine.max_ragged_sequence_count == 64);
  CHECK(c.engine.kv_cache_blocks == 100);
  CHECK(c.engine.kv_cache_memory_fraction == 0.5);
  CHECK(c.engine.kv_block_size == 16);
  CHECK(c.engine.host_threads == 2);
  CHECK_FALSE(c.engine.cuda_graphs);
  CHECK(c.engine.tokenizer == "tok.json");
  CHECK(c.engine.random_weights);
  CHECK_FALSE(parse({"m"}).engine.random_weights);
  CHECK(parse({"m", "--max-context", "100"}).engine.max_context == 100);
  // The key from the environment, unless the command line gives one.
  CHECK(parse({"m"}, "env-key").server.service.api_key == "env-key");
  CHECK(parse({"m", "--api-key", "cli"}, "env-key").server.service.api_key == "cli");
}

TEST_CASE("mii-serve options: usage errors name the option and the value", "[serve][cli]") {
  CHECK(usage_error_of({}) == "missing MODEL_DIR");
  CHECK(usage_error_of({"m", "--frob"}) == "unknown option --frob");
  CHECK(usage_error_of({"m", "n"}) == "unexpected argument n");
  CHECK(usage_error_of({"m", "--port"}) == "--port needs a value");
  CHECK_THAT(usage_error_of({"m", "--port", "70000"}), Contains("--port needs a number from 0 to 65535, got '70000'"));
  CHECK_THAT(usage_error_of({"m", "--port", "80x"}), Contains("got '80x'"));
  CHECK_THAT(usage_error_of({"m", "--max-queue", "0"}), Contains("--max-queue needs a number from 1"));
  CHECK_THAT(usage_error_of({"m", "--read-timeout", "-1"}), Contains("--read-timeout"));
  CHECK_THAT(usage_error_of({"m", "--backend", "tpu"}), Contains("--backend must be auto, cuda or host, got 'tpu'"));
  CHECK(usage_error_of({"m", "--api-key", ""}) == "--api-key is empty");
}

TEST_CASE("mii-serve options: a Hub id is served under its own name, at --revision", "[serve][cli][hub]") {
  const auto c = parse({"mistralai/Mistral-7B-v0.1", "--revision", "refs/pr/3"});
  CHECK(c.model_dir == "mistralai/Mistral-7B-v0.1");
  CHECK(c.engine.revision == "refs/pr/3");
  CHECK(c.server.service.served_model_name == "mistralai/Mistral-7B-v0.1");  // as vLLM names it
  CHECK(parse({"m"}).engine.revision == "main");
  CHECK(usage_error_of({"m", "--revision"}) == "--revision needs a value");
}
