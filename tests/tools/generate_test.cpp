// mii-generate as a user runs it (issue 17): one "mii-generate:" prefix on errors (row 5),
// streaming that stays readable with several prompts and JSON lines per delta (row 9), CRLF
// stdin (row 10), --max-length and --check-weights.
#include <catch2/catch.hpp>

#include <simdjson.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <mii/io/safetensors.hpp>

#include "tool_runs.hpp"

using namespace mii;
using Catch::Contains;

namespace {

// A copy of the demo model to break.
struct model_copy {
  test::temp_dir dir{"generate"};
  model_copy() { test::copy_dir(test::demo_model(), dir.path()); }
  std::string path() const { return dir.path().string(); }
};

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

struct json_line {
  std::int64_t index = -1;
  bool final = false;     // the response line (has finish_reason), else a delta
  std::string text;       // the delta's text, or the response's generated_text
  std::vector<std::int64_t> token_ids;
  std::string finish_reason;
};

json_line parse_line(simdjson::dom::parser& parser, const std::string& line) {
  INFO("line: " << line);
  simdjson::dom::element e;
  REQUIRE(parser.parse(line).get(e) == simdjson::SUCCESS);
  json_line out;
  REQUIRE(e["index"].get(out.index) == simdjson::SUCCESS);
  std::string_view text, reason;
  out.final = e["finish_reason"].get(reason) == simdjson::SUCCESS;
  out.finish_reason = std::string(reason);
  REQUIRE(e[out.final ? "generated_text" : "text"].get(text) == simdjson::SUCCESS);
  out.text = std::string(text);
  simdjson::dom::array ids;
  REQUIRE(e["token_ids"].get(ids) == simdjson::SUCCESS);
  for (simdjson::dom::element id : ids) out.token_ids.push_back(std::int64_t(id));
  return out;
}

const std::vector<std::string> three_prompts = {"--prompt", "DeepSpeed is", "--prompt", "Seattle is", "--prompt",
                                                "The quick brown"};

}  // namespace

TEST_CASE("mii-generate prints a config error once, with one prefix", "[tools][generate]") {
  model_copy broken;
  test::write_text(broken.dir / "config.json",
                   test::replace_once(test::read_text(broken.dir / "config.json"), "\"hidden_size\": 128", "\"hidden_size\": -5"));
  for (const auto& dir : {broken.path(), std::string("/nonexistent/model")}) {
    const auto r = test::run_tool({test::generate_tool(), dir, "--backend", "host", "--prompt", "hi"});
    INFO(r.err);
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::StartsWith("mii-generate: " + dir));
    CHECK_THAT(r.err, !Contains("mii-generate: mii-generate"));
    CHECK(test::lines_of(r.err).size() == 1);
  }
}

TEST_CASE("mii-generate --stream with several prompts prints what the run without it prints", "[tools][generate]") {
  const std::vector<std::string> args = with({"--greedy", "--max-new-tokens", "12"}, three_prompts);
  const auto plain = test::generate(args);
  const auto streamed = test::generate(with(args, {"--stream"}));
  INFO(plain.err << streamed.err);
  REQUIRE(plain.code == 0);
  CHECK(streamed.code == 0);
  REQUIRE(test::lines_of(plain.out).size() == 3);
  // In order, one prompt and its completion per line: no tokens of one prompt inside another's line.
  CHECK(streamed.out == plain.out);
  // One prompt streams exactly as before.
  const std::vector<std::string> one = {"--greedy", "--max-new-tokens", "12", "--prompt", "Seattle is"};
  CHECK(test::generate(with(one, {"--stream"})).out == test::generate(one).out);
}

TEST_CASE("mii-generate --json --stream: a line per delta, then the response line per prompt", "[tools][generate]") {
  const std::vector<std::string> args = with({"--greedy", "--ignore-eos", "--max-new-tokens", "10", "--json"}, three_prompts);
  const auto plain = test::generate(args);
  const auto streamed = test::generate(with(args, {"--stream"}));
  INFO(streamed.err << "\n" << streamed.out);
  REQUIRE(plain.code == 0);
  REQUIRE(streamed.code == 0);

  simdjson::dom::parser parser;
  std::map<std::int64_t, std::string> text;                  // deltas joined, per prompt
  std::map<std::int64_t, std::vector<std::int64_t>> ids;
  std::map<std::int64_t, json_line> finals;
  std::size_t deltas = 0;
  for (const auto& line : test::lines_of(streamed.out)) {
    const json_line l = parse_line(parser, line);
    REQUIRE(l.index >= 0);
    REQUIRE(l.index < 3);
    if (l.final) {
      CHECK(finals.count(l.index) == 0);
      finals[l.index] = l;
      continue;
    }
    CHECK(finals.count(l.index) == 0);  // no delta after its prompt's response line
    ++deltas;
    text[l.index] += l.text;
    ids[l.index].insert(ids[l.index].end(), l.token_ids.begin(), l.token_ids.end());
  }
  CHECK(deltas >= 3 * 10);  // a line per token at least (text held back by stop strings may come later)
  REQUIRE(finals.size() == 3);
  for (std::int64_t i = 0; i < 3; ++i) {
    INFO("prompt " << i);
    CHECK(finals[i].finish_reason == "length");
    CHECK(finals[i].token_ids.size() == 10);
    CHECK(ids[i] == finals[i].token_ids);
    CHECK(text[i] == finals[i].text);
  }
  // The response lines are those of the run without --stream.
  std::vector<std::string> plain_lines = test::lines_of(plain.out), final_lines;
  for (const auto& line : test::lines_of(streamed.out))
    if (line.find("\"finish_reason\"") != std::string::npos) final_lines.push_back(line);
  CHECK(final_lines == plain_lines);
}

TEST_CASE("mii-generate reads CRLF stdin lines without the \\r", "[tools][generate]") {
  const std::vector<std::string> args = {"--greedy", "--max-new-tokens", "6", "--json"};
  const auto given = test::generate(with(args, {"--prompt", "DeepSpeed is", "--prompt", "Seattle is"}));
  REQUIRE(given.code == 0);
  const auto crlf = test::generate(args, "DeepSpeed is\r\nSeattle is\r\n\r\n");
  const auto lf = test::generate(args, "DeepSpeed is\nSeattle is\n");
  INFO(crlf.err);
  CHECK(crlf.code == 0);
  CHECK(crlf.out == given.out);
  CHECK(lf.out == given.out);
}

TEST_CASE("mii-generate --max-length limits the output, and alone is not capped at 32 new tokens", "[tools][generate]") {
  auto lengths = [](const test::tool_run& r) {
    simdjson::dom::parser parser;
    const auto lines = test::lines_of(r.out);
    REQUIRE(lines.size() == 1);
    const json_line l = parse_line(parser, lines[0]);
    simdjson::dom::element e;
    REQUIRE(parser.parse(lines[0]).get(e) == simdjson::SUCCESS);
    return std::pair{std::int64_t(e["prompt_length"]), std::int64_t(l.token_ids.size())};
  };
  const std::vector<std::string> args = {"--greedy", "--ignore-eos", "--json", "--prompt", "DeepSpeed is"};
  const auto [prompt, by_default] = lengths(test::generate(args));
  CHECK(by_default == 32);  // neither limit given: a short default
  CHECK(lengths(test::generate(with(args, {"--max-length", std::to_string(prompt + 40)}))).second == 40);
  CHECK(lengths(test::generate(with(args, {"--max-length", std::to_string(prompt + 3)}))).second == 3);
  CHECK(lengths(test::generate(with(args, {"--max-new-tokens", "5"}))).second == 5);
  CHECK(lengths(test::generate(with(args, {"--max-new-tokens", "50", "--max-length", std::to_string(prompt + 7)}))).second == 7);
}

TEST_CASE("mii-generate --check-weights refuses a checkpoint with a NaN weight", "[tools][generate]") {
  model_copy poisoned;
  const std::string name = "model.layers.2.mlp.down_proj.weight";
  {
    const auto original = io::safetensors_file::open(test::demo_model() / "model.safetensors");
    std::vector<io::tensor_to_write> out;
    std::vector<std::byte> changed;
    for (const auto& t : original.tensors()) {
      if (t.name != name) {
        out.push_back({t.name, t.type, t.shape, t.bytes});
        continue;
      }
      REQUIRE(t.type == dtype::bf16);
      changed.assign(t.bytes.begin(), t.bytes.end());
      const std::uint16_t nan = 0x7fc0;  // bf16 quiet NaN
      std::memcpy(changed.data() + 2 * 7, &nan, sizeof nan);
      out.push_back({t.name, t.type, t.shape, changed});
    }
    REQUIRE(!changed.empty());
    io::write_safetensors(poisoned.dir / "model.safetensors", out);
  }
  const std::vector<std::string> argv = {test::generate_tool(), poisoned.path(), "--backend", "host",
                                         "--max-new-tokens", "2", "--prompt", "hi"};
  const auto checked = test::run_tool(with(argv, {"--check-weights"}));
  INFO(checked.err);
  CHECK(checked.code == 1);
  CHECK_THAT(checked.err, Contains("'" + name + "'") && Contains("check_weights"));
  CHECK(test::run_tool(argv).code == 0);  // the scan is opt-in
  CHECK(test::generate({"--check-weights", "--max-new-tokens", "2", "--prompt", "hi"}).code == 0);
}

TEST_CASE("mii-generate --logprobs N --json: one entry per generated token with N alternatives", "[tools][generate]") {
  const auto r = test::generate({"--greedy", "--ignore-eos", "--json", "--max-new-tokens", "4", "--logprobs", "3",
                                 "--prompt", "DeepSpeed is"});
  simdjson::dom::parser parser;
  const auto lines = test::lines_of(r.out);
  REQUIRE(lines.size() == 1);
  simdjson::dom::element e;
  REQUIRE(parser.parse(lines[0]).get(e) == simdjson::SUCCESS);
  simdjson::dom::array ids, lps;
  REQUIRE(e["token_ids"].get(ids) == simdjson::SUCCESS);
  REQUIRE(e["logprobs"].get(lps) == simdjson::SUCCESS);
  REQUIRE(lps.size() == 4);
  std::size_t i = 0;
  for (simdjson::dom::element lp : lps) {
    INFO("token " << i);
    CHECK(std::int64_t(lp["token_id"]) == std::int64_t(ids.at(i)));
    const double logprob = double(lp["logprob"]);
    CHECK(logprob <= 0.0);
    simdjson::dom::array top = lp["top_logprobs"];
    REQUIRE(top.size() == 3);
    // Greedy: the chosen token is the most likely alternative.
    CHECK(std::int64_t(top.at(0)["token_id"]) == std::int64_t(lp["token_id"]));
    CHECK(double(top.at(0)["logprob"]) == Approx(logprob));
    ++i;
  }
  const auto bad = test::generate({"--logprobs", "21", "--prompt", "x"});
  CHECK(bad.code != 0);
  CHECK_THAT(bad.err, Catch::Matchers::Contains("generate_params.logprobs"));
}

TEST_CASE("mii-generate --n N: a line per sample; --json lists them, --stream --json says which", "[tools][generate][samples]") {
  const std::vector<std::string> base = {"--n", "3", "--seed", "4", "--temperature", "2", "--top-p", "1",
                                         "--max-new-tokens", "8", "--ignore-eos", "--prompt", "DeepSpeed is", "--prompt", "Seattle is"};
  // Sample k is the prompt with seed 4 + k.
  std::vector<std::string> alone;
  for (const std::string prompt : {"DeepSpeed is", "Seattle is"})
    for (int k = 0; k < 3; ++k) {
      const auto one = test::generate({"--seed", std::to_string(4 + k), "--temperature", "2", "--top-p", "1",
                                       "--max-new-tokens", "8", "--ignore-eos", "--prompt", prompt});
      REQUIRE(one.code == 0);
      alone.push_back(test::lines_of(one.out).at(0));
    }
  const auto text = test::generate(base);
  REQUIRE(text.code == 0);
  CHECK(test::lines_of(text.out) == alone);
  auto streamed = base;
  streamed.push_back("--stream");
  CHECK(test::lines_of(test::generate(streamed).out) == alone);  // the same lines, in the same order

  auto json = base;
  json.push_back("--json");
  const auto j = test::generate(json);
  const auto lines = test::lines_of(j.out);
  REQUIRE(lines.size() == 2);
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  REQUIRE(parser.parse(lines[1]).get(e) == simdjson::SUCCESS);
  simdjson::dom::array samples = e["samples"];
  REQUIRE(samples.size() == 3);
  for (std::size_t k = 0; k < 3; ++k) {
    CHECK(std::int64_t(samples.at(k)["index"]) == std::int64_t(k));
    CHECK("Seattle is" + std::string(std::string_view(samples.at(k)["generated_text"])) == alone[3 + k]);
  }
  json.push_back("--stream");
  bool saw_sample_2 = false;
  for (const auto& line : test::lines_of(test::generate(json).out)) {
    simdjson::dom::element d;
    REQUIRE(parser.parse(line).get(d) == simdjson::SUCCESS);
    std::int64_t k = -1;
    if (d["text"].error() == simdjson::SUCCESS) {
      REQUIRE(d["sample"].get(k) == simdjson::SUCCESS);
      saw_sample_2 = saw_sample_2 || k == 2;
    }
  }
  CHECK(saw_sample_2);
  const auto bad = test::generate({"--n", "0", "--prompt", "x"});
  CHECK(bad.code != 0);
  CHECK_THAT(bad.err, Catch::Matchers::Contains("generate_params.n"));
}

TEST_CASE("mii-generate --prompt-logprobs N --json: null, then one entry per prompt token", "[tools][generate][logprobs]") {
  const auto r = test::generate({"--greedy", "--json", "--max-new-tokens", "2", "--prompt-logprobs", "2", "--prompt",
                                 "DeepSpeed is"});
  REQUIRE(r.code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  REQUIRE(parser.parse(test::lines_of(r.out).at(0)).get(e) == simdjson::SUCCESS);
  simdjson::dom::array plp = e["prompt_logprobs"];
  REQUIRE(plp.size() == std::size_t(std::int64_t(e["prompt_length"])));
  CHECK(plp.at(0).is_null());
  for (std::size_t j = 1; j < plp.size(); ++j) {
    CHECK(double(plp.at(j)["logprob"]) <= 0.0);
    CHECK(simdjson::dom::array(plp.at(j)["top_logprobs"]).size() == 2);
  }
  const auto bad = test::generate({"--prompt-logprobs", "21", "--prompt", "x"});
  CHECK(bad.code != 0);
  CHECK_THAT(bad.err, Catch::Matchers::Contains("generate_params.prompt_logprobs"));
}
