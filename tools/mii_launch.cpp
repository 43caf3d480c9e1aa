// mii-launch: starts one process per GPU for tensor-parallel inference, the way the deepspeed
// launcher does for DeepSpeed-MII.
//
//   mii-launch [--num_gpus N] [--master_addr ADDR] [--master_port PORT] [--grace SECONDS] [--]
//              PROGRAM [ARGS...]
//
// Each process gets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
// NCCL_NVLS_ENABLE=0; CUDA_VISIBLE_DEVICES is left as it is (a program uses GPU LOCAL_RANK).
// All ranks share one process group, so that signals reach whatever they started too.
//   - SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 sent to mii-launch go to every rank;
//     after one of the first four, ranks still running when the grace period ends get SIGKILL.
//   - When a rank fails (non-zero exit or killed by a signal), the others get SIGTERM, then
//     SIGKILL after the grace period (default 5 s): a job never hangs on a dead peer.
//   - The exit status is 0 when every rank exits 0, else the first failing rank's status
//     (128 + signal number for a rank killed by a signal, or for a signal mii-launch received).
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

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace {

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "mii-launch: %s\n"
               "usage: mii-launch [--num_gpus N] [--master_addr ADDR] [--master_port PORT] [--grace SECONDS]\n"
               "                  [--] PROGRAM [ARGS...]\n"
               "  --num_gpus N       processes to start, one per GPU (default: every visible GPU, else 1)\n"
               "  --master_addr A    where rank 0 serves the NCCL id (default: $MASTER_ADDR or 127.0.0.1)\n"
               "  --master_port P    its TCP port (default: $MASTER_PORT, else a free port)\n"
               "  --grace S          seconds between SIGTERM and SIGKILL when stopping ranks (default 5)\n",
               why.c_str());
  std::exit(2);
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
int visible_gpus() {
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
    return n;
  }
  std::error_code ec;
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", ec)) {
    (void)e;
    ++n;
  }
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
};

}  // namespace

int main(int argc, char** argv) {
  int num_gpus = -1;
  std::string master_addr = std::getenv("MASTER_ADDR") ? std::getenv("MASTER_ADDR") : "127.0.0.1";
  int master_port = -1;
  if (const char* p = std::getenv("MASTER_PORT"); p && *p) master_port = int(parse_long("MASTER_PORT", p, 1, 65535));
  double grace = 5.0;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i], value;
    if (a == "--") {
      ++i;
      break;
    }
    if (!a.starts_with("--")) break;  // the program
    if (const auto eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (a != "--help" && a != "-h") {
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
    } else if (a == "--help" || a == "-h") usage("help");
    else usage("unknown option " + a);
  }
  if (i >= argc) usage("missing PROGRAM");
  if (num_gpus < 0) num_gpus = std::max(1, visible_gpus());
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
      ::execvp(argv[i], argv + i);
      std::fprintf(stderr, "mii-launch: rank %d: cannot run %s: %s\n", r, argv[i], std::strerror(errno));
      ::_exit(127);
    }
    ::setpgid(pid, group == 0 ? pid : group);  // also here: whichever of parent and child runs first
    if (group == 0) group = pid;
    ranks[std::size_t(r)] = {pid, true, 0};
  }

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
    const double wait_s = stopping && !killed ? std::max(0.0, kill_at - now_seconds()) : 1.0;
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
  return exit_code;
}
