// Downloads from the fake Hub (tests/hub/fake_hub.py, which answers as huggingface.co answers
// huggingface_hub) into a temporary cache: the layout huggingface_hub writes, no second download,
// revisions, resuming, checksums, access errors, sharded checkpoints, concurrent resolvers.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <mii/io/hub.hpp>

#include "expect_error.hpp"
#include "io/sha256.hpp"
#include "suite_hub.hpp"

using namespace mii;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

using test::llama2_weights_sha256;

io::hub_options options(const io::hub_settings& s, std::string revision = "main") {
  return {.revision = std::move(revision), .show_progress = false, .settings = s};
}

bool is_hex(const std::string& s, std::size_t n) {
  return s.size() == n && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

TEST_CASE("a download writes the cache exactly as huggingface_hub writes it", "[hub][download]") {
  if (!io::hub_can_download()) {
    WARN("mii was built without libcurl: downloads are not tested");
    return;
  }
  const auto& hub = test::suite_hub();
  const std::size_t mark = hub.mark();
  test::temp_dir cache("hub-cache");
  // A token is sent to the Hub, and must not reach the CDN (which refuses it with 400, as S3 does).
  const fs::path dir = io::resolve_model("org/llama", options(hub.settings(cache.path(), "hf_abc")));
  const std::string sha = hub.commit("org/llama");
  const fs::path repo = cache / "models--org--llama";
  CHECK(dir == repo / "snapshots" / sha);
  CHECK(test::read_text(repo / "refs/main") == sha);  // the bare sha, no newline
  // Every file a relative link into blobs/, named by its ETag: the sha256 for LFS files, the git
  // blob sha1 for the others.
  for (const char* file : {"config.json", "generation_config.json", "tokenizer.json", "model.safetensors"}) {
    INFO(file);
    const fs::path link = dir / file;
    REQUIRE(fs::is_symlink(link));
    const std::string target = fs::read_symlink(link).string();
    CHECK(target.starts_with("../../blobs/"));
    const std::string etag = target.substr(std::string("../../blobs/").size());
    CHECK(is_hex(etag, std::string(file) == "model.safetensors" ? 64 : 40));
    CHECK(test::read_text(link) == test::read_text(test::fixture_model("llama2") / file));
  }
  CHECK(fs::read_symlink(dir / "model.safetensors") == "../../blobs/" + llama2_weights_sha256);
  // `git hash-object tests/fixtures/models/llama2/config.json`: the Hub's ETag of a small file.
  CHECK(fs::read_symlink(dir / "config.json") == "../../blobs/f015e5bd2e656d11b80afde7fa87552a7dfd8108");
  // Files the repo does not have are recorded as huggingface_hub records them, and nothing else lingers.
  for (const char* absent : {"tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}) {
    INFO(absent);
    CHECK(fs::is_regular_file(repo / ".no_exist" / sha / absent));
    CHECK_FALSE(fs::exists(dir / absent));
  }
  CHECK_FALSE(fs::exists(dir / "reference.json"));  // only what a model needs is fetched
  for (const auto& e : fs::directory_iterator(repo / "blobs")) {
    INFO(e.path());
    CHECK(e.path().extension() != ".incomplete");
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  }
  CHECK(fs::is_regular_file(cache / ".locks/models--org--llama" / (llama2_weights_sha256 + ".lock")));
  CHECK(test::read_text(cache / "CACHEDIR.TAG").starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
  // The token went to the Hub, not to the CDN.
  CHECK(hub.requests("HEAD", "/org/llama/resolve/main/config.json", mark).size() == 1);
  CHECK(hub.requests("GET", "/cdn/org/llama/" + llama2_weights_sha256, mark).size() == 1);
  for (const auto& r : hub.requests("", "", mark)) {
    INFO(r.method << " " << r.path);
    CHECK(r.auth == (r.path.starts_with("/cdn/") ? "" : "Bearer hf_abc"));
  }
}

TEST_CASE("a second resolve downloads nothing; a sha revision asks nothing at all", "[hub][download]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  const std::size_t start = hub.mark();
  const fs::path first = io::resolve_model("org/llama", options(hub.settings(cache.path())));
  CHECK(hub.requests("GET", "", start).size() == 4);  // config, generation config, tokenizer, weights
  const std::size_t again = hub.mark();
  CHECK(io::resolve_model("org/llama", options(hub.settings(cache.path()))) == first);
  const auto second = hub.requests("", "", again);
  REQUIRE(second.size() == 1);  // one HEAD to learn where main is now
  CHECK(second[0].method == "HEAD");
  const std::size_t by_sha = hub.mark();
  CHECK(io::resolve_model("org/llama", options(hub.settings(cache.path()), hub.commit("org/llama"))) == first);
  CHECK(hub.requests("", "", by_sha).empty());
}

TEST_CASE("offline mode uses the cache only and names what is missing", "[hub][download]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  io::hub_settings settings = hub.settings(cache.path());
  const fs::path online = io::resolve_model("org/llama", options(settings));
  settings.offline = true;
  settings.endpoint = "http://127.0.0.1:9";  // nothing there: offline must not ask
  const std::size_t mark = hub.mark();
  CHECK(io::resolve_model("org/llama", options(settings)) == online);
  fs::remove(online / "tokenizer.json");
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/llama", options(settings))),
             Contains("repo org/llama, revision main") && Contains("file tokenizer.json") && Contains("HF_HUB_OFFLINE"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/other", options(settings))),
             Contains("repo org/other, revision main") && Contains("not in the Hugging Face cache"));
  CHECK(hub.requests("", "", mark).empty());
}

TEST_CASE("revisions: a branch and a commit sha", "[hub][download]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  const std::string dev = hub.commit("org/llama", "dev"), main = hub.commit("org/llama");
  REQUIRE(dev != main);
  const fs::path repo = cache / "models--org--llama";
  const std::size_t mark = hub.mark();
  const fs::path at_dev = io::resolve_model("org/llama", options(hub.settings(cache.path()), "dev"));
  CHECK(at_dev == repo / "snapshots" / dev);
  CHECK(test::read_text(repo / "refs/dev") == dev);
  CHECK_THAT(test::read_text(at_dev / "generation_config.json"), Contains("\"_branch\": \"dev\""));
  // By sha: straight to that snapshot, no ref written for it; both commits share the unchanged blobs.
  const fs::path at_main = io::resolve_model("org/llama", options(hub.settings(cache.path()), main));
  CHECK(at_main == repo / "snapshots" / main);
  CHECK_FALSE(fs::exists(repo / "refs" / main));
  CHECK_FALSE(fs::exists(repo / "refs/main"));
  CHECK(fs::read_symlink(at_main / "model.safetensors") == fs::read_symlink(at_dev / "model.safetensors"));
  CHECK(hub.requests("GET", "/cdn/", mark).size() == 1);  // the weights were downloaded once
  CHECK(test::read_text(at_main / "generation_config.json") == test::read_text(test::fixture_model("llama2") / "generation_config.json"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/llama", options(hub.settings(cache.path()), "nope"))),
             Contains("revision 'nope' not found in org/llama") && Contains("HTTP 404"));
}

TEST_CASE("a dropped connection or a stalled one is resumed with a Range request", "[hub][download]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  for (const std::string fault : {"drop", "stall"}) {
    INFO(fault);
    test::temp_dir cache("hub-cache");
    auto settings = hub.settings(cache.path());
    settings.download_timeout_s = 1;  // a stall of 1 s ends the transfer
    const std::size_t mark = hub.mark();
    const fs::path dir = io::resolve_model("fault/" + fault, options(settings));
    CHECK(test::read_text(dir / "model.safetensors") == test::read_text(test::fixture_model("llama2") / "model.safetensors"));
    const auto gets = hub.requests("GET", "/cdn/fault/" + fault + "/" + llama2_weights_sha256, mark);
    REQUIRE(gets.size() == 2);
    CHECK(gets[0].range.empty());
    CHECK(gets[1].range == "bytes=" + std::to_string(560488 / 2) + "-");  // from where the first stopped
  }
}

TEST_CASE("an .incomplete file a previous run left is continued, or restarted when the server ignores Range",
          "[hub][download]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  const std::string weights = test::read_text(test::fixture_model("llama2") / "model.safetensors");
  for (const std::string repo : {"org/llama", "fault/ignore-range"}) {
    INFO(repo);
    test::temp_dir cache("hub-cache");
    const fs::path blobs = cache / ("models--" + repo.substr(0, repo.find('/')) + "--" + repo.substr(repo.find('/') + 1)) / "blobs";
    fs::create_directories(blobs);
    test::write_text(blobs / (llama2_weights_sha256 + ".incomplete"), weights.substr(0, 100000));
    const std::size_t mark = hub.mark();
    const fs::path dir = io::resolve_model(repo, options(hub.settings(cache.path())));
    CHECK(test::read_text(dir / "model.safetensors") == weights);
    const auto gets = hub.requests("GET", "/cdn/", mark);
    REQUIRE(gets.size() == 1);
    CHECK(gets[0].range == "bytes=100000-");
  }
}

TEST_CASE("a wrong checksum deletes the download and names the file and both hashes", "[hub][download]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  const std::string message = MII_ERROR_MESSAGE(io::resolve_model("fault/corrupt", options(hub.settings(cache.path()))));
  CHECK_THAT(message, Contains("repo fault/corrupt, revision main (commit " + hub.commit("fault/corrupt") + "), file model.safetensors") &&
                          Contains("checksum mismatch") && Contains("the Hub's ETag says " + llama2_weights_sha256) &&
                          Contains("deleted"));
  const auto got = message.find("have sha256 ");
  REQUIRE(got != std::string::npos);
  const std::string actual = message.substr(got + 12, 64);
  CHECK(is_hex(actual, 64));
  CHECK(actual != llama2_weights_sha256);
  const fs::path blobs = cache / "models--fault--corrupt/blobs";
  CHECK_FALSE(fs::exists(blobs / llama2_weights_sha256));
  CHECK_FALSE(fs::exists(blobs / (llama2_weights_sha256 + ".incomplete")));
  CHECK_FALSE(fs::exists(cache / "models--fault--corrupt/snapshots" / hub.commit("fault/corrupt") / "model.safetensors"));
}

TEST_CASE("a gated repo: no token, a wrong token, the right token", "[hub][download]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/gated", options(hub.settings(cache.path())))),
             Contains("HTTP 401") && Contains("org/gated is a gated repo") && Contains("set HF_TOKEN") &&
                 Contains("no token was sent"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/gated", options(hub.settings(cache.path(), "hf_wrong")))),
             Contains("HTTP 403") && Contains("gated repo") && Contains("the token sent") && Contains("was refused"));
  CHECK(fs::is_directory(io::resolve_model("org/gated", options(hub.settings(cache.path(), "hf_right")))));
}

TEST_CASE("a repo, a file or a Hub that is not there", "[hub][download]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/missing", options(hub.settings(cache.path())))),
             Contains("repo org/missing") && Contains("HTTP 401") && Contains("does not exist"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/missing", options(hub.settings(cache.path(), "hf_x")))),
             Contains("HTTP 404") && Contains("repo org/missing not found"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/bare", options(hub.settings(cache.path())))),
             Contains("repo org/bare, revision main (commit " + hub.commit("org/bare") + "), file tokenizer.json") &&
                 Contains("not found on the Hub") && Contains("/org/bare/resolve/"));
  // Nothing listens: the error names the URL; with the files cached, the cache stands in.
  auto gone = hub.settings(cache.path());
  gone.endpoint = "http://127.0.0.1:9";
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/llama", options(gone))),
             Contains("cannot reach the Hub") && Contains("http://127.0.0.1:9/org/llama/resolve/main/config.json"));
  const fs::path dir = io::resolve_model("org/llama", options(hub.settings(cache.path())));
  std::vector<std::string> notes;
  auto o = options(gone);
  o.note = [&](const std::string& line) { notes.push_back(line); };
  CHECK(io::resolve_model("org/llama", o) == dir);
  REQUIRE(notes.size() == 1);
  CHECK_THAT(notes[0], Contains("cannot reach the Hub") && Contains("using the cached snapshot"));
}

TEST_CASE("a renamed repo's relative redirect is followed", "[hub][download]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  const fs::path dir = io::resolve_model("old/name", options(hub.settings(cache.path())));
  CHECK(dir == cache / "models--old--name/snapshots" / hub.commit("org/llama"));
  CHECK(test::read_text(dir / "config.json") == test::read_text(test::fixture_model("llama2") / "config.json"));
}

TEST_CASE("a sharded checkpoint: the index and every shard it lists", "[hub][download]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  const fs::path dir = io::resolve_model("org/sharded", options(hub.settings(cache.path())));
  for (const char* f : {"model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
    INFO(f);
    CHECK(fs::is_symlink(dir / f));
  }
  CHECK_FALSE(fs::exists(dir / "model.safetensors"));
  CHECK(fs::exists(cache / "models--org--sharded/.no_exist" / hub.commit("org/sharded") / "model.safetensors"));
  // Only the tokenizer files when only they are asked for.
  test::temp_dir other("hub-cache");
  const std::size_t mark = hub.mark();
  const fs::path tok = io::resolve_model(
      "org/sharded", {.files = io::hub_files::tokenizer, .show_progress = false, .settings = hub.settings(other.path())});
  CHECK(fs::exists(tok / "tokenizer.json"));
  CHECK_FALSE(fs::exists(tok / "config.json"));
  CHECK_FALSE(fs::exists(tok / "model.safetensors.index.json"));
  CHECK(hub.requests("", "safetensors", mark).empty());
}

TEST_CASE("threads resolving one repo into an empty cache at once download each blob once", "[hub][download][threads]") {
  if (!io::hub_can_download()) return;
  const auto& hub = test::suite_hub();
  test::temp_dir cache("hub-cache");
  const auto settings = hub.settings(cache.path());
  constexpr int n = 4;
  std::vector<fs::path> dirs(n);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  const std::size_t mark = hub.mark();
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      try {
        dirs[i] = io::resolve_model("org/llama", options(settings));
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < n; ++i) {
    INFO(i << ": " << errors[i]);
    CHECK(errors[i].empty());
    CHECK(dirs[i] == dirs[0]);
  }
  // The lock made the others wait and use each blob the first one wrote.
  CHECK(hub.requests("GET", "/cdn/", mark).size() == 1);
  CHECK(hub.requests("GET", "/resolve/", mark).size() == 3);
  CHECK(io::detail::sha256_hex(test::read_text(dirs[0] / "model.safetensors")) == llama2_weights_sha256);
}
