// Launch variables (mii-launch / torchrun / deepspeed, Open MPI) and the TCP rendezvous that
// hands rank 0's NCCL unique id to the other ranks, with ranks as threads of this process.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <mii/error.hpp>
#include <mii/parallel/launch_env.hpp>
#include <mii/parallel/rendezvous.hpp>

#include "expect_error.hpp"

using namespace mii;
using namespace std::chrono_literals;

namespace {

const char* const launch_variables[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                                        "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                                        "MII_RENDEZVOUS_PORT", "TORCHELASTIC_USE_AGENT_STORE", "MII_CONNECT_TIMEOUT"};

// Sets the given launch variables (and clears the others) for one scope, then restores them.
class scoped_env {
 public:
  using vars_t = std::map<std::string, std::string>;
  explicit scoped_env(const vars_t& vars) {
    for (const char* name : launch_variables) {
      const char* v = std::getenv(name);
      saved_[name] = v ? std::optional<std::string>(v) : std::nullopt;
      ::unsetenv(name);
    }
    for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;
  ~scoped_env() {
    for (const auto& [k, v] : saved_) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// f must throw mii::error with every one of `parts` in its message.
void expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  const std::string message = test::error_message_of(f, "the call");
  for (const auto& p : parts) CHECK_THAT(message, Catch::Contains(p));
}

std::vector<std::byte> bytes(const std::string& s) {
  std::vector<std::byte> b;
  for (char c : s) b.push_back(std::byte(c));
  return b;
}

}  // namespace

TEST_CASE("launch_env: no launcher is rank 0 of 1", "[parallel][env]") {
  scoped_env env(scoped_env::vars_t{});
  const auto e = parallel::read_launch_env();
  CHECK(e.rank == 0);
  CHECK(e.world_size == 1);
  CHECK(e.local_rank == 0);
  CHECK(!e.launched());
  CHECK(e.master_addr == "127.0.0.1");
  CHECK(e.master_port == 29500);
  CHECK(parallel::connect_timeout() == 60s);
}

TEST_CASE("launch_env: mii-launch / torchrun / deepspeed variables", "[parallel][env]") {
  scoped_env env(scoped_env::vars_t{{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "localhost"},
                  {"MASTER_PORT", "12345"}, {"MII_CONNECT_TIMEOUT", "2.5"}});
  const auto e = parallel::read_launch_env();
  CHECK(e.rank == 3);
  CHECK(e.world_size == 4);
  CHECK(e.local_rank == 1);
  CHECK(e.source == "RANK/WORLD_SIZE");
  CHECK(e.master_addr == "localhost");
  CHECK(e.master_port == 12345);
  CHECK(parallel::rendezvous_port(e) == 12345);
  CHECK(parallel::connect_timeout() == 2500ms);
}

TEST_CASE("launch_env: LOCAL_RANK defaults to RANK; torchrun's agent store moves the rendezvous port", "[parallel][env]") {
  scoped_env env(scoped_env::vars_t{{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "29400"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  const auto e = parallel::read_launch_env();
  CHECK(e.local_rank == 1);
  CHECK(parallel::rendezvous_port(e) == 29401);
  ::setenv("MII_RENDEZVOUS_PORT", "31000", 1);
  CHECK(parallel::rendezvous_port(e) == 31000);
}

TEST_CASE("launch_env: Open MPI's mpirun variables", "[parallel][env]") {
  scoped_env env(scoped_env::vars_t{{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "3"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}});
  const auto e = parallel::read_launch_env();
  CHECK(e.rank == 2);
  CHECK(e.world_size == 3);
  CHECK(e.local_rank == 0);
  CHECK(e.source == "OMPI");
}

TEST_CASE("launch_env: bad values name the variable", "[parallel][env]") {
  {
    scoped_env env(scoped_env::vars_t{{"RANK", "1"}});
    expect_error([] { parallel::read_launch_env(); }, {"RANK is set but WORLD_SIZE is not"});
  }
  {
    scoped_env env(scoped_env::vars_t{{"RANK", "two"}, {"WORLD_SIZE", "4"}});
    expect_error([] { parallel::read_launch_env(); }, {"RANK=\"two\" is not an integer"});
  }
  {
    scoped_env env(scoped_env::vars_t{{"RANK", "4"}, {"WORLD_SIZE", "4"}});
    expect_error([] { parallel::read_launch_env(); }, {"rank 4", "world size 4"});
  }
  {
    scoped_env env(scoped_env::vars_t{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}});
    expect_error([] { parallel::read_launch_env(); }, {"MASTER_PORT=70000", "outside"});
  }
  {
    scoped_env env(scoped_env::vars_t{{"MII_CONNECT_TIMEOUT", "soon"}});
    expect_error([] { parallel::connect_timeout(); }, {"MII_CONNECT_TIMEOUT=\"soon\""});
  }
}

TEST_CASE("rendezvous: rank 0's blob reaches every rank", "[parallel][rendezvous]") {
  for (int world : {1, 2, 5}) {
    const parallel::rendezvous_point at{"127.0.0.1", free_port()};
    const auto blob = bytes("nccl unique id of world " + std::to_string(world));
    std::vector<std::vector<std::byte>> got(static_cast<std::size_t>(world));
    std::vector<std::string> errors(static_cast<std::size_t>(world));
    std::vector<std::thread> ranks;
    for (int r = world - 1; r >= 0; --r)  // rank 0 last: the others must wait for it
      ranks.emplace_back([&, r] {
        try {
          if (r == 0) std::this_thread::sleep_for(200ms);
          got[std::size_t(r)] = parallel::share_from_rank0(at, r, world, r == 0 ? std::span<const std::byte>(blob)
                                                                                 : std::span<const std::byte>(), 10s);
        } catch (const std::exception& e) {
          errors[std::size_t(r)] = e.what();
        }
      });
    for (auto& t : ranks) t.join();
    for (int r = 0; r < world; ++r) {
      INFO("world " << world << ", rank " << r);
      CHECK(errors[std::size_t(r)].empty());
      CHECK(got[std::size_t(r)] == blob);
    }
  }
}

TEST_CASE("rendezvous: a rank that cannot reach rank 0 fails with the address and elapsed time", "[parallel][rendezvous]") {
  const int port = free_port();
  const auto start = std::chrono::steady_clock::now();
  expect_error([&] { parallel::share_from_rank0({"127.0.0.1", port}, 1, 2, {}, 700ms); },
                     {"rank 1 of 2", "127.0.0.1:" + std::to_string(port), "within 0.", "MII_CONNECT_TIMEOUT"});
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 700ms);
  CHECK(took < 3s);
}

TEST_CASE("rendezvous: rank 0 names the ranks that never came", "[parallel][rendezvous]") {
  const parallel::rendezvous_point at{"127.0.0.1", free_port()};
  const auto blob = bytes("id");
  std::thread rank2([&] { (void)parallel::share_from_rank0(at, 2, 4, {}, 5s); });
  expect_error([&] { parallel::share_from_rank0(at, 0, 4, blob, 800ms); },
                     {"rank 0 of 4", "only 1 of the 3 other ranks", "missing: rank 1, 3"});
  rank2.join();
}

TEST_CASE("rendezvous: ranks that disagree on the world size fail on both sides", "[parallel][rendezvous]") {
  const parallel::rendezvous_point at{"127.0.0.1", free_port()};
  const auto blob = bytes("id");
  std::string client_error;
  std::thread rank1([&] {
    try {
      (void)parallel::share_from_rank0(at, 1, 3, {}, 5s);
    } catch (const std::exception& e) {
      client_error = e.what();
    }
  });
  expect_error([&] { parallel::share_from_rank0(at, 0, 2, blob, 5s); }, {"world size is 3", "rank 0 has 2"});
  rank1.join();
  CHECK_THAT(client_error, Catch::Contains("world size is 3"));
}

TEST_CASE("rendezvous: rank 0 cannot listen on a busy port", "[parallel][rendezvous]") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  expect_error([&] { parallel::share_from_rank0({"127.0.0.1", port}, 0, 2, bytes("id"), 1s); },
                     {"cannot listen on 127.0.0.1:" + std::to_string(port), "MASTER_PORT"});
  ::close(fd);
}
