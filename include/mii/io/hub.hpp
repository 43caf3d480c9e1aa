// Hugging Face Hub ids ("mistralai/Mistral-7B-v0.1") as model paths, the way DeepSpeed-MII's
// mii.pipeline(name) takes them: the files come from the Hugging Face cache, laid out exactly as
// huggingface_hub lays it out (so transformers, vLLM and mii share one copy), and what is missing
// is downloaded from the Hub (libcurl) unless HF_HUB_OFFLINE is set. docs/hub.md has the details.
//
// Thread-safe and process-safe: any number of threads and processes may resolve the same repo
// into the same cache at once (a lock file per blob, the one huggingface_hub takes, and blobs that
// appear only by an atomic rename).
#pragma once
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace mii::io {

// Where the Hub and its cache are, read from the environment as huggingface_hub reads it.
struct hub_settings {
  // HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
  // ${XDG_CACHE_HOME:-~/.cache}/huggingface/hub (~ and $VARS expanded, as huggingface_hub does).
  std::filesystem::path cache_dir;
  // HF_ENDPOINT without a trailing '/', default https://huggingface.co.
  std::string endpoint = "https://huggingface.co";
  // HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the token file (HF_TOKEN_PATH, default
  // $HF_HOME/token, written by `hf auth login`); empty: none. Sent as "Authorization: Bearer"
  // to the endpoint only, never to the CDN a large file redirects to.
  std::string token;
  // HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is 1, ON, YES or TRUE: the cache only.
  bool offline = false;
  // HF_HUB_ETAG_TIMEOUT: seconds a metadata request (HEAD) may take; HF_HUB_DOWNLOAD_TIMEOUT:
  // seconds a download may go without receiving a byte before it is resumed. Default 10 each.
  long metadata_timeout_s = 10;
  long download_timeout_s = 10;

  // `getenv` is the lookup to use (tests pass their own); nullptr: the process environment.
  static hub_settings from_environment(const std::function<const char*(const char*)>& getenv = nullptr);
};

// Which files of a repo resolve_model makes sure of.
enum class hub_files {
  model,            // config.json, generation_config.json*, tokenizer.json, tokenizer_config.json*,
                    // special_tokens_map.json*, chat_template.jinja*, model.safetensors or
                    // model.safetensors.index.json and its shards (* when the repo has it)
  model_no_weights, // the same without the safetensors files (model_config.random_weights)
  tokenizer,        // tokenizer.json, tokenizer_config.json*, special_tokens_map.json*, chat_template.jinja*
};

struct hub_options {
  std::string revision = "main";  // a branch, a tag or a commit sha
  hub_files files = hub_files::model;
  bool show_progress = true;      // a progress bar per file on stderr (only when it is a terminal)
  std::optional<hub_settings> settings;  // default: hub_settings::from_environment()
  // One line per notable event (a download starting, the cache used because the Hub is out of
  // reach); default: silent.
  std::function<void(const std::string&)> note;
};

// `name` when it is an existing file or directory (a local path always wins); else, when it is a
// Hub repo id ("name" or "namespace/name"), the snapshot directory of `options.revision` in the
// Hugging Face cache, with the files `options.files` asks for downloaded into it when missing.
// Throws mii::error naming the repo, the revision and the file for anything that goes wrong, and
// saying so when `name` is neither an existing path nor a repo id.
std::filesystem::path resolve_model(const std::filesystem::path& name, const hub_options& options = {});

// A repo id as the Hub accepts it: "name" or "namespace/name", letters, digits, '-', '_', '.',
// neither part starting or ending with '-' or '.', no "--" or "..", at most 96 characters a part.
bool is_hub_repo_id(std::string_view id);

// False when mii was built without libcurl: Hub ids then resolve from the cache only.
bool hub_can_download();

}  // namespace mii::io
