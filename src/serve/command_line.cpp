#include "serve/command_line.hpp"

#include <cmath>
#include <filesystem>
#include <limits>
#include <ostream>
#include <sstream>

#include <mii/io/hub.hpp>

namespace mii::serve {

void print_usage(std::ostream& os) {
  os << "usage: mii-serve MODEL_DIR [options]\n"
        "Serves the checkpoint in MODEL_DIR over HTTP: OpenAI's /v1/completions, /v1/chat/completions and\n"
        "/v1/models, DeepSpeed-MII's POST /mii/{deployment}, /health and /metrics (docs/serving.md).\n"
        "MODEL_DIR may be a Hugging Face Hub id (org/name): the Hugging Face cache's copy, downloaded\n"
        "into it when missing (HF_TOKEN, HF_HUB_OFFLINE; docs/hub.md).\n"
        "\n"
        "Server:\n"
        "  --host HOST                 address to listen on (default 127.0.0.1: this machine only)\n"
        "  --port N                    TCP port (default 8000; 0 picks a free one, printed at startup)\n"
        "  --api-key KEY               require \"Authorization: Bearer KEY\" on /v1 and /mii (default: the\n"
        "                              MII_API_KEY environment variable; none when neither is set)\n"
        "  --served-model-name NAME    the model name clients send (default: MODEL_DIR's base name, or the Hub id)\n"
        "  --chat-template PATH        a .jinja file or tokenizer_config.json to use instead of the model's\n"
        "  --max-queue N               generation requests in flight; more get 503 + Retry-After (default 1024)\n"
        "  --max-body-bytes N          larger request bodies get 413 (default 8388608)\n"
        "  --max-header-bytes N        larger request headers get 431 (default 16384)\n"
        "  --read-timeout S            a request must arrive whole within S seconds (default 60)\n"
        "  --write-timeout S           a client must take each write within S seconds (default 60)\n"
        "  --shutdown-timeout S        on SIGTERM/SIGINT, let running requests finish for S seconds,\n"
        "                              then cancel them (default 30; a second signal cancels at once)\n"
        "  --http-threads N            I/O threads (default 4)\n"
        "  --quiet                     no line per request on stderr\n"
        "Engine:\n"
        "  --backend B                 auto (default: GPU when usable), cuda or host\n"
        "  --quantization fp8          FP8 linear layers (e4m3 weights per channel, inputs per token),\n"
        "                              quantized while loading (docs/quantization.md)\n"
        "  --kv-cache-dtype D          auto (the compute dtype) or fp8_e4m3: keys and values in FP8 with\n"
        "                              a scale per token and head, 1.94x the tokens per GiB\n"
        "  --max-model-len N           longest sequence, prompt + completion (alias --max-context)\n"
        "  --max-batch-tokens N        tokens per forward pass (default 768)\n"
        "  --max-sequences N           sequences per forward pass (default 512)\n"
        "  --kv-cache-blocks N         KV cache size in blocks (default: a share of free memory)\n"
        "  --kv-cache-memory-fraction F  that share (default 0.9)\n"
        "  --kv-block-size N           tokens per KV block (default 64)\n"
        "  --host-threads N            host backend threads (default: all cores)\n"
        "  --no-cuda-graphs            do not replay decode steps from CUDA graphs\n"
        "  --no-prefix-caching         compute every prompt in full (prefix caching is on by default)\n"
        "  --tokenizer PATH            tokenizer.json to use instead of the checkpoint's\n"
        "  --revision R                the Hub id's branch, tag or commit (default main)\n"
        "  --random-weights            speed runs: random weights from config.json's shapes (meaningless\n"
        "                              output; send token-id prompts when the directory has no tokenizer)\n"
        "  -h, --help                  this text\n";
}

std::string default_served_name(const std::filesystem::path& model_dir) {
  std::error_code ec;
  // A Hub id is the name clients know the model by (vLLM serves it under the same name).
  if (!std::filesystem::exists(model_dir, ec) && io::is_hub_repo_id(model_dir.string())) return model_dir.string();
  std::filesystem::path p = model_dir.lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "dir/" -> "dir"
  std::string name = p.filename().string();
  return name.empty() || name == "." || name == ".." ? std::filesystem::absolute(p).lexically_normal().filename().string() : name;
}

namespace {

template <class T>
std::string show(T v) {
  std::ostringstream os;
  os << +v;  // + prints uint8-sized types as numbers
  return os.str();
}

template <class T>
T number(const std::string& flag, const std::string& text, T min, T max) {
  const auto refuse = [&] {
    return usage_error(flag + " needs a number from " + show(min) + " to " + show(max) + ", got '" + text + "'");
  };
  T v{};
  try {
    std::size_t used = 0;
    if constexpr (std::is_floating_point_v<T>) {
      v = T(std::stod(text, &used));
    } else {
      const long long x = std::stoll(text, &used);
      if (x < static_cast<long long>(min) || static_cast<unsigned long long>(x) > static_cast<unsigned long long>(max))
        throw std::out_of_range("range");
      v = T(x);
    }
    if (used != text.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw refuse();
  }
  if (!(v >= min && v <= max)) throw refuse();
  return v;
}

std::chrono::milliseconds seconds(const std::string& flag, const std::string& text) {
  const double s = number<double>(flag, text, 0.0, 1e7);
  return std::chrono::milliseconds(std::llround(s * 1000));
}

}  // namespace

command_line parse_command_line(const std::vector<std::string>& args, const char* env_api_key) {
  command_line c;
  c.engine.show_progress = false;  // a server's stderr is a log, not a terminal
  std::optional<std::string> api_key;
  constexpr auto imax = std::numeric_limits<std::int64_t>::max();
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw usage_error(a + " needs a value");
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      c.help = true;
      return c;
    }
    if (a == "--host") c.server.host = value();
    else if (a == "--port") c.server.port = number<std::uint16_t>(a, value(), 0, 65535);
    else if (a == "--api-key") api_key = value();
    else if (a == "--served-model-name") c.server.service.served_model_name = value();
    else if (a == "--chat-template") c.chat_template = value();
    else if (a == "--max-queue") c.server.service.max_queue = number<std::size_t>(a, value(), 1, 1u << 24);
    else if (a == "--max-body-bytes") c.server.max_body_bytes = number<std::size_t>(a, value(), 1, std::size_t(1) << 34);
    else if (a == "--max-header-bytes") c.server.max_header_bytes = number<std::size_t>(a, value(), 256, 1u << 24);
    else if (a == "--read-timeout") c.server.read_timeout = seconds(a, value());
    else if (a == "--write-timeout") c.server.write_timeout = seconds(a, value());
    else if (a == "--shutdown-timeout") c.shutdown_timeout = seconds(a, value());
    else if (a == "--http-threads") c.server.http_threads = number<int>(a, value(), 1, 256);
    else if (a == "--quiet") c.quiet = true;
    else if (a == "--backend") c.engine.backend = value();
    else if (a == "--quantization") c.engine.quantization = value();
    else if (a == "--kv-cache-dtype") c.engine.kv_cache_dtype = value();
    else if (a == "--max-model-len" || a == "--max-context") {
      const auto n = number<std::int64_t>(a, value(), 2, imax);
      c.engine.max_context = n;
      c.engine.max_length = n;
    }
    else if (a == "--max-batch-tokens") c.engine.max_ragged_batch_size = number<std::int64_t>(a, value(), 1, imax);
    else if (a == "--max-sequences") c.engine.max_ragged_sequence_count = number<std::int64_t>(a, value(), 1, imax);
    else if (a == "--kv-cache-blocks") c.engine.kv_cache_blocks = number<std::int64_t>(a, value(), 1, imax);
    else if (a == "--kv-cache-memory-fraction") c.engine.kv_cache_memory_fraction = number<double>(a, value(), 1e-6, 1.0);
    else if (a == "--kv-block-size") c.engine.kv_block_size = number<std::int32_t>(a, value(), 1, 1 << 20);
    else if (a == "--host-threads") c.engine.host_threads = number<int>(a, value(), 0, 4096);
    else if (a == "--no-cuda-graphs") c.engine.cuda_graphs = false;
    else if (a == "--no-prefix-caching") c.engine.prefix_caching = false;
    else if (a == "--tokenizer") c.engine.tokenizer = value();
    else if (a == "--revision") c.engine.revision = value();
    else if (a == "--random-weights") c.engine.random_weights = true;
    else if (a.starts_with("-")) throw usage_error("unknown option " + a);
    else if (c.model_dir.empty()) c.model_dir = a;
    else throw usage_error("unexpected argument " + a);
  }
  if (c.model_dir.empty()) throw usage_error("missing MODEL_DIR");
  if (c.engine.backend != "auto" && c.engine.backend != "cuda" && c.engine.backend != "host")
    throw usage_error("--backend must be auto, cuda or host, got '" + c.engine.backend + "'");
  if (api_key) {
    c.server.service.api_key = *api_key;
  } else if (env_api_key) {
    c.server.service.api_key = env_api_key;
  }
  if (api_key && api_key->empty()) throw usage_error("--api-key is empty");
  if (c.server.service.served_model_name.empty()) c.server.service.served_model_name = default_served_name(c.model_dir);
  return c;
}

std::filesystem::path resolve_model_dir(const command_line& c, void (*note)(const std::string&)) {
  return io::resolve_model(c.model_dir, {.revision = c.engine.revision,
                                         .files = c.engine.random_weights ? io::hub_files::model_no_weights
                                                                          : io::hub_files::model,
                                         .show_progress = false,
                                         .note = note});
}

std::optional<chat_template> chat_template_of(const command_line& c) {
  return c.chat_template ? std::optional(chat_template::from_path(*c.chat_template)) : chat_template::find(c.model_dir);
}

}  // namespace mii::serve
