// mii-generate: text generation from the command line (`mii-generate --help` for the options).
//
// Without --prompt, reads one prompt per line from stdin. Built by mii_add_model_executable()
// with MII_SELECTED_MODEL defined, the program is specialized for that architecture; otherwise
// the architecture comes from config.json.
//
// Output: stdout carries results only (prompt + completion per line, or JSON lines); progress
// notes and errors go to stderr, one line each, prefixed with the program's name.
// Exit status: 0 ok, 1 a load or generation error, 2 a usage error.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <mii/io/hf_config.hpp>
#include <mii/io/hub.hpp>
#include <mii/pipeline.hpp>
#ifdef MII_SELECTED_MODEL
#include <mii_selected_model.hpp>
#endif

namespace {

// The name this binary was started as: mii-generate, or a specialized copy (mii-generate-llama).
std::string program = "mii-generate";

void print_usage(std::ostream& os) {
  os << "usage: " << program << " MODEL [options]\n"
#ifdef MII_SELECTED_MODEL
     << "  (specialized at compile time for " << mii::selected::model_name << ")\n"
#endif
     << "Completes each prompt with the checkpoint MODEL: a Hugging Face directory, or a Hub id (org/name)\n"
        "found in the Hugging Face cache or downloaded into it (HF_TOKEN, HF_HUB_OFFLINE; docs/hub.md).\n"
        "  --revision R           the Hub id's branch, tag or commit (default main)\n"
        "  --prompt TEXT          a prompt (repeatable); without it, one prompt per line of stdin\n"
        "                         (CRLF line ends are accepted; empty lines are skipped)\n"
        "  --max-new-tokens N     generate at most N tokens (default 32 when --max-length is not given)\n"
        "  --max-length N         stop when prompt + generated tokens reach N\n"
        "  --min-new-tokens N     suppress end-of-sequence until N tokens are generated\n"
        "  --greedy               always pick the most likely token\n"
        "  --temperature T  --top-p P  --top-k K  --seed S\n"
        "                         sampling settings (a fixed seed makes sampling reproducible)\n"
        "  --min-p M              drop candidates below M x the most likely one's probability\n"
        "  --repetition-penalty R  --presence-penalty P  --frequency-penalty F\n"
        "                         transformers' repetition penalty, OpenAI's presence/frequency penalties\n"
        "  --logprobs N           with --json: each token's log-probability and the N (0-20) most likely\n"
        "                         alternatives, \"logprobs\":[{\"token_id\":..,\"logprob\":..,\"top_logprobs\":[..]}]\n"
        "  --prompt-logprobs N    with --json: each prompt token's log-probability given the ones before it\n"
        "                         and N (0-20) alternatives, \"prompt_logprobs\":[null,{..},..] (null: the first)\n"
        "  --n N                  N samples per prompt (1-128), drawn with seeds S, S+1, ...: each is printed\n"
        "                         as its own line after the prompt; --json adds \"samples\":[{\"index\":K,..}]\n"
        "  --stop STR             stop when STR is generated (repeatable; STR is left out)\n"
        "  --ignore-eos           keep generating past end-of-sequence tokens\n"
        "  --stream               print text as it is generated; with several prompts, the output is\n"
        "                         the same as without --stream, the earliest unfinished prompt live\n"
        "  --json                 one JSON object per prompt: {\"index\":I,\"generated_text\":...}\n"
        "  --json --stream        also one line per piece of text: {\"index\":I,\"text\":...,\"token_ids\":[...]}\n"
        "  --backend B            auto (default: GPU when usable), cuda or host\n"
        "  --quantization fp8     FP8 weights (e4m3, per channel) and inputs (per token) for the\n"
        "                         linear layers, quantized while loading (docs/quantization.md)\n"
        "  --kv-cache-dtype D     auto (the compute dtype) or fp8_e4m3: keys and values in FP8 with a\n"
        "                         scale per token and head (docs/quantization.md)\n"
        "  --check-weights        refuse a checkpoint with NaN or infinite weights (one extra pass)\n"
        "  -h, --help             this text\n";
}

[[noreturn]] void usage_error(const std::string& why) {
  std::cerr << program << ": " << why << "\n";
  print_usage(std::cerr);
  std::exit(2);
}

// One stderr line, composed before anything is written: a message whose computation throws
// must not leave a half-written prefix behind (that gave "mii-generate: mii-generate: ...").
void note(const std::string& text) { std::cerr << (program + ": " + text + "\n") << std::flush; }

template <class T>
T number(const std::string& flag, const char* text) {
  try {
    std::size_t used = 0;
    T v;
    if constexpr (std::is_floating_point_v<T>) {
      v = T(std::stod(text, &used));
    } else {
      v = T(std::stoll(text, &used));
    }
    if (used != std::string(text).size()) throw std::invalid_argument("trailing");
    return v;
  } catch (const std::exception&) {
    usage_error(flag + " needs a number, got '" + text + "'");
  }
}

struct options {
  std::string model_dir;
  std::vector<std::string> prompts;
  mii::generate_params params;
  mii::model_config config;
  bool json = false, stream = false;
};

options parse(int argc, char** argv) {
  options o;
  bool length_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    auto& p = o.params;
    if (a == "-h" || a == "--help") {
      print_usage(std::cout);
      std::exit(0);
    } else if (a == "--prompt") o.prompts.emplace_back(value());
    else if (a == "--max-new-tokens") p.max_new_tokens = number<std::int64_t>(a, value()), length_given = true;
    else if (a == "--max-length") p.max_length = number<std::int64_t>(a, value()), length_given = true;
    else if (a == "--min-new-tokens") p.min_new_tokens = number<std::int64_t>(a, value());
    else if (a == "--greedy") p.do_sample = false;
    else if (a == "--temperature") p.temperature = number<double>(a, value());
    else if (a == "--top-p") p.top_p = number<double>(a, value());
    else if (a == "--top-k") p.top_k = number<std::int64_t>(a, value());
    else if (a == "--seed") p.seed = number<std::uint64_t>(a, value());
    else if (a == "--stop") p.stop.emplace_back(value());
    else if (a == "--min-p") p.min_p = number<double>(a, value());
    else if (a == "--repetition-penalty") p.repetition_penalty = number<double>(a, value());
    else if (a == "--presence-penalty") p.presence_penalty = number<double>(a, value());
    else if (a == "--frequency-penalty") p.frequency_penalty = number<double>(a, value());
    else if (a == "--logprobs")
      p.logprobs = std::int32_t(std::clamp<std::int64_t>(number<std::int64_t>(a, value()), INT32_MIN, INT32_MAX));
    else if (a == "--prompt-logprobs")
      p.prompt_logprobs = std::int32_t(std::clamp<std::int64_t>(number<std::int64_t>(a, value()), INT32_MIN, INT32_MAX));
    else if (a == "--n") p.n = std::int32_t(std::clamp<std::int64_t>(number<std::int64_t>(a, value()), INT32_MIN, INT32_MAX));
    else if (a == "--ignore-eos") p.ignore_eos = true;
    else if (a == "--stream") o.stream = true;
    else if (a == "--json") o.json = true;
    else if (a == "--backend") o.config.backend = value();
    else if (a == "--quantization") o.config.quantization = value();
    else if (a == "--kv-cache-dtype") o.config.kv_cache_dtype = value();
    else if (a == "--check-weights") o.config.check_weights = true;
    else if (a == "--revision") o.config.revision = value();
    else if (a.starts_with("-")) usage_error("unknown option " + a);
    else if (o.model_dir.empty()) o.model_dir = a;
    else usage_error("unexpected argument " + a);
  }
  if (o.model_dir.empty()) usage_error("missing MODEL");
  // A short default keeps an accidental run short; a length the user gave is the only limit
  // (forcing 32 here made --max-length unable to allow more than 32 new tokens).
  if (!length_given) o.params.max_new_tokens = 32;
  return o;
}

// Prompts from stdin, one per line. Files written on Windows end lines with "\r\n": the '\r'
// is a line end, not part of the prompt.
std::vector<std::string> read_prompt_lines(std::istream& in) {
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);) {
    if (line.ends_with('\r')) line.pop_back();
    if (!line.empty()) prompts.push_back(std::move(line));
  }
  return prompts;
}

std::string json_quoted(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + '"';
}

// A response as one JSON line that says which prompt it answers.
std::string response_line(std::size_t index, const mii::response& r) {
  return "{\"index\":" + std::to_string(index) + "," + r.to_json().substr(1) + "\n";
}

// --json --stream: a line per piece of text as it comes; each prompt's response line follows
// once the call returns. Stream callbacks may run on the engine's thread (the calling thread is
// blocked in the call meanwhile), so this writes whole lines under a lock and touches nothing else.
class json_stream_writer {
 public:
  explicit json_stream_writer(bool samples) : samples_(samples) {}

  void operator()(const mii::stream_event& e) {
    // The response line says how it finished and carries the prompt's log-probabilities.
    if (e.finished || e.sample_finished || e.prompt_logprobs) return;
    std::string line = "{\"index\":" + std::to_string(e.prompt_index) +
                       (samples_ ? ",\"sample\":" + std::to_string(e.sample) : std::string()) +
                       ",\"text\":" + json_quoted(e.text) + ",\"token_ids\":[" +
                       (e.token >= 0 ? std::to_string(e.token) : std::string()) + "]}\n";
    const std::lock_guard lock(mutex_);
    std::cout << line << std::flush;
  }

 private:
  bool samples_;  // --n > 1: each line says which sample it belongs to
  std::mutex mutex_;
};

// Plain --stream with several prompts. All prompts advance together, so printing tokens as they
// come would interleave them mid-line. Instead the output is exactly what the non-streamed run
// prints (each prompt followed by its completion, one per line, in order) and it appears as
// early as it can: the earliest unfinished prompt is printed live; later prompts' text is held
// until every prompt before them has finished. One prompt therefore streams as before. With
// --n N each sample is a line of its own (prompt + that sample), the samples of a prompt in order.
class ordered_stream_printer {
 public:
  ordered_stream_printer(const std::vector<std::string>& prompts, std::size_t n)
      : prompts_(prompts), n_(std::max<std::size_t>(n, 1)), slots_(prompts.size() * n_) {}

  void operator()(const mii::stream_event& e) {
    const std::lock_guard lock(mutex_);
    if (e.prompt_index >= prompts_.size() || e.sample >= n_) return;
    const std::size_t first = e.prompt_index * n_;
    if (e.finished) {  // every sample of the prompt
      for (std::size_t k = 0; k < n_; ++k) {
        slot& s = slots_[first + k];
        if (s.finished) continue;
        s.finished = true;
        s.failed = e.finish_reason == mii::generation_finish_reason::error;
      }
    } else if (e.sample_finished) {
      slots_[first + e.sample].finished = true;
    } else {
      slots_[first + e.sample].held += e.text;
    }
    show_ready();
  }

  // After the call: prompts that ended without a final event (refused before they ran).
  void finish(const std::vector<mii::response>& out) {
    const std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].finished) continue;
      slots_[i].finished = true;
      slots_[i].failed = i / n_ >= out.size() || out[i / n_].finish_reason == mii::generation_finish_reason::error;
    }
    show_ready();
  }

 private:
  struct slot {
    std::string held;  // text not printed yet
    bool started = false, finished = false, failed = false;
  };

  void show_ready() {
    for (; live_ < slots_.size(); ++live_) {
      show(live_);
      if (!slots_[live_].finished) break;
    }
    std::cout << std::flush;
  }

  void show(std::size_t i) {
    slot& s = slots_[i];
    if (!s.started) {
      // A prompt that failed before producing text is reported on stderr only, as without --stream.
      if (s.failed || (s.held.empty() && !s.finished)) return;
      std::cout << prompts_[i / n_];
      s.started = true;
    }
    std::cout << s.held;
    s.held.clear();
    if (s.finished) std::cout << '\n';
  }

  const std::vector<std::string>& prompts_;
  std::size_t n_;             // samples per prompt: slot i is prompt i / n_, sample i % n_
  std::vector<slot> slots_;
  std::size_t live_ = 0;  // the earliest slot not completely printed
  std::mutex mutex_;
};

int run(options& o) {
  // A Hub id becomes its snapshot in the Hugging Face cache (downloaded when missing).
  o.model_dir = mii::io::resolve_model(o.model_dir, {.revision = o.config.revision, .note = note}).string();
  // Computed before it is printed: a config error must come out as one "program: error" line.
  note(mii::io::summarize(mii::io::load_hf_config(o.model_dir)));
#ifdef MII_SELECTED_MODEL
  auto pipe = mii::pipeline<mii::selected::model>(o.model_dir, o.config);
#else
  auto pipe = mii::pipeline(o.model_dir, o.config);
#endif
  note(std::string(pipe.model_name()) + " on the " + std::string(pipe.backend_name()) + " backend");

  json_stream_writer json_stream(o.params.n > 1);
  ordered_stream_printer text_stream(o.prompts, std::size_t(std::max(o.params.n, 1)));
  if (o.stream && o.json) o.params.stream = [&](const mii::stream_event& e) { json_stream(e); };
  if (o.stream && !o.json) o.params.stream = [&](const mii::stream_event& e) { text_stream(e); };

  const auto out = pipe(o.prompts, o.params);
  if (o.stream && !o.json) text_stream.finish(out);
  int rc = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto& r = out[i];
    const bool failed = r.finish_reason == mii::generation_finish_reason::error;
    if (o.json) std::cout << response_line(i, r);
    else if (failed) note("prompt " + std::to_string(i) + ": " + r.error);
    else if (!o.stream && r.samples.empty()) std::cout << o.prompts[i] << r << "\n";
    else if (!o.stream)
      for (const auto& s : r.samples) std::cout << o.prompts[i] << s.generated_text << "\n";
    if (failed) rc = 1;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 0 && argv[0] && *argv[0]) program = std::filesystem::path(argv[0]).filename().string();
  if (argc < 2) usage_error("missing MODEL");
  options o = parse(argc, argv);
  if (o.prompts.empty()) o.prompts = read_prompt_lines(std::cin);
  try {
    return run(o);
  } catch (const std::exception& e) {
    note(e.what());
    return 1;
  }
}
