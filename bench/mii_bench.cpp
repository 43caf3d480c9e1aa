// mii-bench: speed figures with their physical floors, as one reproducible command.
//
//   mii-bench --model DIR [--random-weights] [--scenario latency,prefill,throughput,load,grid,cold]
//             [--roofline] [--out DIR] [--label NAME] [scenario sizes, see --help]
//
// Every figure is printed next to its floor: decode floor = (weight bytes the step reads + KV
// bytes read per step) / measured copy bandwidth; prefill floor = model FLOPs / measured bf16 GEMM
// rate; offline throughput floor = prompts at the GEMM rate + decode steps at the longer of their
// bytes and FLOPs (bench/cost_model.hpp; --roofline measures both ceilings on this machine first).
// Results go to OUT/LABEL.json.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <boost/hana/for_each.hpp>

#include <mii/io/hf_config.hpp>
#include <mii/io/hub.hpp>
#include <mii/io/safetensors.hpp>
#include <mii/model/weight_plan.hpp>
#include <mii/models/all.hpp>
#include <mii/pipeline.hpp>
#if MII_WITH_CUDA
#include <mii/backend/cuda/roofline.hpp>
#endif

#include "cost_model.hpp"
#include "mii_commit.hpp"  // generated at build time: MII_BENCH_COMMIT (bench/CMakeLists.txt)

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

struct options {
  std::string model, out = "bench/results", label, backend = "auto", write_checkpoint, revision = "main";
  std::vector<std::string> scenarios{"latency", "prefill", "throughput"};
  bool random_weights = false, roofline = false;
  std::int64_t prompt_len = 512, gen_len = 128;                 // latency
  std::int64_t prefill_batch = 8, prefill_len = 2048;           // prefill
  std::int64_t tp_batch = 64, tp_prompt = 512, tp_gen = 128;    // offline throughput
  std::vector<int> clients{4, 16, 32};                          // load (closed loop)
  std::int64_t load_requests = 64;
  std::int64_t load_prompt_lo = 1200, load_prompt_hi = 2600, load_gen_lo = 60, load_gen_hi = 128;
  double sla_ttft_s = 2.0, sla_tokens_per_s = 4.0;
  std::int64_t max_batch_tokens = 768;                          // engine budgets per forward
  bool max_batch_tokens_given = false;
  std::int64_t max_seqs = 512;
  double kv_fraction = 0.9;
  std::string quantization;  // model_config.quantization ("" or "fp8")
  std::string kv_cache_dtype = "auto";  // model_config.kv_cache_dtype
  int repeats = 3;
  // grid: TensorRT-LLM's (input, output) cells, each cell's floor-time budget, a forced request count
  std::vector<std::pair<std::int64_t, std::int64_t>> grid_cells{{128, 128}, {128, 2048}, {2048, 128}, {500, 2000}, {2048, 2048}};
  double grid_seconds = 30;
  std::int64_t grid_requests = 0;
};

// Tokens per forward for the grid when --max-batch-tokens is not given: room for a full sequence
// budget of decodes and prompt chunks of 1,536 tokens beside them (768 leaves 256 at 512 decodes).
constexpr std::int64_t grid_batch_tokens = 2048;

constexpr const char* usage_text =
    "usage: mii-bench --model DIR --write-checkpoint OUT   (random bf16 checkpoint of the config's shapes)\n"
    "       mii-bench --model DIR [--random-weights] [--scenario LIST] [--roofline] [--out DIR] [--label NAME]\n"
    "  scenarios: latency (--prompt-len P --gen-len N), prefill (--prefill-batch B --prefill-len P),\n"
    "             throughput (--batch B --tp-prompt P --tp-gen N), load (--clients C1,C2 --load-requests R\n"
    "             --load-prompt LO:HI --load-gen LO:HI --sla-ttft-ms MS --sla-tps T), cold (real checkpoint),\n"
    "             grid (offline throughput per (input, output) cell of TensorRT-LLM's table: --grid-cells\n"
    "             P:O,... (128:128,128:2048,2048:128,500:2000,2048:2048) --grid-seconds S (30: each cell's\n"
    "             floor time) --grid-requests N (force the count); needs --roofline for its request plan)\n"
    "  engine: --max-batch-tokens N (768; grid: 2048) --max-seqs N (512) --kv-fraction F (0.9)\n"
    "          --backend auto|cuda|host --quantization fp8 --kv-cache-dtype fp8_e4m3 --repeats K\n"
    "  DIR may be a Hugging Face Hub id (org/name; --revision R, default main): docs/hub.md\n"
    "  results: OUT/LABEL.json (default bench/results/<model dir name>.json), with the commit mii-bench\n"
    "           was built from (bench/commit.cmake)\n";

// A usage error: the reason and the usage on stderr, exit 2 (--help prints the usage on stdout).
[[noreturn]] void usage(const std::string& why) {
  std::cerr << "mii-bench: " << why << "\n" << usage_text;
  std::exit(2);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, sep);)
    if (!x.empty()) out.push_back(x);
  return out;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto v = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    auto num = [&]() { return std::stoll(v()); };
    auto range = [&](std::int64_t& lo, std::int64_t& hi) {
      const auto p = split(v(), ':');
      if (p.size() != 2) usage(a + " needs LO:HI");
      lo = std::stoll(p[0]);
      hi = std::stoll(p[1]);
    };
    if (a == "--model") o.model = v();
    else if (a == "--revision") o.revision = v();
    else if (a == "--write-checkpoint") o.write_checkpoint = v();
    else if (a == "--out") o.out = v();
    else if (a == "--label") o.label = v();
    else if (a == "--backend") o.backend = v();
    else if (a == "--quantization") o.quantization = v();
    else if (a == "--kv-cache-dtype") o.kv_cache_dtype = v();
    else if (a == "--random-weights") o.random_weights = true;
    else if (a == "--roofline") o.roofline = true;
    else if (a == "--scenario") o.scenarios = split(v(), ',');
    else if (a == "--prompt-len") o.prompt_len = num();
    else if (a == "--gen-len") o.gen_len = num();
    else if (a == "--prefill-batch") o.prefill_batch = num();
    else if (a == "--prefill-len") o.prefill_len = num();
    else if (a == "--batch") o.tp_batch = num();
    else if (a == "--tp-prompt") o.tp_prompt = num();
    else if (a == "--tp-gen") o.tp_gen = num();
    else if (a == "--clients") {
      o.clients.clear();
      for (auto& c : split(v(), ',')) o.clients.push_back(std::stoi(c));
    } else if (a == "--load-requests") o.load_requests = num();
    else if (a == "--load-prompt") range(o.load_prompt_lo, o.load_prompt_hi);
    else if (a == "--load-gen") range(o.load_gen_lo, o.load_gen_hi);
    else if (a == "--sla-ttft-ms") o.sla_ttft_s = double(num()) / 1000.0;
    else if (a == "--sla-tps") o.sla_tokens_per_s = double(num());
    else if (a == "--max-batch-tokens") {
      o.max_batch_tokens = num();
      o.max_batch_tokens_given = true;
    }
    else if (a == "--kv-fraction") o.kv_fraction = std::stod(v());
    else if (a == "--max-seqs") o.max_seqs = num();
    else if (a == "--grid-seconds") o.grid_seconds = std::stod(v());
    else if (a == "--grid-requests") o.grid_requests = num();
    else if (a == "--grid-cells") {
      o.grid_cells.clear();
      for (auto& c : split(v(), ',')) {
        const auto po = split(c, ':');
        if (po.size() != 2) usage("--grid-cells needs P:O,P:O,... (got '" + c + "')");
        o.grid_cells.emplace_back(std::stoll(po[0]), std::stoll(po[1]));
        if (o.grid_cells.back().first < 1 || o.grid_cells.back().second < 1) usage("--grid-cells: lengths must be >= 1");
      }
    }
    else if (a == "--repeats") o.repeats = int(num());
    else if (a == "-h" || a == "--help") {
      std::cout << usage_text;
      std::exit(0);
    }
    else usage("unknown option " + a);
  }
  if (o.model.empty()) usage("--model is required");
  if (o.label.empty()) o.label = std::filesystem::path(o.model).filename().string();
  return o;
}

using mii::bench::cost_model;

// trtllm-bench's request count for an (input, output) cell (TensorRT-LLM's perf-overview.md:
// thousands of short requests, fewer long ones); cells it does not list get the rule its table follows.
std::int64_t trtllm_requests(std::int64_t prompt, std::int64_t output) {
  static const std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> table{
      {{128, 128}, 30000}, {{128, 2048}, 3000}, {{128, 4096}, 1500}, {{1000, 2000}, 1500}, {{2048, 128}, 3000},
      {{2048, 2048}, 1500}, {{5000, 500}, 1500},  {{1000, 1000}, 3000}, {{500, 2000}, 3000}, {{20000, 2000}, 1000}};
  if (auto it = table.find({prompt, output}); it != table.end()) return it->second;
  return prompt + output <= 256 ? 30000 : prompt + output <= 3000 ? 3000 : 1500;
}

// The built-in architecture that serves this config, as mii::pipeline(dir) picks it: by
// `architectures`, else by `model_type`.
mii::model::arch_description arch_for(const mii::io::hf_config& hf, const std::string& where) {
  std::optional<mii::model::arch_description> by_class, by_type;
  boost::hana::for_each(mii::models::builtin, [&](auto t) {
    using M = typename decltype(t)::type;
    const auto d = M::describe(M::name);
    for (auto n : d.hf_names)
      for (const auto& a : hf.architectures)
        if (n == a && !by_class) by_class = d;
    for (auto n : d.hf_model_types)
      if (n == hf.model_type && !by_type) by_type = d;
  });
  if (by_class) return *by_class;
  if (by_type) return *by_type;
  throw mii::error(where + ": no built-in architecture for this config");
}

struct figure {
  std::string name, unit;
  double value = 0, floor = 0;  // floor: the physical best (same unit), 0 when not applicable
  bool lower_is_better = true;
};
struct scenario_result {
  std::string scenario;
  std::map<std::string, std::string> config;
  std::vector<figure> figures;
};

// What asynchronous scheduling could hide (engine_stats::host_gap_seconds): the host time between
// steps with nothing queued on the device, per gap and as a share of the wall time, between two
// snapshots of the stats.
std::vector<figure> host_gap_figures(const mii::engine_stats& before, const mii::engine_stats& after, double wall_s) {
  const double s = after.host_gap_seconds - before.host_gap_seconds;
  const std::int64_t n = after.host_gaps - before.host_gaps;
  return {{"host_gap_per_step", "us", n > 0 ? s / double(n) * 1e6 : 0, 0},
          {"host_gap_share", "%", wall_s > 0 ? 100 * s / wall_s : 0, 0}};
}

std::vector<std::int32_t> random_prompt(std::mt19937_64& rng, std::int64_t len, std::int64_t vocab) {
  std::uniform_int_distribution<std::int32_t> d(3, std::int32_t(std::min<std::int64_t>(vocab, 1 << 30) - 1));
  std::vector<std::int32_t> p(static_cast<std::size_t>(len));
  for (auto& x : p) x = d(rng);
  return p;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, std::size_t(q * double(v.size() - 1) + 0.5))];
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

// Writes OUT/model.safetensors with random bf16 values under the names and shapes the
// architecture's loader asks for (config.json + tokenizer-free), for cold-start measurements.
void write_random_checkpoint(const std::string& config_dir, const std::string& out_dir) {
  const auto hf = mii::io::load_hf_config(config_dir);
  const auto arch = arch_for(hf, config_dir);
  const auto shape = mii::model::resolve_shape(arch, hf);
  const auto ckpt = mii::io::checkpoint::synthetic();
  mii::model::plan_weights(arch, shape, ckpt);
  const auto tensors = ckpt.synthetic_tensors();
  std::filesystem::create_directories(out_dir);
  std::filesystem::copy_file(std::filesystem::path(config_dir) / "config.json", std::filesystem::path(out_dir) / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::string header = "{";
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    std::string dims;
    for (auto d : t.shape) dims += (dims.empty() ? "" : ",") + std::to_string(d);
    const std::uint64_t bytes = std::uint64_t(t.numel()) * 2;
    header += (header.size() > 1 ? "," : "") + ("\"" + t.name + "\":{\"dtype\":\"BF16\",\"shape\":[" + dims +
                                                "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}");
    offset += bytes;
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  std::ofstream f(std::filesystem::path(out_dir) / "model.safetensors", std::ios::binary);
  const std::uint64_t len = header.size();
  f.write(reinterpret_cast<const char*>(&len), 8);
  f.write(header.data(), std::streamsize(header.size()));
  // One 32 MiB block of random values, written over and over: a cold start measures bytes moved,
  // not values, and the file is written at the disk's speed instead of the generator's.
  std::vector<std::uint16_t> chunk(std::size_t(1) << 24);
  std::uint64_t state = 0x2545F4914F6CDD1Dull;
  for (auto& x : chunk) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;  // xorshift64
    x = std::uint16_t(0x3c00u | (state & 0x00ffu) | ((state >> 8) & 0x8000u));  // bf16 in ~[-0.008, 0.008)
  }
  for (std::uint64_t left = offset / 2; left > 0;) {
    const std::size_t n = std::size_t(std::min<std::uint64_t>(left, chunk.size()));
    f.write(reinterpret_cast<const char*>(chunk.data()), std::streamsize(n * 2));
    left -= n;
  }
  if (!f) throw mii::error(out_dir + "/model.safetensors: write failed");
  std::cerr << "mii-bench: wrote " << tensors.size() << " tensors, " << double(offset) / 1e9 << " GB to " << out_dir << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  const auto t_main = clock_type::now();
  options opt = parse(argc, argv);
  try {
    // A Hub id becomes its snapshot in the Hugging Face cache (weights only when they are read).
    const bool weights = !opt.random_weights && opt.write_checkpoint.empty();
    opt.model = mii::io::resolve_model(opt.model, {.revision = opt.revision,
                                                   .files = weights ? mii::io::hub_files::model : mii::io::hub_files::model_no_weights})
                    .string();
    if (!opt.write_checkpoint.empty()) {
      write_random_checkpoint(opt.model, opt.write_checkpoint);
      return 0;
    }
    mii::model_config cfg;
    cfg.random_weights = opt.random_weights;
    cfg.backend = opt.backend;
    cfg.quantization = opt.quantization;
    cfg.kv_cache_dtype = opt.kv_cache_dtype;
    const bool grid = std::find(opt.scenarios.begin(), opt.scenarios.end(), "grid") != opt.scenarios.end();
    const std::int64_t batch_tokens = grid && !opt.max_batch_tokens_given ? grid_batch_tokens : opt.max_batch_tokens;
    cfg.max_ragged_batch_size = batch_tokens;
    cfg.max_ragged_sequence_count = opt.max_seqs;
    cfg.kv_cache_memory_fraction = opt.kv_fraction;
    cfg.max_context = 8192;
    const auto hf = mii::io::load_hf_config(opt.model);
    std::cerr << "mii-bench: " << mii::io::summarize(hf) << "\n";

    double copy_bw = 0, gemm_rate = 0, e4m3_rate = 0;
    std::string gpu_name = "none";
    std::size_t gpu_used_before = 0, gpu_total = 0;
    double cuda_init_s = 0;  // the first CUDA calls: driver and context (the cold start's share)
#if MII_WITH_CUDA
    const auto t_cuda0 = clock_type::now();
    if (mii::cuda_available() && opt.backend != "host") {
      const auto info = mii::cuda_roofline::query();
      cuda_init_s = seconds_since(t_cuda0);
      gpu_name = info.name;
      gpu_total = info.memory_total;
      gpu_used_before = info.memory_used;
      if (opt.roofline) {
        const auto c = mii::cuda_roofline::measure();
        copy_bw = c.copy_bytes_per_s;
        gemm_rate = c.bf16_flops_per_s;
        e4m3_rate = c.e4m3_flops_per_s;
        std::cerr << "mii-bench: roofline: copy " << copy_bw / 1e12 << " TB/s, bf16 GEMM " << gemm_rate / 1e12
                  << " TFLOP/s, e4m3 GEMM " << e4m3_rate / 1e12 << " TFLOP/s\n";
      }
    }
#endif
    const auto t_load0 = clock_type::now();
    auto pipe = mii::pipeline(opt.model, cfg);
    const double load_s = seconds_since(t_load0);
    const auto& shape = pipe.shape();
    const auto mem = pipe.memory();
    std::size_t gpu_used_after = 0;
#if MII_WITH_CUDA
    if (gpu_name != "none") gpu_used_after = mii::cuda_roofline::query().memory_used;
#endif
    const std::size_t elem = pipe.backend_name() == "host" ? 4 : 2;
    // FP8 linear layers: quantized while loading, or a pre-quantized checkpoint.
    const bool fp8_linears = opt.quantization == "fp8" || hf.quantization.fp8;
    const cost_model cost = mii::bench::cost_of(shape, arch_for(hf, opt.model).mlp, mem, elem,
                                                    mii::backend::parse_kv_cache_dtype(opt.kv_cache_dtype) ==
                                                        mii::backend::kv_cache_dtype::fp8_e4m3,
                                                    fp8_linears);
    const mii::bench::ceilings ceil{copy_bw, gemm_rate, e4m3_rate};
    std::cerr << "mii-bench: " << pipe.model_name() << " on " << pipe.backend_name() << ", weights "
              << double(mem.weight_bytes) / 1e9 << " GB, KV cache " << double(mem.kv_cache_bytes) / 1e9 << " GB ("
              << mem.kv_blocks << " blocks of " << mem.kv_block_size << "), loaded in " << load_s << " s (open + plan "
              << mem.load_open_s << " s, weights " << mem.load_weights_s << " s, KV cache " << mem.load_kv_s << " s)\n";
    if (cost.sparse_layers > 0)
      std::cerr << "mii-bench: MoE decode floors count the experts a step's tokens touch under uniform routing, "
                << cost.experts << "·(1 − (1 − " << cost.top_k << "/" << cost.experts << ")^B) per layer: a batch-1 "
                << "step reads " << cost.step_weight_bytes(1) / 1e9 << " GB of the " << cost.weight_bytes / 1e9
                << " GB of weights\n";

    std::mt19937_64 rng(1234);
    std::vector<scenario_result> results;
    auto params_for = [](std::int64_t n) {
      mii::generate_params p;
      p.do_sample = false;
      p.ignore_eos = true;
      p.max_new_tokens = n;
      p.max_length = 1 << 30;
      return p;
    };
    const double decode_floor_s = mii::bench::decode_step_floor_s(cost, ceil, double(opt.prompt_len + opt.gen_len / 2));

    for (const auto& sc : opt.scenarios) {
      if (sc == "latency") {
        std::vector<double> ttft, step_ms;
        mii::engine_stats stats0;
        double measured_s = 0;
        for (int r = 0; r < opt.repeats + 1; ++r) {  // first run warms up
          auto p = params_for(opt.gen_len);
          std::vector<double> times;
          if (r == 1) stats0 = pipe.stats();
          const auto t0 = clock_type::now();
          p.stream = [&](const mii::stream_event& e) {
            if (!e.finished) times.push_back(seconds_since(t0));
          };
          pipe.generate_ids({random_prompt(rng, opt.prompt_len, shape.vocab)}, p);
          if (r > 0) measured_s += seconds_since(t0);
          if (r == 0 || times.size() < 2) continue;
          ttft.push_back(times.front() * 1e3);
          step_ms.push_back((times.back() - times.front()) * 1e3 / double(times.size() - 1));
        }
        const double prefill_s = gemm_rate > 0 ? mii::bench::prompt_floor_s(cost, ceil, double(opt.prompt_len)) : 0;
        const double ms = median(step_ms);
        results.push_back({"latency",
                           {{"batch", "1"}, {"prompt", std::to_string(opt.prompt_len)}, {"gen", std::to_string(opt.gen_len)}},
                           {{"time_to_first_token", "ms", median(ttft), prefill_s * 1e3},
                            {"decode_step", "ms", ms, decode_floor_s * 1e3},
                            {"decode_tokens_per_s", "tok/s", 1e3 / ms, decode_floor_s > 0 ? 1.0 / decode_floor_s : 0, false}}});
        for (auto& f : host_gap_figures(stats0, pipe.stats(), measured_s)) results.back().figures.push_back(f);
      } else if (sc == "prefill") {
        std::vector<double> secs;
        for (int r = 0; r < opt.repeats + 1; ++r) {
          std::vector<std::vector<std::int32_t>> prompts;
          for (int b = 0; b < opt.prefill_batch; ++b) prompts.push_back(random_prompt(rng, opt.prefill_len, shape.vocab));
          const auto t0 = clock_type::now();
          pipe.generate_ids(prompts, params_for(1));
          if (r) secs.push_back(seconds_since(t0));
        }
        const double tokens = double(opt.prefill_batch * opt.prefill_len);
        const double flops = tokens * 2 * cost.matmul_params + double(opt.prefill_batch) * 2 * cost.head_params +
                             double(opt.prefill_batch) * cost.attn_flops_per_pair * double(opt.prefill_len) * double(opt.prefill_len) / 2;
        const double s = median(secs);
        const double floor_s =
            gemm_rate > 0 ? double(opt.prefill_batch) * mii::bench::prompt_compute_s(cost, ceil, double(opt.prefill_len)) : 0;
        results.push_back({"prefill",
                           {{"batch", std::to_string(opt.prefill_batch)}, {"prompt", std::to_string(opt.prefill_len)},
                            {"max_batch_tokens", std::to_string(opt.max_batch_tokens)}},
                           {{"prefill_tokens_per_s", "tok/s", tokens / s, floor_s > 0 ? tokens / floor_s : 0, false},
                            {"model_tflops", "TFLOP/s", flops / s / 1e12, gemm_rate / 1e12, false}}});
      } else if (sc == "throughput") {
        std::vector<double> secs;
        mii::engine_stats stats0;
        for (int r = 0; r < std::max(1, opt.repeats / 2) + 1; ++r) {
          std::vector<std::vector<std::int32_t>> prompts;
          for (int b = 0; b < opt.tp_batch; ++b) prompts.push_back(random_prompt(rng, opt.tp_prompt, shape.vocab));
          if (r == 1) stats0 = pipe.stats();
          const auto t0 = clock_type::now();
          pipe.generate_ids(prompts, params_for(opt.tp_gen));
          if (r) secs.push_back(seconds_since(t0));
        }
        const double s = median(secs), out = double(opt.tp_batch * opt.tp_gen);
        // Floor: the prompts at the GEMM rate, then the decode steps, each reading the weights it
        // needs once plus each sequence's KV so far, or computing its FLOPs, whichever is longer.
        const double floor_s = mii::bench::throughput_floor(cost, ceil, double(opt.tp_prompt), double(opt.tp_gen),
                                                            double(opt.tp_batch), double(opt.tp_batch)).total_s;
        results.push_back({"throughput",
                           {{"batch", std::to_string(opt.tp_batch)}, {"prompt", std::to_string(opt.tp_prompt)},
                            {"gen", std::to_string(opt.tp_gen)}},
                           {{"output_tokens_per_s", "tok/s", out / s, floor_s > 0 ? out / floor_s : 0, false},
                            {"total_tokens_per_s", "tok/s", double(opt.tp_batch * (opt.tp_prompt + opt.tp_gen)) / s, 0, false},
                            {"wall", "s", s, floor_s}}});
        const double measured_s = std::accumulate(secs.begin(), secs.end(), 0.0);
        for (auto& f : host_gap_figures(stats0, pipe.stats(), measured_s)) results.back().figures.push_back(f);
      } else if (sc == "load") {
        for (int clients : opt.clients) {
          // Closed loop: `clients` users, each sends its next request when the last one finishes.
          std::uniform_int_distribution<std::int64_t> plen(opt.load_prompt_lo, opt.load_prompt_hi), glen(opt.load_gen_lo, opt.load_gen_hi);
          std::vector<mii::generate_params> params(std::size_t(opt.load_requests));
          std::vector<double> sent(params.size()), first(params.size(), -1), end(params.size());
          std::vector<std::int64_t> gen(params.size());
          std::size_t next = 0, finished = 0;
          int in_flight = 0;
          const auto t0 = clock_type::now();
          for (std::size_t i = 0; i < params.size(); ++i) {
            params[i] = params_for(glen(rng));
            gen[i] = *params[i].max_new_tokens;
            params[i].stream = [&, i](const mii::stream_event& e) {
              if (!e.finished && first[i] < 0) first[i] = seconds_since(t0);
            };
          }
          pipe.serve(
              [&](std::vector<mii::serve_request>& out) {
                while (in_flight < clients && next < params.size()) {
                  sent[next] = seconds_since(t0);
                  out.push_back({next, random_prompt(rng, plen(rng), shape.vocab), &params[next]});
                  ++next;
                  ++in_flight;
                }
              },
              [&](std::size_t id, mii::response) {
                end[id] = seconds_since(t0);
                --in_flight;
                ++finished;
              },
              [&] { return next < params.size(); });
          const double wall = seconds_since(t0);
          std::vector<double> latency, ttft;
          std::size_t within_sla = 0;
          double out_tokens = 0;
          for (std::size_t i = 0; i < params.size(); ++i) {
            latency.push_back(end[i] - sent[i]);
            ttft.push_back(first[i] - sent[i]);
            out_tokens += double(gen[i]);
            const double rate = double(gen[i] - 1) / std::max(1e-9, end[i] - first[i]);
            if (first[i] - sent[i] <= opt.sla_ttft_s && rate >= opt.sla_tokens_per_s) ++within_sla;
          }
          results.push_back({"load",
                             {{"clients", std::to_string(clients)}, {"requests", std::to_string(opt.load_requests)},
                              {"prompt", std::to_string(opt.load_prompt_lo) + ":" + std::to_string(opt.load_prompt_hi)},
                              {"gen", std::to_string(opt.load_gen_lo) + ":" + std::to_string(opt.load_gen_hi)},
                              {"sla", "ttft<=" + std::to_string(opt.sla_ttft_s) + "s,tps>=" + std::to_string(opt.sla_tokens_per_s)}},
                             {{"requests_per_s", "req/s", double(finished) / wall, 0, false},
                              {"output_tokens_per_s", "tok/s", out_tokens / wall, 0, false},
                              {"latency_p50", "s", percentile(latency, 0.5)},
                              {"latency_p90", "s", percentile(latency, 0.9)},
                              {"latency_p99", "s", percentile(latency, 0.99)},
                              {"ttft_p50", "s", percentile(ttft, 0.5)},
                              {"ttft_p99", "s", percentile(ttft, 0.99)},
                              {"effective_requests_per_s", "req/s", double(within_sla) / wall, 0, false}}});
        }
      } else if (sc == "grid") {
        // Offline throughput per (input, output) cell, as trtllm-bench measures it: all requests
        // queued, wall time from the first submission to the last response. A closed loop keeps
        // the plan's concurrency in flight (a finished request's place goes to the next one).
        {
          // Warm-up, not measured: requests ending one step apart run every decode batch size up
          // to 256 once, so the first cell does not pay for CUDA graph captures and GEMM plans.
          const std::int64_t n = std::min<std::int64_t>(256, opt.max_seqs);
          std::vector<mii::generate_params> warm;
          for (std::int64_t i = 0; i < n; ++i) warm.push_back(params_for(i + 1));
          std::int64_t next = 0;
          const auto t0 = clock_type::now();
          pipe.serve(
              [&](std::vector<mii::serve_request>& out) {
                for (; next < n; ++next)
                  out.push_back({std::size_t(next), random_prompt(rng, 16, shape.vocab), &warm[std::size_t(next)]});
              },
              [](std::size_t, mii::response) {}, [&] { return next < n; });
          std::cerr << "mii-bench: grid warm-up (" << n << " requests) " << seconds_since(t0) << " s\n";
        }
        for (const auto& [P, O] : opt.grid_cells) {
          const std::string cell = std::to_string(P) + "/" + std::to_string(O);
          if (P + O > pipe.max_sequence_length()) {
            std::cerr << "mii-bench: grid " << cell << ": skipped, longer than the engine's " << pipe.max_sequence_length()
                      << "-token sequence limit\n";
            continue;
          }
          auto plan = mii::bench::plan_grid_cell(cost, ceil, P, O, opt.max_seqs, mem.kv_blocks, mem.kv_block_size,
                                                 trtllm_requests(P, O), opt.grid_seconds);
          if (opt.grid_requests > 0) {
            plan.requests = opt.grid_requests;
            plan.concurrency = std::min(plan.concurrency, plan.requests);
          }
          const mii::generate_params params = params_for(O);
          std::int64_t sent = 0, in_flight = 0, out_tokens = 0, finished = 0;
          const auto stats0 = pipe.stats();
          const auto t0 = clock_type::now();
          pipe.serve(
              [&](std::vector<mii::serve_request>& out) {
                for (; in_flight < plan.concurrency && sent < plan.requests; ++sent, ++in_flight)
                  out.push_back({std::size_t(sent), random_prompt(rng, P, shape.vocab), &params});
              },
              [&](std::size_t, mii::response r) {
                --in_flight;
                ++finished;
                out_tokens += r.generated_length;
              },
              [&] { return sent < plan.requests; });
          const double wall = seconds_since(t0);
          const auto stats1 = pipe.stats();
          const auto fl = mii::bench::throughput_floor(cost, ceil, double(P), double(O), double(plan.requests),
                                                       double(plan.concurrency));
          const double want = double(plan.requests * O);
          if (finished != plan.requests || double(out_tokens) != want)
            throw mii::error("grid " + cell + ": " + std::to_string(finished) + " of " + std::to_string(plan.requests) +
                             " requests finished with " + std::to_string(out_tokens) + " tokens, expected " +
                             std::to_string(plan.requests * O));
          const std::int64_t preempted = stats1.preemptions - stats0.preemptions;
          std::ostringstream grid_seconds;
          grid_seconds << opt.grid_seconds;
          std::fprintf(stderr,
                       "mii-bench: grid %s: %lld requests (trtllm-bench: %lld), %lld in flight (cap: %s; the KV cache "
                       "holds %lld), budgets %lld tokens / %lld sequences per forward, %d KV blocks of %d: %.0f output "
                       "tok/s in %.1f s; floor %.0f tok/s (%.1f s: prompts %.2f s + %.0f decode steps of %.2f ms, %s-bound)"
                       " -> %.2fx; %lld preempted\n",
                       cell.c_str(), (long long)plan.requests, (long long)trtllm_requests(P, O),
                       (long long)plan.concurrency, plan.cap.c_str(), (long long)plan.kv_sequences,
                       (long long)batch_tokens, (long long)opt.max_seqs, mem.kv_blocks, mem.kv_block_size, want / wall,
                       wall, fl.total_s > 0 ? want / fl.total_s : 0.0, fl.total_s, fl.prefill_s,
                       fl.decode_steps, fl.step_s * 1e3, fl.memory_bound ? "memory" : "compute",
                       fl.total_s > 0 ? wall / fl.total_s : 0.0, (long long)preempted);
          results.push_back({"grid",
                             {{"prompt", std::to_string(P)}, {"gen", std::to_string(O)},
                              {"requests", std::to_string(plan.requests)},
                              {"reference_requests", std::to_string(trtllm_requests(P, O))},
                              {"concurrency", std::to_string(plan.concurrency)}, {"concurrency_cap", plan.cap},
                              {"kv_sequences", std::to_string(plan.kv_sequences)},
                              {"max_batch_tokens", std::to_string(batch_tokens)}, {"max_seqs", std::to_string(opt.max_seqs)},
                              {"kv_blocks", std::to_string(mem.kv_blocks)}, {"kv_block_size", std::to_string(mem.kv_block_size)},
                              {"grid_seconds", grid_seconds.str()}, {"preemptions", std::to_string(preempted)},
                              {"floor_bound", fl.memory_bound ? "memory" : "compute"}},
                             {{"output_tokens_per_s", "tok/s", want / wall, fl.total_s > 0 ? want / fl.total_s : 0, false},
                              {"total_tokens_per_s", "tok/s", double(plan.requests * (P + O)) / wall, 0, false},
                              {"wall", "s", wall, fl.total_s}}});
          for (auto& f : host_gap_figures(stats0, stats1, wall)) results.back().figures.push_back(f);
        }
      } else if (sc == "cold") {
        // Process start -> weights on the device -> first token (this process did exactly that).
        double since_exec = 0;
        {
          std::ifstream st("/proc/self/stat");
          std::string tok;
          for (int f = 1; f <= 22 && st >> tok; ++f)
            if (f == 22) since_exec = double(std::stoll(tok)) / double(sysconf(_SC_CLK_TCK));
          std::ifstream up("/proc/uptime");
          double uptime = 0;
          up >> uptime;
          since_exec = uptime - since_exec - seconds_since(t_main);  // exec -> main
        }
        const auto t0 = clock_type::now();
        pipe.generate_ids({random_prompt(rng, 16, shape.vocab)}, params_for(1));
        const double first_token = seconds_since(t0);
        // Where the time went: exec -> main, CUDA's context, then the pipeline (load_weights, the
        // whole of it: config and checkpoint headers opened and the weights planned; weights read,
        // converted and on the device; KV cache; the rest: tokenizer, engine thread), first token.
        const double weights_gb_s = mem.load_weights_s > 0 ? double(mem.weight_bytes) / mem.load_weights_s / 1e9 : 0;
        std::fprintf(stderr,
                     "mii-bench: cold start: exec -> main %.3f s, CUDA init %.3f s, pipeline %.3f s (open + plan %.3f s, "
                     "weights %.3f s = %.1f GB/s, KV cache %.3f s, other %.3f s), first token %.3f s\n",
                     std::max(0.0, since_exec), cuda_init_s, load_s, mem.load_open_s, mem.load_weights_s, weights_gb_s,
                     mem.load_kv_s, load_s - mem.load_open_s - mem.load_weights_s - mem.load_kv_s, first_token);
        results.push_back({"cold",
                           {{"checkpoint", opt.random_weights ? "random (device)" : opt.model},
                            {"load_threads", std::getenv("MII_LOAD_THREADS") ? std::getenv("MII_LOAD_THREADS") : "default"}},
                           {{"exec_to_main", "s", std::max(0.0, since_exec)},
                            {"cuda_init", "s", cuda_init_s},
                            {"load_weights", "s", load_s},
                            {"open_plan", "s", mem.load_open_s},
                            {"weights_to_device", "s", mem.load_weights_s},
                            {"weights_gb_per_s", "GB/s", weights_gb_s, 0, false},
                            {"kv_cache", "s", mem.load_kv_s},
                            {"first_token", "s", first_token},
                            {"process_start_to_first_token", "s", std::max(0.0, since_exec) + seconds_since(t_main)}}});
      } else {
        usage("unknown scenario " + sc);
      }
    }

    // ---- report ----
    std::printf("\n%-12s %-28s %14s %14s %10s\n", "scenario", "figure", "value", "floor", "vs floor");
    for (const auto& r : results)
      for (const auto& f : r.figures) {
        const double ratio = f.floor > 0 ? (f.lower_is_better ? f.value / f.floor : f.floor / f.value) : 0;
        std::printf("%-12s %-28s %11.3f %-3s %11.3f %-3s %9.2fx\n", r.scenario.c_str(), f.name.c_str(), f.value,
                    f.unit.substr(0, 3).c_str(), f.floor, f.floor > 0 ? f.unit.substr(0, 3).c_str() : "", ratio);
      }
    std::filesystem::create_directories(opt.out);
    const auto path = std::filesystem::path(opt.out) / (opt.label + ".json");
    std::ofstream js(path);
    js.precision(10);  // the renderer recomputes floors from the cost model: keep its inputs exact
    utsname u{};
    uname(&u);
    js << "{\"runner\":\"mii\",\"label\":\"" << json_escape(opt.label) << "\",\"machine\":\"" << u.nodename << " "
       << u.machine << "\",\"gpu\":\"" << json_escape(gpu_name) << "\",\"commit\":\"" << json_escape(MII_BENCH_COMMIT)
       << "\",\"model\":\"" << json_escape(opt.model) << "\",\"architecture\":\"" << pipe.model_name()
       << "\",\"backend\":\"" << pipe.backend_name() << "\",\"quantization\":\""
       << (opt.quantization.empty() ? "none" : opt.quantization) << "\",\"kv_cache_dtype\":\"" << json_escape(opt.kv_cache_dtype)
       << "\",\"random_weights\":" << (opt.random_weights ? "true" : "false")
       << ",\"weight_bytes\":" << mem.weight_bytes << ",\"kv_cache_bytes\":" << mem.kv_cache_bytes
       << ",\"gpu_memory_total\":" << gpu_total << ",\"gpu_used_before\":" << gpu_used_before
       << ",\"gpu_used_after_load\":" << gpu_used_after << ",\"roofline\":{\"copy_bytes_per_s\":" << copy_bw
       << ",\"bf16_flops_per_s\":" << gemm_rate << ",\"e4m3_flops_per_s\":" << e4m3_rate << "},\"cost_model\":{\"weight_bytes\":" << cost.weight_bytes
       << ",\"table_bytes\":" << cost.table_bytes << ",\"table_row_bytes\":" << cost.table_row_bytes
       << ",\"expert_bytes\":" << cost.expert_bytes << ",\"sparse_layers\":" << cost.sparse_layers
       << ",\"experts\":" << cost.experts << ",\"top_k\":" << cost.top_k << ",\"matmul_params\":" << cost.matmul_params
       << ",\"fp8_matmul_params\":" << cost.fp8_matmul_params
       << ",\"head_params\":" << cost.head_params << ",\"kv_bytes_per_token\":" << cost.kv_bytes_per_token
       << ",\"attn_flops_per_pair\":" << cost.attn_flops_per_pair << "},\"results\":[";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      js << (i ? "," : "") << "{\"scenario\":\"" << r.scenario << "\",\"config\":{";
      std::size_t k = 0;
      for (const auto& [key, val] : r.config) js << (k++ ? "," : "") << '"' << key << "\":\"" << json_escape(val) << '"';
      js << "},\"figures\":{";
      for (std::size_t j = 0; j < r.figures.size(); ++j)
        js << (j ? "," : "") << '"' << r.figures[j].name << "\":{\"value\":" << r.figures[j].value << ",\"unit\":\""
           << r.figures[j].unit << "\",\"floor\":" << r.figures[j].floor << '}';
      js << "}}";
    }
    js << "]}\n";
    std::cerr << "mii-bench: wrote " << path.string() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "mii-bench: " << e.what() << "\n";
    return 1;
  }
}
