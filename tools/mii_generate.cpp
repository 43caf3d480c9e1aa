// mii-generate: text generation from the command line.
//
//   mii-generate MODEL_DIR [--prompt TEXT]... [--max-new-tokens N] [--min-new-tokens N]
//                [--greedy | --temperature T --top-p P --top-k K --seed S] [--stop STR]...
//                [--ignore-eos] [--stream] [--json] [--backend auto|cuda|host]
//
// Without --prompt, reads one prompt per line from stdin. Built by mii_add_model_executable()
// with MII_SELECTED_MODEL defined, the program is specialized for that architecture; otherwise
// the architecture comes from config.json.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <mii/io/hf_config.hpp>
#include <mii/pipeline.hpp>
#ifdef MII_SELECTED_MODEL
#include <mii_selected_model.hpp>
#endif

namespace {

[[noreturn]] void usage(const char* why) {
  std::cerr << "mii-generate: " << why << "\n"
            << "usage: mii-generate MODEL_DIR [--prompt TEXT]... [--max-new-tokens N] [--min-new-tokens N]\n"
               "         [--greedy | --temperature T --top-p P --top-k K --seed S] [--stop STR]...\n"
               "         [--ignore-eos] [--stream] [--json] [--backend auto|cuda|host] [--max-length N]\n";
  std::exit(2);
}

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
    usage((flag + " needs a number, got '" + text + "'").c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("missing MODEL_DIR");
  std::string model_dir;
  std::vector<std::string> prompts;
  mii::generate_params params;
  params.max_new_tokens = 32;
  mii::model_config config;
  bool json = false, stream = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--prompt") prompts.emplace_back(value());
    else if (a == "--max-new-tokens") params.max_new_tokens = number<std::int64_t>(a, value());
    else if (a == "--min-new-tokens") params.min_new_tokens = number<std::int64_t>(a, value());
    else if (a == "--max-length") params.max_length = number<std::int64_t>(a, value());
    else if (a == "--greedy") params.do_sample = false;
    else if (a == "--temperature") params.temperature = number<double>(a, value());
    else if (a == "--top-p") params.top_p = number<double>(a, value());
    else if (a == "--top-k") params.top_k = number<std::int64_t>(a, value());
    else if (a == "--seed") params.seed = number<std::uint64_t>(a, value());
    else if (a == "--stop") params.stop.emplace_back(value());
    else if (a == "--ignore-eos") params.ignore_eos = true;
    else if (a == "--stream") stream = true;
    else if (a == "--json") json = true;
    else if (a == "--backend") config.backend = value();
    else if (a == "-h" || a == "--help") usage("help");
    else if (a.starts_with("--")) usage(("unknown option " + a).c_str());
    else if (model_dir.empty()) model_dir = a;
    else usage(("unexpected argument " + a).c_str());
  }
  if (model_dir.empty()) usage("missing MODEL_DIR");
  if (prompts.empty())
    for (std::string line; std::getline(std::cin, line);)
      if (!line.empty()) prompts.push_back(line);

  try {
    std::cerr << "mii-generate: " << mii::io::summarize(mii::io::load_hf_config(model_dir)) << "\n";
#ifdef MII_SELECTED_MODEL
    auto pipe = mii::pipeline<mii::selected::model>(model_dir, config);
#else
    auto pipe = mii::pipeline(model_dir, config);
#endif
    std::cerr << "mii-generate: " << pipe.model_name() << " on the " << pipe.backend_name() << " backend\n";
    if (stream && !json) {
      params.stream = [&](const mii::stream_event& e) {
        if (prompts.size() > 1 && !e.finished && e.token >= 0) std::cout << "[" << e.prompt_index << "] ";
        std::cout << e.text << (e.finished ? "\n" : "") << std::flush;
      };
    }
    const auto out = pipe(prompts, params);
    int rc = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
      const auto& r = out[i];
      if (json) {
        std::cout << r.to_json() << "\n";
      } else if (r.finish_reason == mii::generation_finish_reason::error) {
        std::cerr << "mii-generate: prompt " << i << ": " << r.error << "\n";
      } else if (!stream) {
        std::cout << prompts[i] << r << "\n";
      }
      if (r.finish_reason == mii::generation_finish_reason::error) rc = 1;
    }
    return rc;
  } catch (const std::exception& e) {
    std::cerr << "mii-generate: " << e.what() << "\n";
    return 1;
  }
}
