// Resolving from a cache laid out by hand the way huggingface_hub lays it out (no server):
// refs/<revision> -> snapshots/<sha>/<file> -> ../../blobs/<etag>; offline errors; a local path
// that wins over a repo id; names that are neither.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>

#include <mii/io/hub.hpp>

#include "expect_error.hpp"
#include "test_files.hpp"

using namespace mii;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

const std::string sha_main = "0123456789abcdef0123456789abcdef01234567";
const std::string sha_old = "89abcdef0123456789abcdef0123456789abcdef";

// A snapshot of `files` at `sha` of models--org--tiny, each file a blob named after its content.
void add_snapshot(const fs::path& cache, const std::string& sha, const std::vector<std::string>& files) {
  const fs::path repo = cache / "models--org--tiny";
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots" / sha);
  for (const auto& f : files) {
    const std::string etag = "etag-" + f + "-" + sha.substr(0, 4);
    test::write_text(repo / "blobs" / etag, "{\"file\": \"" + f + "\"}");
    fs::create_symlink("../../blobs/" + etag, repo / "snapshots" / sha / f);
  }
}

void add_ref(const fs::path& cache, const std::string& revision, const std::string& sha) {
  fs::create_directories((cache / "models--org--tiny/refs" / revision).parent_path());
  test::write_text(cache / "models--org--tiny/refs" / revision, sha);
}

io::hub_options offline(const fs::path& cache, std::string revision = "main", io::hub_files files = io::hub_files::model) {
  io::hub_settings s;
  s.cache_dir = cache;
  s.endpoint = "http://127.0.0.1:9";  // never asked: offline
  s.offline = true;
  return {.revision = std::move(revision), .files = files, .show_progress = false, .settings = s};
}

const std::vector<std::string> model_files = {"config.json", "tokenizer.json", "model.safetensors"};

}  // namespace

TEST_CASE("offline, refs/<revision> leads to its snapshot; a sha goes straight to one", "[hub][cache]") {
  test::temp_dir cache("hub-cache");
  add_snapshot(cache.path(), sha_main, model_files);
  add_snapshot(cache.path(), sha_old, model_files);
  add_ref(cache.path(), "main", sha_main);
  add_ref(cache.path(), "refs/pr/1", sha_old);  // a revision with slashes, as huggingface_hub stores it
  const fs::path repo = cache / "models--org--tiny";
  CHECK(io::resolve_model("org/tiny", offline(cache.path())) == repo / "snapshots" / sha_main);
  CHECK(io::resolve_model("org/tiny", offline(cache.path(), "refs/pr/1")) == repo / "snapshots" / sha_old);
  CHECK(io::resolve_model("org/tiny", offline(cache.path(), sha_old)) == repo / "snapshots" / sha_old);
  // The tokenizer files alone need no weights.
  fs::remove(repo / "snapshots" / sha_main / "model.safetensors");
  CHECK(io::resolve_model("org/tiny", offline(cache.path(), "main", io::hub_files::tokenizer)) == repo / "snapshots" / sha_main);
}

TEST_CASE("offline, a missing ref or file is an error naming the repo, the revision and the file", "[hub][cache]") {
  test::temp_dir cache("hub-cache");
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/tiny", offline(cache.path()))),
             Contains("repo org/tiny, revision main") && Contains("not in the Hugging Face cache") &&
                 Contains("HF_HUB_OFFLINE") && Contains("refs/main"));
  add_snapshot(cache.path(), sha_main, {"config.json", "model.safetensors"});
  add_ref(cache.path(), "main", sha_main);
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/tiny", offline(cache.path()))),
             Contains("repo org/tiny, revision main (commit " + sha_main + "), file tokenizer.json") &&
                 Contains("HF_HUB_OFFLINE"));
  // A link whose blob is gone counts as missing.
  add_snapshot(cache.path(), sha_old, model_files);
  fs::remove(cache / "models--org--tiny/blobs" / ("etag-tokenizer.json-" + sha_old.substr(0, 4)));
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/tiny", offline(cache.path(), sha_old))),
             Contains("file tokenizer.json") && Contains("not in the Hugging Face cache"));
  // Weights: a sharded index's shards must all be there.
  const std::string sha3 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  add_snapshot(cache.path(), sha3, {"config.json", "tokenizer.json", "model-00001-of-00002.safetensors"});
  const fs::path index = cache / "models--org--tiny/snapshots" / sha3 / "model.safetensors.index.json";
  test::write_text(index, R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})");
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/tiny", offline(cache.path(), sha3))),
             Contains("file model-00002-of-00002.safetensors"));
  add_snapshot(cache.path(), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", {"config.json", "tokenizer.json"});
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/tiny", offline(cache.path(), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"))),
             Contains("neither model.safetensors nor model.safetensors.index.json"));
}

TEST_CASE("a ref that does not hold a commit sha is refused naming the file", "[hub][cache]") {
  test::temp_dir cache("hub-cache");
  add_ref(cache.path(), "main", "not a sha\n");
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/tiny", offline(cache.path()))),
             Contains("refs/main") && Contains("not a 40-hex-digit commit sha"));
}

TEST_CASE("revisions that would leave refs/ are refused", "[hub][cache]") {
  test::temp_dir cache("hub-cache");
  for (const char* bad : {"", "../../x", "a/../b", "/main", "main/", "a//b", "tab\there"}) {
    INFO(bad);
    CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model("org/tiny", offline(cache.path(), bad))),
               Contains("is not a branch, tag or commit name"));
  }
}

TEST_CASE("an existing local path wins over a repo id; a name that is neither says so", "[hub][cache]") {
  // A relative directory that is also a valid repo id.
  const fs::path local = "mii-hub-local-" + std::to_string(::getpid()) + "/model";
  fs::create_directories(local);
  test::temp_dir cache("hub-cache");
  CHECK(io::resolve_model(local, offline(cache.path())) == local);
  fs::remove_all(local.parent_path());
  CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model(local, offline(cache.path()))), Contains("not in the Hugging Face cache"));
  for (const char* bad : {"/nonexistent/model", "a/b/c", "./missing-model"}) {
    INFO(bad);
    CHECK_THAT(MII_ERROR_MESSAGE(io::resolve_model(bad, offline(cache.path()))),
               Contains(std::string(bad) + ": not an existing file or directory, and not a Hugging Face Hub repo id"));
  }
}
