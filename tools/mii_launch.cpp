// mii-launch: starts one process per GPU for tensor-parallel inference, the way the deepspeed
// launcher does for DeepSpeed-MII.
//
//   mii-launch [--num_gpus N] [--allow-oversubscribe] [--master_addr ADDR] [--master_port PORT]
//              [--grace SECONDS] [--] PROGRAM [ARGS...]
//
// Each process gets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
// NCCL_NVLS_ENABLE=0; CUDA_VISIBLE_DEVICES is left as it is (a program uses GPU LOCAL_RANK).
// All ranks share one process group, so that signals reach whatever they started too.
//   - More ranks than visible GPUs is refused (exit 2) unless --allow-oversubscribe is given
//     (CPU-only programs, tests): one rank per GPU is the point of the tool.
//   - SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 sent to mii-launch go to every rank;
//     after one of the first four, ranks still running when the grace period ends get SIGKILL.
//   - When a rank fails (non-zero exit or killed by a signal), the others get SIGTERM, then
//     SIGKILL after the grace period (default 5 s): a job never hangs on a dead peer.
//   - Ranks say when they have joined the job (MII_LAUNCH_JOIN_FD, see launch_env.hpp). A rank
//     that has not joined within MII_CONNECT_TIMEOUT (default 60 s) is named on stderr, and a job
//     of several ranks of which none ever joined gets a warning: the program ran N separate
//     copies (it is not tensor-parallel).
//   - The exit status is 0 when every rank exits 0, else the first failing rank's status
//     (128 + signal number for a rank killed by a signal, or for a signal mii-launch received);
//     2 for usage errors.
//   - If mii-launch itself is killed, the ranks get SIGKILL (PR_SET_PDEATHSIG).
//   - stdin: rank 0 reads mii-launch's stdin when it is a file or a pipe; the other ranks, and
//     rank 0 when stdin is a terminal (the ranks' group is not the terminal's), read /dev/null.
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <mii/parallel/launch_env.hpp>

namespace {

void print_usage(std::FILE* to) {
  std::fputs(
      "usage: mii-launch [--num_gpus N] [--allow-oversubscribe] [--master_addr ADDR] [--master_port PORT]\n"
      "                  [--grace SECONDS] [--] PROGRAM [ARGS...]\n"
      "Starts PROGRAM once per GPU for tensor parallelism, with RANK, LOCAL_RANK, WORLD_SIZE,\n"
      "MASTER_ADDR and MASTER_PORT set (the program uses mii::pipeline_tp).\n"
      "  --num_gpus N            processes to start, one per GPU (default: every visible GPU, else 1)\n"
      "  --allow-oversubscribe   allow more processes than visible GPUs (CPU-only programs, tests)\n"
      "  --master_addr A         where rank 0 serves the NCCL id (default: $MASTER_ADDR or 127.0.0.1)\n"
      "  --master_port P         its TCP port (default: $MASTER_PORT, else a free port)\n"
      "  --grace S               seconds between SIGTERM and SIGKILL when stopping ranks (default 5)\n"
      "  -h, --help              this text\n"
      "Options after PROGRAM are PROGRAM's. Ranks that do not join the job within MII_CONNECT_TIMEOUT\n"
      "seconds (default 60) are reported.\n",
      to);
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "mii-launch: %s\n", why.c_str());
  print_usage(stderr);
  std::exit(2);
}

// The options that take a value (as "--opt V" or "--opt=V"); both spellings, as torchrun's.
bool is_value_option(const std::string& a) {
  for (const char* o : {"--num_gpus", "--num-gpus", "--master_addr", "--master-addr", "--master_port", "--master-port",
                        "--grace"})
    if (a == o) return true;
  return false;
}

long parse_long(const std::string& flag, const std::string& text, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (errno || end == text.c_str() || *end || v < lo || v > hi)
    usage(flag + " needs an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + text + "'");
  return v;
}

// GPUs this job may use: CUDA_VISIBLE_DEVICES's entries when set, else the driver's count.
// `how` says where the number came from, for messages.
int visible_gpus(std::string& how) {
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES")) {
    int n = 0;
    for (const char* p = v; *p;) {
      const char* comma = std::strchr(p, ',');
      const std::string item(p, comma ? comma : p + std::strlen(p));
      if (item.empty() || item[0] == '-') break;  // CUDA stops at the first invalid entry
      ++n;
      if (!comma) break;
      p = comma + 1;
    }
    how = std::string("CUDA_VISIBLE_DEVICES=\"") + v + "\"";
    return n;
  }
  std::error_code ec;
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", ec)) {
    (void)e;
    ++n;
  }
  how = ec ? "no NVIDIA driver is loaded: /proc/driver/nvidia/gpus is missing" : "counted in /proc/driver/nvidia/gpus";
  return n;
}

// A TCP port nobody listens on now (the kernel picks it); rank 0 binds it moments later.
int free_port(const std::string& addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 29500;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = 0;
  if (::inet_pton(AF_INET, addr.c_str(), &a.sin_addr) != 1) a.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof a;
  int port = 29500;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

double now_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                                  ::strsignal(WTERMSIG(status)) + ")";
  return "stopped";
}
int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

struct rank_process {
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  bool joined = false;  // said so on the join channel (it has its peers)
};

// The ranks' side of it is tell_launcher_joined() in src/parallel/launch_env.cpp: one datagram
// "joined RANK" per rank. Datagrams keep messages whole, and a socket (unlike a pipe) lets a
// rank send without risking SIGPIPE once we are gone.
struct join_channel {
  int ours = -1, theirs = -1;
  join_channel() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0) {
      ours = fds[0];
      theirs = fds[1];
    }
  }
  // In a rank, before exec: keep its end open across exec and say where it is.
  void hand_to_rank() const {
    if (theirs < 0) return;
    ::fcntl(theirs, F_SETFD, 0);
    ::setenv(mii::parallel::launcher_join_fd_variable, std::to_string(theirs).c_str(), 1);
  }
  void close_theirs() {
    if (theirs >= 0) ::close(theirs);
    theirs = -1;
  }
  // Marks the ranks whose messages have arrived.
  void collect(std::vector<rank_process>& ranks) const {
    char buf[64];
    for (ssize_t n; ours >= 0 && (n = ::recv(ours, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0;) {
      buf[n] = '\0';
      int r = -1;
      if (std::sscanf(buf, "joined %d", &r) == 1 && r >= 0 && r < int(ranks.size())) ranks[std::size_t(r)].joined = true;
    }
  }
};

// "rank 2 (pid 41)" or "ranks 1 (pid 40), 3 (pid 42)": the ranks that have not joined. Once any
// rank other than 0 has joined, rank 0 was serving the rendezvous and is only waiting for the
// rest, so it is left out: the missing ones are the others.
std::string not_joined(const std::vector<rank_process>& ranks, bool running_only) {
  bool others_joined = false;
  for (std::size_t r = 1; r < ranks.size(); ++r) others_joined |= ranks[r].joined;
  std::string list;
  int count = 0;
  for (std::size_t r = 0; r < ranks.size(); ++r) {
    const auto& p = ranks[r];
    if (p.joined || (running_only && !p.running) || (r == 0 && others_joined)) continue;
    list += (count++ ? ", " : "") + std::to_string(r) + " (pid " + std::to_string(p.pid) + ")";
  }
  return count == 0 ? std::string() : (count == 1 ? "rank " : "ranks ") + list;
}

// When the job is over: a job of several ranks of which none joined ran the program that many
// times side by side (it printed everything N times); ranks that stayed out of a job the others
// joined are named, unless they were at the deadline already.
void report_joins_at_end(const std::vector<rank_process>& ranks, int exit_code, bool named, const char* program) {
  if (ranks.size() < 2) return;
  bool any_joined = false;
  for (const auto& p : ranks) any_joined |= p.joined;
  if (!any_joined) {
    if (exit_code == 0)
      std::fprintf(stderr,
                   "mii-launch: warning: none of the %zu ranks joined a tensor-parallel job, so %s ran %zu separate "
                   "times; a program that is not tensor-parallel (no mii::pipeline_tp) runs with --num_gpus 1\n",
                   ranks.size(), program, ranks.size());
    return;
  }
  if (named) return;
  if (const auto missing = not_joined(ranks, /*running_only=*/false); !missing.empty())
    std::fprintf(stderr, "mii-launch: %s never joined the job; check its output above\n", missing.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  int num_gpus = -1;
  std::string master_addr = std::getenv("MASTER_ADDR") ? std::getenv("MASTER_ADDR") : "127.0.0.1";
  int master_port = -1;
  if (const char* p = std::getenv("MASTER_PORT"); p && *p) master_port = int(parse_long("MASTER_PORT", p, 1, 65535));
  double grace = 5.0;
  bool allow_oversubscribe = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i], value;
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "-h" || a == "--help") {
      print_usage(stdout);
      return 0;
    }
    // The first word not starting with '-' is the program (a program named "-x" follows "--").
    if (!a.starts_with("-")) break;
    if (a == "--allow-oversubscribe" || a == "--allow_oversubscribe") {
      allow_oversubscribe = true;
      continue;
    }
    if (const auto eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (!is_value_option(a)) {
      usage("unknown option " + a);
    } else {
      if (i + 1 >= argc) usage(a + " needs a value");
      value = argv[++i];
    }
    if (a == "--num_gpus" || a == "--num-gpus") num_gpus = int(parse_long(a, value, 1, 4096));
    else if (a == "--master_addr" || a == "--master-addr") master_addr = value;
    else if (a == "--master_port" || a == "--master-port") master_port = int(parse_long(a, value, 1, 65535));
    else if (a == "--grace") {
      char* end = nullptr;
      grace = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end || !(grace >= 0) || !std::isfinite(grace)) usage("--grace needs seconds >= 0");
    } else usage("unknown option " + a);
  }
  if (i >= argc) usage("missing PROGRAM");
  std::string gpus_from;
  const int gpus = visible_gpus(gpus_from);
  if (num_gpus < 0) num_gpus = std::max(1, gpus);
  // One process is always allowed (it is the program run alone); beyond that, one rank per GPU.
  if (num_gpus > std::max(1, gpus) && !allow_oversubscribe) {
    std::fprintf(stderr,
                 "mii-launch: --num_gpus %d would start %d processes but %d GPU%s visible (%s); start at most "
                 "%d, or add --allow-oversubscribe to run more processes than GPUs (CPU-only programs, tests)\n",
                 num_gpus, num_gpus, gpus, gpus == 1 ? " is" : "s are", gpus_from.c_str(), std::max(1, gpus));
    return 2;
  }
  if (master_port < 0) master_port = free_port(master_addr);

  // Signals are taken synchronously (sigtimedwait) rather than by handlers: no races with
  // waitpid, and the children get the original mask back before exec.
  sigset_t handled, original;
  sigemptyset(&handled);
  for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) sigaddset(&handled, s);
  sigprocmask(SIG_BLOCK, &handled, &original);

  // Processes the ranks start and orphan become our children, so that we reap them (instead of
  // a PID 1 that might not) and can tell when the job has really ended.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  const pid_t launcher = ::getpid();
  join_channel joins;
  std::vector<rank_process> ranks(static_cast<std::size_t>(num_gpus));
  pid_t group = 0;  // the job's process group: the first rank's pid
  for (int r = 0; r < num_gpus; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::fprintf(stderr, "mii-launch: fork failed: %s\n", std::strerror(errno));
      if (group > 0) ::killpg(group, SIGKILL);
      return 1;
    }
    if (pid == 0) {
      ::setpgid(0, group);  // group 0: become the leader
      // If mii-launch itself is killed (SIGKILL cannot be forwarded), the ranks go with it.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(1);  // it died before the line above
      sigprocmask(SIG_SETMASK, &original, nullptr);
      // The ranks' group is not the terminal's foreground group, so a rank reading a terminal
      // would be stopped (SIGTTIN) and hang the job; and ranks sharing one pipe would split its
      // data. Rank 0 keeps a non-terminal stdin; everyone else reads /dev/null.
      if (r != 0 || ::isatty(0)) {
        const int null_fd = ::open("/dev/null", O_RDONLY);
        if (null_fd >= 0 && null_fd != 0) {
          ::dup2(null_fd, 0);
          ::close(null_fd);
        }
      }
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(num_gpus).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(num_gpus).c_str(), 1);
      ::setenv("MASTER_ADDR", master_addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(master_port).c_str(), 1);
      ::setenv("NCCL_NVLS_ENABLE", "0", 1);  // NVLink multicast stays off (see docs/parallel.md)
      joins.hand_to_rank();
      ::execvp(argv[i], argv + i);
      std::fprintf(stderr, "mii-launch: rank %d: cannot run %s: %s\n", r, argv[i], std::strerror(errno));
      ::_exit(127);
    }
    ::setpgid(pid, group == 0 ? pid : group);  // also here: whichever of parent and child runs first
    if (group == 0) group = pid;
    ranks[std::size_t(r)] = {pid, true, 0, false};
  }
  joins.close_theirs();
  // Ranks that have not joined by the time their own rendezvous would give up are named; an
  // unreadable MII_CONNECT_TIMEOUT is the ranks' error to report, not ours.
  double join_timeout = 60;
  try {
    join_timeout = std::chrono::duration<double>(mii::parallel::connect_timeout()).count();
  } catch (const std::exception&) {
  }
  const double join_deadline = now_seconds() + join_timeout;
  bool join_checked = num_gpus == 1;  // a job of one has nobody to join
  bool join_named = false;            // ranks were named at the deadline

  int running = num_gpus;
  int exit_code = 0;           // the first failure's
  bool stopping = false;       // SIGTERM sent to the job; SIGKILL follows at `kill_at`
  bool killed = false;
  double kill_at = 0;
  auto stop_all = [&](int sig) {
    ::killpg(group, sig);
    if (!stopping) {
      stopping = true;
      kill_at = now_seconds() + grace;
    }
  };

  while (running > 0) {
    joins.collect(ranks);
    if (!join_checked && !stopping && now_seconds() >= join_deadline) {
      join_checked = true;
      const auto late = not_joined(ranks, /*running_only=*/true);
      join_named = !late.empty();
      if (join_named)
        std::fprintf(stderr,
                     "mii-launch: %s %s not joined the job %.1f s after start: is %s tensor-parallel "
                     "(mii::pipeline_tp)? See the output above, and check that every rank uses the MASTER_ADDR/"
                     "MASTER_PORT it was given (timeout: MII_CONNECT_TIMEOUT)\n",
                     late.c_str(), late.starts_with("ranks") ? "have" : "has", join_timeout, argv[i]);
    }
    // Reap whatever has ended.
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (int r = 0; r < num_gpus; ++r) {
        auto& p = ranks[std::size_t(r)];
        if (p.pid != pid || !p.running) continue;
        p.running = false;
        p.status = status;
        --running;
        const bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (failed && exit_code == 0) {
          exit_code = exit_code_of(status);
          if (!stopping) {
            std::fprintf(stderr, "mii-launch: rank %d (pid %d) %s; stopping the other ranks\n", r, int(pid),
                         describe(status).c_str());
            stop_all(SIGTERM);
          }
        }
      }
    }
    if (running == 0) break;

    if (stopping && !killed && now_seconds() >= kill_at) {
      std::fprintf(stderr, "mii-launch: %d rank(s) still running %.1f s after SIGTERM; sending SIGKILL\n", running, grace);
      ::killpg(group, SIGKILL);
      killed = true;
    }
    double wait_s = stopping && !killed ? std::max(0.0, kill_at - now_seconds()) : 1.0;
    if (!join_checked) wait_s = std::min(wait_s, std::max(0.0, join_deadline - now_seconds()));
    timespec timeout{time_t(wait_s), long((wait_s - std::floor(wait_s)) * 1e9)};
    siginfo_t info{};
    const int sig = ::sigtimedwait(&handled, &info, &timeout);
    if (sig == SIGUSR1 || sig == SIGUSR2) {
      ::killpg(group, sig);  // a message for the program, not a request to stop
    } else if (sig > 0 && sig != SIGCHLD) {
      std::fprintf(stderr, "mii-launch: got %s; forwarding it to all ranks\n", ::strsignal(sig));
      if (exit_code == 0) exit_code = 128 + sig;
      stop_all(sig);  // they should now exit; SIGKILL after the grace period if they do not
    }
  }

  // Whatever the ranks started in their group and left behind goes too: a job leaves nothing.
  auto reap_orphans = [] {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  };
  reap_orphans();
  if (::killpg(group, 0) == 0) {
    ::killpg(group, SIGTERM);
    const double until = now_seconds() + grace;
    for (reap_orphans(); ::killpg(group, 0) == 0 && now_seconds() < until; reap_orphans()) ::usleep(20000);
    ::killpg(group, SIGKILL);
    reap_orphans();
  }
  joins.collect(ranks);
  report_joins_at_end(ranks, exit_code, join_named, argv[i]);
  return exit_code;
}
