// hub_settings::from_environment and is_hub_repo_id: the environment variables and names exactly
// as huggingface_hub (constants.py, utils/_auth.py, utils/_validators.py) reads and accepts them.
#include <mii/io/hub.hpp>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <mii/error.hpp>

namespace mii::io {

namespace {

using lookup = std::function<const char*(const char*)>;

std::string value_of(const lookup& env, const char* name) {
  const char* v = env(name);
  return v ? std::string(v) : std::string();
}
bool is_set(const lookup& env, const char* name) { return env(name) != nullptr; }

// Python's os.path.expanduser: a leading "~" or "~/" becomes $HOME.
std::string expand_user(const lookup& env, std::string path) {
  if (path == "~" || path.starts_with("~/")) {
    const std::string home = value_of(env, "HOME");
    if (!home.empty()) path = home + path.substr(1);
  }
  return path;
}

// Python's os.path.expandvars: $NAME and ${NAME} of variables that are set; the rest unchanged.
std::string expand_vars(const lookup& env, const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] != '$') {
      out.push_back(s[i++]);
      continue;
    }
    const bool braced = i + 1 < s.size() && s[i + 1] == '{';
    std::size_t b = i + (braced ? 2 : 1), e = b;
    while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
    const bool closed = !braced || (e < s.size() && s[e] == '}');
    const std::string name = s.substr(b, e - b);
    if (name.empty() || !closed || !is_set(env, name.c_str())) {
      out.push_back(s[i++]);
      continue;
    }
    out += value_of(env, name.c_str());
    i = braced ? e + 1 : e;
  }
  return out;
}

std::string expand(const lookup& env, const std::string& path) { return expand_vars(env, expand_user(env, path)); }

// huggingface_hub's _is_true: 1, ON, YES, TRUE in any case.
bool is_true(const std::string& v) {
  std::string up;
  for (char c : v) up.push_back(char(std::toupper(static_cast<unsigned char>(c))));
  return up == "1" || up == "ON" || up == "YES" || up == "TRUE";
}

// huggingface_hub's _clean_token: line breaks removed, then surrounding whitespace.
std::string clean_token(std::string t) {
  std::string out;
  for (char c : t)
    if (c != '\r' && c != '\n') out.push_back(c);
  const auto b = out.find_first_not_of(" \t\f\v");
  if (b == std::string::npos) return {};
  const auto e = out.find_last_not_of(" \t\f\v");
  return out.substr(b, e - b + 1);
}

// A positive whole number of seconds; anything else set is an error naming the variable (as
// huggingface_hub's int() fails on it).
long seconds_from(const lookup& env, const char* name, long fallback) {
  const std::string v = value_of(env, name);
  if (v.empty()) return fallback;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (*end != '\0' || n <= 0 || errno == ERANGE) fail(name, " is \"", v, "\": not a positive whole number of seconds");
  return n;
}

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; }
bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool valid_part(std::string_view part, std::size_t max_size) {
  if (part.empty() || part.size() > max_size) return false;
  for (char c : part)
    if (!name_char(c)) return false;
  return word_char(part.front()) && word_char(part.back());
}

}  // namespace

hub_settings hub_settings::from_environment(const std::function<const char*(const char*)>& getenv) {
  const lookup env = getenv ? getenv : lookup([](const char* n) { return std::getenv(n); });
  hub_settings s;
  const std::string xdg = is_set(env, "XDG_CACHE_HOME") ? value_of(env, "XDG_CACHE_HOME") : expand_user(env, "~/.cache");
  const std::string hf_home = expand(env, is_set(env, "HF_HOME") ? value_of(env, "HF_HOME") : xdg + "/huggingface");
  const std::string legacy_cache = is_set(env, "HUGGINGFACE_HUB_CACHE") ? value_of(env, "HUGGINGFACE_HUB_CACHE") : hf_home + "/hub";
  s.cache_dir = expand(env, is_set(env, "HF_HUB_CACHE") ? value_of(env, "HF_HUB_CACHE") : legacy_cache);
  if (is_set(env, "HF_ENDPOINT")) {
    s.endpoint = value_of(env, "HF_ENDPOINT");
    while (s.endpoint.ends_with('/')) s.endpoint.pop_back();
  }
  s.token = clean_token(value_of(env, "HF_TOKEN"));
  if (s.token.empty()) s.token = clean_token(value_of(env, "HUGGING_FACE_HUB_TOKEN"));
  if (s.token.empty()) {
    const std::string file = expand(env, is_set(env, "HF_TOKEN_PATH") ? value_of(env, "HF_TOKEN_PATH") : hf_home + "/token");
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    if (in) text << in.rdbuf();
    s.token = clean_token(text.str());
  }
  const std::string offline = value_of(env, "HF_HUB_OFFLINE");
  s.offline = is_true(offline.empty() ? value_of(env, "TRANSFORMERS_OFFLINE") : offline);
  s.metadata_timeout_s = seconds_from(env, "HF_HUB_ETAG_TIMEOUT", 10);
  s.download_timeout_s = seconds_from(env, "HF_HUB_DOWNLOAD_TIMEOUT", 10);
  return s;
}

bool is_hub_repo_id(std::string_view id) {
  if (id.find("--") != std::string_view::npos || id.find("..") != std::string_view::npos || id.ends_with(".git"))
    return false;
  const auto slash = id.find('/');
  if (slash == std::string_view::npos) return valid_part(id, 96);
  return valid_part(id.substr(0, slash), 96) && valid_part(id.substr(slash + 1), 96);
}

}  // namespace mii::io
