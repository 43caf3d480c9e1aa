// The tools take a Hub id where they take a model directory (docs/hub.md): mii-generate,
// mii-tokenize and mii-chat-template through the fake Hub (tests/hub/fake_hub.py), with the Hub
// and the cache from HF_ENDPOINT and HF_HUB_CACHE as a user sets them.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include <mii/io/hub.hpp>

#include "../hub/fake_hub.hpp"
#include "tool_runs.hpp"

using namespace mii;
using Catch::Contains;

namespace {

std::map<std::string, std::string> hub_env(const test::fake_hub& hub, const test::temp_dir& cache) {
  // An empty value unsets: the runner's own Hub settings must not leak in.
  return {{"HF_ENDPOINT", hub.endpoint()}, {"HF_HUB_CACHE", cache.path().string()}, {"HF_HUB_OFFLINE", ""},
          {"TRANSFORMERS_OFFLINE", ""}, {"HF_TOKEN", ""}, {"HUGGING_FACE_HUB_TOKEN", ""},
          {"HF_TOKEN_PATH", (cache / "no-token").string()}};
}

}  // namespace

TEST_CASE("mii-generate org/name generates what mii-generate DIR generates", "[tools][hub]") {
  if (!io::hub_can_download()) {
    WARN("mii was built without libcurl: Hub downloads are not tested");
    return;
  }
  test::fake_hub hub({"--repo", "org/demo=" + test::demo_model().string()});
  test::temp_dir cache("tool-hub-cache");
  const std::vector<std::string> args = {"--backend", "host", "--greedy", "--max-new-tokens", "8", "--prompt", "DeepSpeed is"};
  std::vector<std::string> local = {test::generate_tool(), test::demo_model().string()};
  local.insert(local.end(), args.begin(), args.end());
  const auto expected = test::run_tool(local);
  REQUIRE(expected.code == 0);
  std::vector<std::string> by_id = {test::generate_tool(), "org/demo"};
  by_id.insert(by_id.end(), args.begin(), args.end());
  const auto first = test::run_tool(by_id, {}, hub_env(hub, cache));
  INFO(first.err);
  CHECK(first.code == 0);
  CHECK(first.out == expected.out);
  CHECK_THAT(first.err, Contains("mii-generate: downloading org/demo model.safetensors"));
  // Again offline, from the cache; and a revision by sha.
  auto offline = hub_env(hub, cache);
  offline["HF_HUB_OFFLINE"] = "1";
  const auto cached = test::run_tool(by_id, {}, offline);
  CHECK(cached.code == 0);
  CHECK(cached.out == expected.out);
  by_id.insert(by_id.end(), {"--revision", hub.commit("org/demo")});
  CHECK(test::run_tool(by_id, {}, offline).out == expected.out);
  by_id.back() = "no-such-branch";
  const auto missing = test::run_tool(by_id, {}, offline);
  CHECK(missing.code == 1);
  CHECK_THAT(missing.err, Contains("mii-generate: repo org/demo, revision no-such-branch") && Contains("HF_HUB_OFFLINE"));
}

TEST_CASE("mii-tokenize and mii-chat-template take a Hub id and fetch only the tokenizer files", "[tools][hub]") {
  if (!io::hub_can_download()) return;
  test::fake_hub hub({"--repo", "org/demo=" + test::demo_model().string()});
  test::temp_dir cache("tool-hub-cache");
  const auto local = test::run_tool({(test::tools_dir() / "mii-tokenize").string(), test::demo_model().string()}, "The quick brown fox");
  REQUIRE(local.code == 0);
  const auto by_id = test::run_tool({(test::tools_dir() / "mii-tokenize").string(), "org/demo"}, "The quick brown fox", hub_env(hub, cache));
  INFO(by_id.err);
  CHECK(by_id.code == 0);
  CHECK(by_id.out == local.out);
  CHECK(hub.requests("GET", "model.safetensors").empty());
  CHECK(hub.requests("GET", "/cdn/").empty());
  // The demo model has no chat template: the error is the one the directory gives, about the snapshot.
  const auto chat = test::run_tool({(test::tools_dir() / "mii-chat-template").string(), "org/demo"}, "{}", hub_env(hub, cache));
  CHECK(chat.code == 2);
  CHECK_THAT(chat.err, Contains("models--org--demo/snapshots/" + hub.commit("org/demo")) && Contains("no chat template"));
}
