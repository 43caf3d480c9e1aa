#include <mii/parallel/launch_env.hpp>

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string_view>

#include <mii/error.hpp>

namespace mii::parallel {
namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

// The variable's value as an integer in [lo, hi]; nullopt when it is not set.
std::optional<int> env_int(const char* name, long lo, long hi) {
  const auto text = env(name);
  if (!text) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text->c_str(), &end, 10);
  if (errno != 0 || end == text->c_str() || *end != '\0')
    fail("environment variable ", name, "=\"", *text, "\" is not an integer");
  if (v < lo || v > hi) fail("environment variable ", name, "=", v, " is outside [", lo, ", ", hi, "]");
  return int(v);
}

constexpr long max_ranks = 1 << 20;

}  // namespace

launch_env read_launch_env() {
  launch_env e;
  const auto rank = env_int("RANK", 0, max_ranks), world = env_int("WORLD_SIZE", 1, max_ranks);
  const auto ompi_rank = env_int("OMPI_COMM_WORLD_RANK", 0, max_ranks);
  const auto ompi_world = env_int("OMPI_COMM_WORLD_SIZE", 1, max_ranks);
  if (rank.has_value() != world.has_value())
    fail("environment: ", rank ? "RANK" : "WORLD_SIZE", " is set but ", rank ? "WORLD_SIZE" : "RANK",
         " is not; a launcher sets both (mii-launch, torchrun, deepspeed)");
  if (rank) {
    e.rank = *rank;
    e.world_size = *world;
    e.local_rank = env_int("LOCAL_RANK", 0, max_ranks).value_or(e.rank);  // one node: local = global
    e.source = "RANK/WORLD_SIZE";
  } else if (ompi_rank && ompi_world) {
    e.rank = *ompi_rank;
    e.world_size = *ompi_world;
    e.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0, max_ranks).value_or(e.rank);
    e.source = "OMPI";
  } else if (ompi_rank || ompi_world) {
    fail("environment: only one of OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE is set");
  }
  if (e.rank >= e.world_size)
    fail("environment: rank ", e.rank, " (", e.source, ") is not below the world size ", e.world_size);
  if (auto addr = env("MASTER_ADDR")) e.master_addr = *addr;
  if (auto port = env_int("MASTER_PORT", 1, 65535)) e.master_port = *port;
  return e;
}

int rendezvous_port(const launch_env& e) {
  if (auto port = env_int("MII_RENDEZVOUS_PORT", 1, 65535)) return *port;
  const auto agent = env("TORCHELASTIC_USE_AGENT_STORE");
  if (agent && (*agent == "True" || *agent == "true" || *agent == "1")) {
    if (e.master_port == 65535) fail("MASTER_PORT=65535 leaves no port for the rendezvous; set MII_RENDEZVOUS_PORT");
    return e.master_port + 1;
  }
  return e.master_port;
}

std::chrono::milliseconds connect_timeout() {
  const auto text = env("MII_CONNECT_TIMEOUT");
  if (!text) return std::chrono::seconds(60);
  char* end = nullptr;
  const double s = std::strtod(text->c_str(), &end);
  if (end == text->c_str() || *end != '\0' || !std::isfinite(s) || s <= 0)
    fail("environment variable MII_CONNECT_TIMEOUT=\"", *text, "\" is not a positive number of seconds");
  return std::chrono::milliseconds(std::llround(s * 1000.0));
}

void tell_launcher_joined(int rank) {
  const auto text = env(launcher_join_fd_variable);
  if (!text) return;
  char* end = nullptr;
  const long fd = std::strtol(text->c_str(), &end, 10);
  if (*end != '\0' || fd < 0 || fd > 1 << 20) return;
  // The variable may have leaked into a process that has some other file at that number: only a
  // socket gets the message, and it is sent without waiting and without SIGPIPE.
  struct stat st {};
  if (::fstat(int(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  const std::string message = "joined " + std::to_string(rank);
  (void)::send(int(fd), message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace mii::parallel
