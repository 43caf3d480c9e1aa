// The fake Hub (tests/hub/fake_hub.py) as a test fixture: started on a free port, its request log
// readable, stopped with the object. Shared by tests/hub and tests/tools. Starting Python costs a
// few hundred ms (seconds on a loaded machine), so a suite starts one for all its tests
// (suite_hub.hpp) and each test counts the requests made since its own mark().
#pragma once
#include <simdjson.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <mii/io/hub.hpp>

#include "../parallel/process_support.hpp"
#include "test_files.hpp"

namespace mii::test {

inline std::filesystem::path fixture_model(const char* name) {
  return std::filesystem::path(MII_SOURCE_DIR) / "tests/fixtures/models" / name;
}

// One request the fake Hub received.
struct hub_request {
  std::string method, path, range, auth;  // range and auth empty when absent
};

class fake_hub {
 public:
  // `args`: fake_hub.py's repo, fault and access options ("--repo", "org/llama=DIR", ...).
  explicit fake_hub(std::vector<std::string> args) {
    // The system's Python when there is one: a version manager's shim (pyenv) costs seconds a start.
    const std::string python = std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    std::vector<std::string> argv = {python, (std::filesystem::path(MII_SOURCE_DIR) / "tests/hub/fake_hub.py").string(),
                                     "--port-file", (dir_ / "port.json").string(), "--log", (dir_ / "log.jsonl").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    process_ = std::make_unique<child_process>(argv, std::map<std::string, std::string>{}, child_io{.input = "/dev/null"});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!std::filesystem::exists(dir_ / "port.json")) {
      if (std::chrono::steady_clock::now() > deadline || process_gone(process_->pid()))
        throw std::runtime_error("the fake Hub did not start: " + process_->wait(std::chrono::seconds(1)).output);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    simdjson::dom::parser parser;
    const simdjson::dom::element info = parser.parse(read_text(dir_ / "port.json"));
    port_ = int(std::int64_t(info["port"]));
    for (auto [repo, branches] : simdjson::dom::object(info["commits"]))
      for (auto [branch, sha] : simdjson::dom::object(branches))
        commits_[std::string(repo) + "@" + std::string(branch)] = std::string(std::string_view(sha));
  }

  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string commit(const std::string& repo, const std::string& branch = "main") const {
    return commits_.at(repo + "@" + branch);
  }

  std::vector<hub_request> requests() const {
    std::vector<hub_request> out;
    simdjson::dom::parser parser;
    const std::string text = read_text(dir_ / "log.jsonl");
    std::size_t begin = 0;
    for (std::size_t nl; (nl = text.find('\n', begin)) != std::string::npos; begin = nl + 1) {
      const simdjson::dom::element e = parser.parse(text.substr(begin, nl - begin));
      auto field = [&](const char* k) {
        std::string_view v;
        return e[k].get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
      };
      out.push_back({field("method"), field("path"), field("range"), field("auth")});
    }
    return out;
  }
  // How many requests the log holds: a test's starting point for requests(..., since).
  std::size_t mark() const { return requests().size(); }
  // Requests after the first `since` with this method (any when empty) whose path contains `part`.
  std::vector<hub_request> requests(const std::string& method, const std::string& part, std::size_t since = 0) const {
    std::vector<hub_request> out;
    const auto all = requests();
    for (std::size_t i = since; i < all.size(); ++i)
      if ((method.empty() || all[i].method == method) && all[i].path.find(part) != std::string::npos) out.push_back(all[i]);
    return out;
  }

  // Settings that point at this Hub and at `cache`, with short timeouts.
  io::hub_settings settings(const std::filesystem::path& cache, std::string token = "") const {
    io::hub_settings s;
    s.cache_dir = cache;
    s.endpoint = endpoint();
    s.token = std::move(token);
    s.metadata_timeout_s = 5;
    s.download_timeout_s = 5;
    return s;
  }

 private:
  temp_dir dir_{"fake-hub"};
  std::unique_ptr<child_process> process_;
  int port_ = 0;
  std::map<std::string, std::string> commits_;
};

}  // namespace mii::test
