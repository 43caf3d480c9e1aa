// MII_CUDA_GRAPHS (docs/environment.md): 0 turns CUDA graphs off, unset / empty / 1 leave them to
// model_config.cuda_graphs, anything else is an error naming the variable. It used to disable
// graphs whatever its value, so MII_CUDA_GRAPHS=1 meant "off".
#include <catch2/catch.hpp>

#include <cstdlib>
#include <optional>
#include <string>

#include <mii/runtime/model_runner.hpp>

#include "expect_error.hpp"

namespace {

// Sets MII_CUDA_GRAPHS for the scope (nullopt: unset), restoring what was there.
struct env_var {
  std::optional<std::string> saved;
  explicit env_var(std::optional<std::string> v) {
    if (const char* old = std::getenv("MII_CUDA_GRAPHS")) saved = old;
    if (v) ::setenv("MII_CUDA_GRAPHS", v->c_str(), 1);
    else ::unsetenv("MII_CUDA_GRAPHS");
  }
  ~env_var() {
    if (saved) ::setenv("MII_CUDA_GRAPHS", saved->c_str(), 1);
    else ::unsetenv("MII_CUDA_GRAPHS");
  }
};

}  // namespace

TEST_CASE("MII_CUDA_GRAPHS: 0 is off, unset or 1 is on, anything else is refused", "[model][env]") {
  using mii::runtime::cuda_graphs_allowed_by_environment;
  {
    env_var e(std::nullopt);
    CHECK(cuda_graphs_allowed_by_environment());
  }
  {
    env_var e(std::string("1"));
    CHECK(cuda_graphs_allowed_by_environment());
  }
  {
    env_var e(std::string(""));
    CHECK(cuda_graphs_allowed_by_environment());
  }
  {
    env_var e(std::string("0"));
    CHECK_FALSE(cuda_graphs_allowed_by_environment());
  }
  {
    env_var e(std::string("off"));
    CHECK_THAT(MII_ERROR_MESSAGE(cuda_graphs_allowed_by_environment()),
               Catch::Contains("MII_CUDA_GRAPHS") && Catch::Contains("\"off\""));
  }
}
