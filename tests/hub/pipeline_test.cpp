// What a Hub id resolves to loads as the local directory does and generates the same greedy
// tokens: mii::pipeline on the snapshot, on a sharded copy, and mii::pipeline("org/name") itself
// with the Hub and the cache taken from the environment (HF_ENDPOINT, HF_HUB_CACHE).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <mii/io/hub.hpp>
#include <mii/pipeline.hpp>

#include "suite_hub.hpp"
#include "models/instantiations.hpp"  // the typed factories, instantiated in libmii

using namespace mii;
namespace fs = std::filesystem;

namespace {

model_config host_config() {
  model_config c;
  c.backend = "host";
  c.kv_block_size = 16;
  c.kv_cache_blocks = 256;
  c.show_progress = false;
  return c;
}

std::vector<std::vector<token_id>> greedy_tokens(const fs::path& model, const model_config& cfg = host_config()) {
  auto pipe = mii::pipeline(model, cfg);
  generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 12;
  p.ignore_eos = true;
  std::vector<std::vector<token_id>> out;
  for (const auto& r : pipe({"DeepSpeed is", "Seattle is a city"}, p)) out.push_back(r.token_ids);
  return out;
}

// Sets environment variables for one scope (the test is single-threaded while it holds them).
class scoped_env {
 public:
  explicit scoped_env(const std::map<std::string, std::optional<std::string>>& vars) {
    for (const auto& [k, v] : vars) {
      const char* old = std::getenv(k.c_str());
      saved_[k] = old ? std::optional<std::string>(old) : std::nullopt;
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }
  ~scoped_env() {
    for (const auto& [k, v] : saved_) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

}  // namespace

TEST_CASE("a snapshot from the Hub, whole or sharded, generates what the local directory generates", "[hub][pipeline]") {
  if (!io::hub_can_download()) return;
  const fs::path local = test::fixture_model("llama2");
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  const auto expected = greedy_tokens(local);
  REQUIRE(expected.size() == 2);
  REQUIRE(expected[0].size() == 12);
  for (const char* repo : {"org/llama", "org/sharded"}) {
    INFO(repo);
    const fs::path dir = io::resolve_model(repo, {.show_progress = false, .settings = hub.settings(cache.path())});
    CHECK(greedy_tokens(dir) == expected);
  }
}

TEST_CASE("mii::pipeline(\"org/name\") resolves through HF_ENDPOINT and HF_HUB_CACHE, at model_config.revision",
          "[hub][pipeline]") {
  if (!io::hub_can_download()) return;
  const fs::path local = test::fixture_model("llama2");
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  const auto expected = greedy_tokens(local);
  {
    scoped_env env({{"HF_ENDPOINT", hub.endpoint()}, {"HF_HUB_CACHE", cache.path().string()}, {"HF_HUB_OFFLINE", std::nullopt},
                    {"TRANSFORMERS_OFFLINE", std::nullopt}, {"HF_TOKEN", std::nullopt}, {"HUGGING_FACE_HUB_TOKEN", std::nullopt},
                    {"HF_TOKEN_PATH", (cache / "no-token").string()}});
    CHECK(greedy_tokens("org/llama") == expected);
    auto at_sha = host_config();
    at_sha.revision = hub.commit("org/llama");
    CHECK(greedy_tokens("org/llama", at_sha) == expected);
    // The typed factory resolves the same way.
    auto typed = mii::pipeline<mii::models::llama>("org/llama", host_config());
    CHECK(typed.model_name() == mii::models::llama::name);
  }
  CHECK(fs::is_directory(cache / "models--org--llama/snapshots" / hub.commit("org/llama")));
}
