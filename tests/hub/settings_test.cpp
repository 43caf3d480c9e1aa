// hub_settings::from_environment and is_hub_repo_id against what huggingface_hub does
// (constants.py: HF_HUB_CACHE > HUGGINGFACE_HUB_CACHE > $HF_HOME/hub > $XDG_CACHE_HOME/huggingface/hub
// > ~/.cache/huggingface/hub; utils/_auth.py: HF_TOKEN > HUGGING_FACE_HUB_TOKEN > the token file;
// utils/_validators.py: validate_repo_id).
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include <mii/io/hub.hpp>

#include "test_files.hpp"

using mii::io::hub_settings;
using mii::io::is_hub_repo_id;

namespace {

hub_settings with_env(const std::map<std::string, std::string>& vars) {
  return hub_settings::from_environment([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace

TEST_CASE("the cache directory comes from the variables huggingface_hub reads, in its order", "[hub][settings]") {
  CHECK(with_env({{"HOME", "/h"}}).cache_dir == "/h/.cache/huggingface/hub");
  CHECK(with_env({{"HOME", "/h"}, {"XDG_CACHE_HOME", "/x"}}).cache_dir == "/x/huggingface/hub");
  CHECK(with_env({{"HOME", "/h"}, {"XDG_CACHE_HOME", "/x"}, {"HF_HOME", "/hf"}}).cache_dir == "/hf/hub");
  CHECK(with_env({{"HF_HOME", "/hf"}, {"HUGGINGFACE_HUB_CACHE", "/legacy"}}).cache_dir == "/legacy");
  CHECK(with_env({{"HF_HOME", "/hf"}, {"HUGGINGFACE_HUB_CACHE", "/legacy"}, {"HF_HUB_CACHE", "/new"}}).cache_dir == "/new");
  // ~ and $VARS are expanded (os.path.expanduser + expandvars); unknown variables stay as written.
  CHECK(with_env({{"HOME", "/h"}, {"HF_HOME", "~/hf"}}).cache_dir == "/h/hf/hub");
  CHECK(with_env({{"HOME", "/h"}, {"D", "/data"}, {"HF_HUB_CACHE", "${D}/c/$D/$NOPE"}}).cache_dir == "/data/c//data/$NOPE");
}

TEST_CASE("the endpoint, the offline switch and the timeouts", "[hub][settings]") {
  CHECK(with_env({}).endpoint == "https://huggingface.co");
  CHECK(with_env({{"HF_ENDPOINT", "https://hf-mirror.com/"}}).endpoint == "https://hf-mirror.com");
  CHECK_FALSE(with_env({}).offline);
  for (const char* yes : {"1", "ON", "yes", "True"}) CHECK(with_env({{"HF_HUB_OFFLINE", yes}}).offline);
  for (const char* no : {"0", "false", "off", ""}) CHECK_FALSE(with_env({{"HF_HUB_OFFLINE", no}}).offline);
  CHECK(with_env({{"TRANSFORMERS_OFFLINE", "1"}}).offline);
  CHECK(with_env({}).download_timeout_s == 10);
  CHECK(with_env({{"HF_HUB_DOWNLOAD_TIMEOUT", "3"}, {"HF_HUB_ETAG_TIMEOUT", "4"}}).download_timeout_s == 3);
  CHECK(with_env({{"HF_HUB_DOWNLOAD_TIMEOUT", "3"}, {"HF_HUB_ETAG_TIMEOUT", "4"}}).metadata_timeout_s == 4);
  CHECK_THROWS_WITH(with_env({{"HF_HUB_DOWNLOAD_TIMEOUT", "ten"}}),
                    "HF_HUB_DOWNLOAD_TIMEOUT is \"ten\": not a positive whole number of seconds");
  CHECK_THROWS_WITH(with_env({{"HF_HUB_ETAG_TIMEOUT", "0"}}), Catch::Contains("HF_HUB_ETAG_TIMEOUT is \"0\""));
}

TEST_CASE("the token: HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then the token file", "[hub][settings]") {
  mii::test::temp_dir home("hub-home");
  mii::test::write_text(home / "token", "hf_from_file\r\n");
  const std::string hf_home = home.path().string();
  CHECK(with_env({{"HF_HOME", hf_home}}).token == "hf_from_file");
  CHECK(with_env({{"HF_HOME", hf_home}, {"HUGGING_FACE_HUB_TOKEN", "hf_legacy"}}).token == "hf_legacy");
  CHECK(with_env({{"HF_HOME", hf_home}, {"HUGGING_FACE_HUB_TOKEN", "hf_legacy"}, {"HF_TOKEN", " hf_env\n"}}).token == "hf_env");
  mii::test::write_text(home / "other", "hf_elsewhere");
  CHECK(with_env({{"HF_HOME", hf_home}, {"HF_TOKEN_PATH", (home / "other").string()}}).token == "hf_elsewhere");
  CHECK(with_env({{"HF_HOME", (home / "none").string()}}).token.empty());
}

TEST_CASE("repo ids as the Hub validates them", "[hub][settings]") {
  for (const char* ok : {"gpt2", "mistralai/Mistral-7B-v0.1", "org_1/name.v2", "a/b", "Qwen/Qwen3-0.6B"}) {
    INFO(ok);
    CHECK(is_hub_repo_id(ok));
  }
  for (const char* bad : {"", "/abs/path", "a/b/c", "./model", "../model", "org/", "/name", "org--x/name", "org/na..me",
                          "org/name.git", "-org/name", "org/name-", ".hidden", "org/na me", "org/\xC3\xB1" "ame"}) {
    INFO(bad);
    CHECK_FALSE(is_hub_repo_id(bad));
  }
  CHECK(is_hub_repo_id("org/" + std::string(96, 'a')));
  CHECK_FALSE(is_hub_repo_id("org/" + std::string(97, 'a')));
}
