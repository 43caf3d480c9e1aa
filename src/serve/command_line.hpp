// mii-serve's command line: options → the engine's model_config and the server's options.
#pragma once
#include <chrono>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <mii/config.hpp>
#include <mii/error.hpp>

#include "serve/server.hpp"

namespace mii::serve {

// A command line that cannot be used; mii-serve prints it with the usage and exits 2.
struct usage_error : error {
  using error::error;
};

struct command_line {
  bool help = false;
  std::filesystem::path model_dir;
  model_config engine;
  server_options server;
  std::optional<std::filesystem::path> chat_template;  // instead of the model's own
  std::chrono::milliseconds shutdown_timeout{30'000};
  bool quiet = false;  // no line per request
};

// `args` without the program name. `env_api_key`: the MII_API_KEY environment variable, used
// when --api-key is not given (a key on the command line is visible to every user in ps).
command_line parse_command_line(const std::vector<std::string>& args, const char* env_api_key = nullptr);
void print_usage(std::ostream& os);
// The name clients use by default: the model directory's base name ("Mistral-7B-v0.1").
std::string default_served_name(const std::filesystem::path& model_dir);

// What every program serving a command line's model does before loading it: a Hub id becomes its
// snapshot in the Hugging Face cache (downloaded when missing; `note` gets the progress lines),
// and the chat template is --chat-template's or the model's own (none when it has none).
std::filesystem::path resolve_model_dir(const command_line& c, void (*note)(const std::string&));
std::optional<chat_template> chat_template_of(const command_line& c);

}  // namespace mii::serve
