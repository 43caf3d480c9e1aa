// resolve_model: a local path, or a Hub repo id resolved through the Hugging Face cache
// (hub_cache.hpp), with the missing files fetched from the Hub (hub_fetch.hpp). The order of the
// look-ups follows huggingface_hub's hf_hub_download, with one difference: after the first file
// has told us the commit, the others are asked for at that commit, so a branch that moves during
// the download cannot mix two commits in one snapshot.
#include <mii/io/hub.hpp>

#include <algorithm>
#include <cstdio>
#include <vector>

#include <mii/error.hpp>

#include "io/hub_cache.hpp"
#include "io/hub_fetch.hpp"
#include "io/hub_http.hpp"
#include "io/json_reader.hpp"

namespace mii::io {

bool hub_can_download() { return detail::http_available(); }

namespace {

namespace fs = std::filesystem;
using detail::hub_cache_repo;

constexpr const char* single_weights = "model.safetensors";
constexpr const char* weights_index = "model.safetensors.index.json";

struct wanted_file {
  std::string name;
  bool required;
};

std::vector<wanted_file> files_of(hub_files what) {
  std::vector<wanted_file> out;
  if (what != hub_files::tokenizer) out.push_back({"config.json", true});
  out.push_back({"tokenizer.json", true});
  if (what != hub_files::tokenizer) out.push_back({"generation_config.json", false});
  for (const char* f : {"tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}) out.push_back({f, false});
  return out;
}
bool wants_weights(hub_files what) { return what == hub_files::model; }

void check_revision(const std::string& repo, const std::string& rev) {
  bool ok = !rev.empty() && rev.size() <= 256 && !rev.starts_with('/') && !rev.ends_with('/') &&
            rev.find("//") == std::string::npos;
  for (char c : rev) ok = ok && static_cast<unsigned char>(c) > 0x20 && c != 0x7f && c != '\\';
  std::size_t begin = 0;
  for (std::size_t end; ok; begin = end + 1) {  // no "." or ".." component: the revision names a file in refs/
    end = rev.find('/', begin);
    const std::string part = rev.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    ok = part != "." && part != "..";
    if (end == std::string::npos) break;
  }
  if (!ok) fail("repo ", repo, ": revision \"", rev, "\" is not a branch, tag or commit name");
}

// The shard files a model.safetensors.index.json lists, each checked to be a plain file name.
std::vector<std::string> shards_of(const fs::path& index) {
  const auto doc = mii::detail::json_document::from_file(index);
  const auto root = mii::detail::json_object::expect(doc.root(), doc.origin(), "");
  const auto map = root.get_object("weight_map");
  if (!map) root.missing("weight_map");
  std::vector<std::string> shards;
  for (auto [tensor, value] : map->object()) {
    std::string_view file;
    if (value.get(file)) map->bad(tensor, "a shard file name", value);
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string_view::npos ||
        file.find('\\') != std::string_view::npos)
      map->invalid(tensor, "names shard '" + std::string(file) + "', which is not a plain file name");
    if (std::find(shards.begin(), shards.end(), file) == shards.end()) shards.emplace_back(file);
  }
  std::sort(shards.begin(), shards.end());
  return shards;
}

class resolver {
 public:
  resolver(std::string repo, const hub_options& o, hub_settings s)
      : repo_(std::move(repo)), o_(o), s_(std::move(s)), cache_(s_.cache_dir, repo_) {}

  fs::path resolve() {
    check_revision(repo_, o_.revision);
    if (s_.offline) return from_cache("HF_HUB_OFFLINE is set", "download it once online (unset HF_HUB_OFFLINE)");
    if (!hub_can_download())
      return from_cache("mii was built without libcurl", "download it with huggingface_hub (`hf download " + repo_ + "`)");
    try {
      return online();
    } catch (const detail::hub_unreachable& e) {
      // As huggingface_hub: the Hub out of reach, the cache answers if it can.
      fs::path dir;
      try {
        dir = from_cache("the Hub is unreachable", "download it once the Hub can be reached");
      } catch (const error& cached) {
        fail(e.what(), "; and the cache cannot stand in: ", cached.what());
      }
      say(std::string(e.what()) + "; using the cached snapshot " + dir.string());
      return dir;
    }
  }

 private:
  void say(const std::string& line) const {
    if (o_.note) o_.note(line);
  }
  std::string where(const std::string& commit) const {
    return "repo " + repo_ + ", revision " + o_.revision + (commit == o_.revision ? "" : " (commit " + commit + ")");
  }

  // ---- the cache alone ----
  fs::path from_cache(const std::string& why, const std::string& advice) const {
    const auto commit = cache_.commit_of(o_.revision);
    if (!commit)
      fail("repo ", repo_, ", revision ", o_.revision, ": not in the Hugging Face cache (", cache_.ref_file(o_.revision).string(),
           " does not exist) and ", why, ": ", advice, ", or set HF_HUB_CACHE to the cache that has it");
    auto need = [&](const std::string& file) {
      if (!cache_.has_file(*commit, file))
        fail(where(*commit), ", file ", file, ": not in the Hugging Face cache (", cache_.pointer(*commit, file).string(),
             " is missing) and ", why);
    };
    for (const auto& f : files_of(o_.files))
      if (f.required) need(f.name);
    if (wants_weights(o_.files)) {
      if (cache_.has_file(*commit, weights_index)) {
        for (const auto& shard : shards_of(cache_.pointer(*commit, weights_index))) need(shard);
      } else if (!cache_.has_file(*commit, single_weights)) {
        fail(where(*commit), ": neither ", single_weights, " nor ", weights_index, " is in the Hugging Face cache (",
             cache_.snapshot(*commit).string(), ") and ", why);
      }
    }
    return cache_.snapshot(*commit);
  }

  // ---- the Hub ----
  detail::hub_file file_at(const std::string& revision, const std::string& name) const {
    return {s_, repo_, revision, name, o_.revision};
  }

  // The blob for `meta`, downloaded under its lock when missing, linked into the snapshot.
  void store(const std::string& commit, const std::string& name, const detail::hub_file_metadata& meta) {
    const fs::path blob = cache_.blob(meta.etag);
    std::error_code ec;
    if (!fs::exists(blob, ec)) {
      fs::create_directories(blob.parent_path(), ec);
      if (ec && !fs::is_directory(blob.parent_path()))
        fail(blob.parent_path().string(), ": cannot create the directory: ", ec.message());
      cache_.tag_cache_dir();
      // Two writers of one blob (threads or processes, mii or huggingface_hub) wait for each
      // other on this lock; the blob then appears by rename, never half written.
      detail::file_lock lock(cache_.lock_file(meta.etag));
      if (!fs::exists(blob, ec)) {
        char size[32];
        std::snprintf(size, sizeof size, "%.1f MB", double(meta.size) / 1e6);
        say("downloading " + repo_ + " " + name + " (" + size + ") at commit " + commit);
        detail::download_blob(file_at(commit, name), meta, cache_.incomplete_blob(meta.etag), blob, o_.show_progress);
      }
    }
    cache_.link(commit, name, meta.etag);
  }

  // Makes sure of one file at `commit`; false when it does not exist there (and is optional).
  bool fetch(const std::string& commit, const std::string& name, bool required) {
    if (cache_.has_file(commit, name)) return true;
    if (!required && cache_.known_missing(commit, name)) return false;
    const auto meta = detail::fetch_metadata(file_at(commit, name));
    if (!meta.exists) {
      if (required) fail(where(commit), ", file ", name, ": not found on the Hub (", detail::resolve_url(file_at(commit, name)), ")");
      cache_.mark_missing(commit, name);
      return false;
    }
    store(commit, name, meta);
    return true;
  }

  fs::path online() {
    const auto files = files_of(o_.files);
    std::string commit;
    if (detail::is_commit_sha(o_.revision)) {
      commit = o_.revision;  // a commit is immutable: what the snapshot has needs no request
    } else {
      // The first file's HEAD names the commit the revision is at now.
      const auto& first = files.front();
      const auto meta = detail::fetch_metadata(file_at(o_.revision, first.name));
      if (meta.commit.empty())
        fail("repo ", repo_, ", revision ", o_.revision, ", file ", first.name, ": not found on the Hub (",
             detail::resolve_url(file_at(o_.revision, first.name)), ")");
      commit = meta.commit;
      try {
        cache_.write_ref(o_.revision, commit);
      } catch (const error&) {
        // Best effort, as in huggingface_hub: a read-only cache that has the files still serves
        // them; a download into it fails later with its own message.
      }
      if (!meta.exists) fail(where(commit), ", file ", first.name, ": not found on the Hub");
      if (!cache_.has_file(commit, first.name)) store(commit, first.name, meta);
    }
    for (const auto& f : files) fetch(commit, f.name, f.required);
    if (wants_weights(o_.files)) {
      const bool sharded = cache_.has_file(commit, weights_index) ||
                           (!cache_.has_file(commit, single_weights) && !fetch(commit, single_weights, false));
      if (sharded) {
        if (!fetch(commit, weights_index, false))
          fail(where(commit), ": the repo has neither ", single_weights, " nor ", weights_index,
               " (mii reads safetensors checkpoints; a repo with only pytorch_model.bin needs converting)");
        for (const auto& shard : shards_of(cache_.pointer(commit, weights_index))) fetch(commit, shard, true);
      }
    }
    return cache_.snapshot(commit);
  }

  std::string repo_;
  const hub_options& o_;
  hub_settings s_;
  hub_cache_repo cache_;
};

}  // namespace

fs::path resolve_model(const fs::path& name, const hub_options& options) {
  std::error_code ec;
  if (fs::exists(name, ec)) return name;  // a local path always wins
  const std::string id = name.string();
  if (!is_hub_repo_id(id))
    fail(id, ": not an existing file or directory, and not a Hugging Face Hub repo id (\"name\" or \"namespace/name\": ",
         "letters, digits, '-', '_', '.')");
  hub_settings settings = options.settings ? *options.settings : hub_settings::from_environment();
  if (settings.cache_dir.empty()) fail(id, ": the Hugging Face cache directory is empty (HF_HUB_CACHE / HF_HOME)");
  return resolver(id, options, std::move(settings)).resolve();
}

}  // namespace mii::io
