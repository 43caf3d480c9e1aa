// mii-launch with host processes: each rank's variables, exit status, a failing rank bringing
// the job down fast with nothing left running, SIGKILL after the grace period, signal
// forwarding, the TCP rendezvous between real processes (this binary is the worker), no more
// ranks than GPUs unless asked for, and ranks that never join the job named.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <mii/parallel/launch_env.hpp>
#include <mii/parallel/rendezvous.hpp>

#include "process_support.hpp"
#include "test_files.hpp"

using namespace mii;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> lines_with(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(prefix)) out.push_back(line);
  std::sort(out.begin(), out.end());
  return out;
}

std::string field(const std::string& line, const std::string& key) {
  const auto at = line.find(" " + key + "=");
  if (at == std::string::npos) return "<missing>";
  const auto begin = at + key.size() + 2;
  return line.substr(begin, line.find(' ', begin) - begin);
}

std::vector<pid_t> pids_in(const std::filesystem::path& dir, const std::string& prefix) {
  std::vector<pid_t> pids;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().starts_with(prefix)) pids.push_back(pid_t(std::stol(test::read_text(e.path()))));
  return pids;
}

void expect_all_gone(const std::vector<pid_t>& pids) {
  for (pid_t p : pids) {
    INFO("pid " << p);
    CHECK(test::process_gone(p));
  }
}

bool wait_for_files(const std::filesystem::path& dir, const std::string& prefix, std::size_t count,
                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().filename().string().starts_with(prefix);
    if (n >= count) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

const std::string launch = test::launcher_path();

}  // namespace

TEST_CASE("mii-launch gives every rank its place in the job", "[parallel][launch]") {
  const std::string show =
      "echo \"rank R=$RANK L=$LOCAL_RANK W=$WORLD_SIZE LW=$LOCAL_WORLD_SIZE A=$MASTER_ADDR P=$MASTER_PORT "
      "N=$NCCL_NVLS_ENABLE C=$CUDA_VISIBLE_DEVICES \"";
  SECTION("defaults: loopback, a free port, NVLink multicast off, CUDA_VISIBLE_DEVICES untouched") {
    const auto r = test::run_process({launch, "--num_gpus", "3", "sh", "-c", show},
                                     {{"CUDA_VISIBLE_DEVICES", "4,5,6"}, {"NCCL_NVLS_ENABLE", "1"}});
    INFO(r.output);
    CHECK(r.exit_code() == 0);
    const auto lines = lines_with(r.output, "rank ");
    REQUIRE(lines.size() == 3);
    std::set<std::string> ports;
    for (int i = 0; i < 3; ++i) {
      const auto& l = lines[std::size_t(i)];
      CHECK(field(l, "R") == std::to_string(i));
      CHECK(field(l, "L") == std::to_string(i));
      CHECK(field(l, "W") == "3");
      CHECK(field(l, "LW") == "3");
      CHECK(field(l, "A") == "127.0.0.1");
      CHECK(field(l, "N") == "0");
      CHECK(field(l, "C") == "4,5,6");
      ports.insert(field(l, "P"));
    }
    REQUIRE(ports.size() == 1);
    const int port = std::stoi(*ports.begin());
    CHECK(port > 0);
    CHECK(port < 65536);
  }
  SECTION("MASTER_ADDR/MASTER_PORT from the environment, or the flags") {
    auto r = test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "2", "sh", "-c", show},
                               {{"MASTER_ADDR", "localhost"}, {"MASTER_PORT", "23456"}});
    auto lines = lines_with(r.output, "rank ");
    REQUIRE(lines.size() == 2);
    CHECK(field(lines[0], "A") == "localhost");
    CHECK(field(lines[1], "P") == "23456");
    r = test::run_process({launch, "--allow-oversubscribe", "--num_gpus=2", "--master_port", "24567", "--master_addr=127.0.0.1", "--", "sh", "-c", show},
                          {{"MASTER_PORT", "23456"}});
    lines = lines_with(r.output, "rank ");
    REQUIRE(lines.size() == 2);
    CHECK(field(lines[0], "P") == "24567");
    CHECK(field(lines[1], "A") == "127.0.0.1");
  }
  SECTION("--num_gpus defaults to the visible GPUs") {
    const auto r = test::run_process({launch, "sh", "-c", show}, {{"CUDA_VISIBLE_DEVICES", "0,1"}});
    CHECK(lines_with(r.output, "rank ").size() == 2);
    CHECK(r.exit_code() == 0);
  }
}

TEST_CASE("mii-launch refuses more ranks than visible GPUs unless --allow-oversubscribe", "[parallel][launch]") {
  test::temp_dir out("launch");
  const std::string program = "echo $$ > $OUT/started.$RANK";
  const std::map<std::string, std::string> two_gpus = {{"CUDA_VISIBLE_DEVICES", "0,1"}, {"OUT", out.path().string()}};
  for (const char* n : {"3", "1000"}) {
    const auto r = test::run_process({launch, "--num_gpus", n, "sh", "-c", program}, two_gpus);
    INFO(r.output);
    CHECK(r.exit_code() == 2);
    CHECK_THAT(r.output, Catch::Contains(std::string("--num_gpus ") + n) && Catch::Contains("2 GPUs are visible") &&
                             Catch::Contains("CUDA_VISIBLE_DEVICES=\"0,1\"") && Catch::Contains("--allow-oversubscribe"));
  }
  CHECK(std::filesystem::is_empty(out.path()));  // refused before starting anything
  // As many as there are GPUs, or more when asked for.
  CHECK(test::run_process({launch, "--num_gpus", "2", "sh", "-c", program}, two_gpus).exit_code() == 0);
  CHECK(test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "3", "sh", "-c", program}, two_gpus).exit_code() == 0);
  CHECK(pids_in(out.path(), "started.").size() == 3);
  // One process is the program run alone: allowed without any GPU.
  const std::map<std::string, std::string> no_gpu = {{"CUDA_VISIBLE_DEVICES", "-1"}};
  CHECK(test::run_process({launch, "--num_gpus", "1", "true"}, no_gpu).exit_code() == 0);
  CHECK(test::run_process({launch, "true"}, no_gpu).exit_code() == 0);
  const auto refused = test::run_process({launch, "--num_gpus", "2", "true"}, no_gpu);
  CHECK(refused.exit_code() == 2);
  CHECK_THAT(refused.output, Catch::Contains("0 GPUs are visible"));
}

TEST_CASE("mii-launch: rank 0 reads a piped stdin, the other ranks /dev/null", "[parallel][launch]") {
  test::temp_dir out("launch");
  test::write_text(out / "input", "prompt line\n");
  const auto r = test::run_process(
      {"sh", "-c", launch + " --allow-oversubscribe --num_gpus 3 sh -c 'echo \"stdin $RANK: $(cat)\"' < " + (out / "input").string()});
  INFO(r.output);
  CHECK(r.exit_code() == 0);
  CHECK(lines_with(r.output, "stdin ") ==
        std::vector<std::string>{"stdin 0: prompt line", "stdin 1: ", "stdin 2: "});
}

TEST_CASE("mii-launch exits with the first failing rank's status", "[parallel][launch]") {
  CHECK(test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "3", "true"}).exit_code() == 0);
  CHECK(test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "3", "sh", "-c", "exit $(( RANK == 2 ? 7 : 0 ))"}).exit_code() == 7);
  CHECK(test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "2", "sh", "-c", "[ $RANK = 1 ] && kill -KILL $$; exit 0"}).exit_code() ==
        128 + SIGKILL);
  const auto missing = test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "2", "/nonexistent/program"});
  CHECK(missing.exit_code() == 127);
  CHECK_THAT(missing.output, Catch::Contains("cannot run /nonexistent/program"));
  CHECK(test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "2"}).exit_code() == 2);
  CHECK(test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "zero", "true"}).exit_code() == 2);
  CHECK(test::run_process({launch, "--frobnicate", "1", "true"}).exit_code() == 2);
}

TEST_CASE("mii-launch: a failing rank stops the job within seconds and leaves no process", "[parallel][launch]") {
  test::temp_dir out("launch");
  // Every rank but 2 sleeps (with a child of its own, as a real program might have) until stopped.
  const std::string program =
      "echo $$ > $OUT/pid.$RANK; if [ $RANK = 2 ]; then sleep 0.3; echo rank 2 fails >&2; exit 3; fi; "
      "sleep 60 & echo $! > $OUT/child.$RANK; wait";
  const auto r = test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "4", "sh", "-c", program}, {{"OUT", out.path().string()}}, 30s);
  INFO(r.output);
  CHECK(!r.timed_out);
  CHECK(r.exit_code() == 3);
  CHECK(r.seconds < 5);
  CHECK_THAT(r.output, Catch::Contains("rank 2 (pid") && Catch::Contains("exited with code 3"));
  CHECK(pids_in(out.path(), "pid.").size() == 4);
  CHECK(pids_in(out.path(), "child.").size() == 3);
  expect_all_gone(pids_in(out.path(), "pid."));
  expect_all_gone(pids_in(out.path(), "child."));
}

TEST_CASE("mii-launch: a rank that ignores SIGTERM gets SIGKILL after the grace period", "[parallel][launch]") {
  test::temp_dir out("launch");
  const std::string program =
      "trap '' TERM; echo $$ > $OUT/pid.$RANK; if [ $RANK = 1 ]; then sleep 0.2; exit 4; fi; "
      "while :; do sleep 0.1; done";
  const auto r =
      test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "2", "--grace", "1", "sh", "-c", program}, {{"OUT", out.path().string()}}, 30s);
  INFO(r.output);
  CHECK(r.exit_code() == 4);
  CHECK(r.seconds >= 1.0);
  CHECK(r.seconds < 4.0);
  CHECK_THAT(r.output, Catch::Contains("sending SIGKILL"));
  expect_all_gone(pids_in(out.path(), "pid."));
}

TEST_CASE("mii-launch forwards SIGTERM and SIGINT to every rank", "[parallel][launch]") {
  for (int sig : {SIGTERM, SIGINT}) {
    INFO("signal " << sig);
    test::temp_dir out("launch");
    const std::string name = sig == SIGTERM ? "TERM" : "INT";
    const std::string program = "trap 'echo " + name + " > $OUT/got.$RANK; exit 0' " + name +
                                "; echo $$ > $OUT/ready.$RANK; while :; do sleep 0.05; done";
    test::child_process job({launch, "--allow-oversubscribe", "--num_gpus", "3", "sh", "-c", program}, {{"OUT", out.path().string()}});
    REQUIRE(wait_for_files(out.path(), "ready.", 3, 20s));
    ::kill(job.pid(), sig);
    const auto r = job.wait(20s);
    INFO(r.output);
    CHECK(!r.timed_out);
    CHECK(r.exit_code() == 128 + sig);
    for (int rank = 0; rank < 3; ++rank) {
      const auto got = out / ("got." + std::to_string(rank));
      REQUIRE(std::filesystem::exists(got));
      CHECK(test::read_text(got) == name + "\n");
    }
    expect_all_gone(pids_in(out.path(), "ready."));
  }
}

TEST_CASE("mii-launch forwards SIGUSR1 without stopping the job", "[parallel][launch]") {
  test::temp_dir out("launch");
  const std::string program =
      "trap 'echo USR1 > $OUT/usr1.$RANK' USR1; echo $$ > $OUT/ready.$RANK; while :; do sleep 0.05; done";
  test::child_process job({launch, "--allow-oversubscribe", "--num_gpus", "2", "--grace", "1", "sh", "-c", program}, {{"OUT", out.path().string()}});
  REQUIRE(wait_for_files(out.path(), "ready.", 2, 20s));
  ::kill(job.pid(), SIGUSR1);
  CHECK(wait_for_files(out.path(), "usr1.", 2, 10s));
  std::this_thread::sleep_for(1500ms);  // longer than the grace period: nobody may have been killed
  for (pid_t p : pids_in(out.path(), "ready.")) CHECK(!test::process_gone(p));
  ::kill(job.pid(), SIGTERM);
  const auto r = job.wait(20s);
  CHECK(r.exit_code() == 128 + SIGTERM);
}

TEST_CASE("mii-launch: when mii-launch itself is killed, its ranks die too", "[parallel][launch]") {
  test::temp_dir out("launch");
  test::child_process job({launch, "--allow-oversubscribe", "--num_gpus", "2", "sh", "-c", "echo $$ > $OUT/pid.$RANK; while :; do sleep 0.05; done"},
                          {{"OUT", out.path().string()}});
  REQUIRE(wait_for_files(out.path(), "pid.", 2, 20s));
  std::this_thread::sleep_for(50ms);  // the pid files are complete
  const auto pids = pids_in(out.path(), "pid.");
  ::kill(job.pid(), SIGKILL);
  (void)job.wait(10s);
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline &&
         !std::all_of(pids.begin(), pids.end(), [](pid_t p) { return test::process_gone(p); }))
    std::this_thread::sleep_for(20ms);
  expect_all_gone(pids);
}

// ---- the rendezvous between processes ------------------------------------------------------

// Run by the tests below under mii-launch (MII_TEST_WORKER=rendezvous): rank 0's blob must reach
// every rank. Catch2 runs hidden tests for a filter like "~[gpu]" too, hence the variable.
TEST_CASE("rendezvous worker (started by the launcher tests)", "[.rendezvous-worker]") {
  const char* worker = std::getenv("MII_TEST_WORKER");
  if (!worker || std::string(worker) != "rendezvous") return;
  const auto env = parallel::read_launch_env();
  if (const char* f = std::getenv("MII_TEST_FAIL_RANK"); f && std::atoi(f) == env.rank) std::_Exit(3);
  if (const char* f = std::getenv("MII_TEST_IDLE_RANK"); f && std::atoi(f) == env.rank) {  // never joins
    std::this_thread::sleep_for(10s);  // mii-launch stops it once rank 0 gives up
    return;
  }
  std::vector<std::byte> blob;
  for (char c : "the id of a job of " + std::to_string(env.world_size)) blob.push_back(std::byte(c));
  std::vector<std::byte> got;
  try {
    got = parallel::share_from_rank0({env.master_addr, parallel::rendezvous_port(env)}, env.rank, env.world_size,
                                     env.rank == 0 ? std::span<const std::byte>(blob) : std::span<const std::byte>(),
                                     parallel::connect_timeout());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rendezvous worker: %s\n", e.what());  // unwrapped, for the test to match
    throw;
  }
  const char* out = std::getenv("MII_TEST_OUT");
  REQUIRE(out);
  std::ofstream(std::filesystem::path(out) / ("rank." + std::to_string(env.rank)))
      << std::string(reinterpret_cast<const char*>(got.data()), got.size()) << " local=" << env.local_rank;
}

TEST_CASE("mii-launch: ranks in separate processes meet through the rendezvous", "[parallel][launch][rendezvous]") {
  test::temp_dir out("rdv");
  const auto r = test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "3", test::self_path(), "[rendezvous-worker]"},
                                   {{"MII_TEST_OUT", out.path().string()}, {"MII_TEST_WORKER", "rendezvous"}}, 60s);
  INFO(r.output);
  CHECK(r.exit_code() == 0);
  for (int rank = 0; rank < 3; ++rank) {
    const auto f = out / ("rank." + std::to_string(rank));
    REQUIRE(std::filesystem::exists(f));
    CHECK(test::read_text(f) == "the id of a job of 3 local=" + std::to_string(rank));
  }
  CHECK_THAT(r.output, !Catch::Contains("joined"));  // every rank told mii-launch it joined
}

TEST_CASE("mii-launch: a rank that dies before the rendezvous brings the others down fast", "[parallel][launch][rendezvous]") {
  test::temp_dir out("rdv");
  const auto r = test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "3", test::self_path(), "[rendezvous-worker]"},
                                   {{"MII_TEST_OUT", out.path().string()}, {"MII_TEST_FAIL_RANK", "2"}, {"MII_TEST_WORKER", "rendezvous"}},
                                   60s);
  INFO(r.output);
  CHECK(r.exit_code() == 3);
  CHECK(r.seconds < 10);  // far below the 60 s the others would wait for rank 2 on their own
}

TEST_CASE("mii-launch warns when no rank of a job joined it: the program ran N separate times", "[parallel][launch][join]") {
  const auto r = test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "2", "sh", "-c", "echo hello"});
  INFO(r.output);
  CHECK(r.exit_code() == 0);
  CHECK_THAT(r.output, Catch::Contains("warning: none of the 2 ranks joined a tensor-parallel job, so sh ran 2 separate times"));
  const auto alone = test::run_process({launch, "--num_gpus", "1", "sh", "-c", "echo hello"});
  CHECK_THAT(alone.output, !Catch::Contains("joined"));
}

TEST_CASE("mii-launch names ranks still not joined after MII_CONNECT_TIMEOUT", "[parallel][launch][join]") {
  const auto r = test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "2", "sh", "-c", "sleep 2"},
                                   {{"MII_CONNECT_TIMEOUT", "0.5"}}, 30s);
  INFO(r.output);
  CHECK(r.exit_code() == 0);
  CHECK_THAT(r.output, Catch::Contains("mii-launch: ranks 0 (pid ") && Catch::Contains("1 (pid ") &&
                           Catch::Contains("have not joined the job 0.5 s after start: is sh tensor-parallel") &&
                           Catch::Contains("MII_CONNECT_TIMEOUT"));
}

TEST_CASE("mii-launch names the rank that stayed out of a job the others joined", "[parallel][launch][join][rendezvous]") {
  test::temp_dir out("rdv");
  // Rank 2 never calls the rendezvous; rank 1 gets the id from rank 0 (joined), rank 0 waits for
  // rank 2 until MII_CONNECT_TIMEOUT and fails naming it.
  const auto r = test::run_process({launch, "--allow-oversubscribe", "--num_gpus", "3", test::self_path(), "[rendezvous-worker]"},
                                   {{"MII_TEST_OUT", out.path().string()}, {"MII_TEST_IDLE_RANK", "2"},
                                    {"MII_TEST_WORKER", "rendezvous"}, {"MII_CONNECT_TIMEOUT", "3"}},
                                   60s);
  INFO(r.output);
  CHECK(r.exit_code() != 0);
  std::vector<std::string> join_lines;
  std::istringstream in(r.output);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("mii-launch: ") && line.find("joined the job") != std::string::npos) join_lines.push_back(line);
  REQUIRE(join_lines.size() == 1);
  CHECK_THAT(join_lines[0], Catch::StartsWith("mii-launch: rank 2 (pid "));
  CHECK(std::filesystem::exists(out / "rank.1"));
}

TEST_CASE("a rank whose rank 0 never comes fails within MII_CONNECT_TIMEOUT, naming the address", "[parallel][rendezvous]") {
  test::temp_dir out("rdv");
  const auto r = test::run_process({test::self_path(), "[rendezvous-worker]"},
                                   {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}, {"MII_CONNECT_TIMEOUT", "1"},
                                    {"MII_TEST_OUT", out.path().string()}, {"MII_TEST_WORKER", "rendezvous"}},
                                   30s);
  INFO(r.output);
  CHECK(r.exit_code() != 0);
  CHECK(r.seconds < 6);
  CHECK_THAT(r.output, Catch::Contains("rank 1 of 2: could not get the rendezvous from rank 0 at 127.0.0.1:1 within 1"));
}
