// Running programs from the launcher and tool tests: mii-launch's path, a child with extra
// environment, its output (stdout and stderr together, or apart), exit status and run time, with
// a hard timeout so a broken program fails the test instead of hanging it.
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace mii::test {

// The mii-launch built with this test (tests/CMakeLists.txt), or $MII_LAUNCH.
inline std::string launcher_path() {
  if (const char* p = std::getenv("MII_LAUNCH"); p && *p) return p;
#ifdef MII_LAUNCH_PATH
  return MII_LAUNCH_PATH;
#else
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path() / "tools/mii-launch").string();
#endif
}

inline std::string self_path() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

struct process_result {
  int status = -1;       // waitpid status
  std::string output;    // stdout and stderr together (stdout only with child_io::split_stderr)
  std::string errors;    // stderr, with child_io::split_stderr
  double seconds = 0;    // until the process exited
  bool timed_out = false;
  int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1; }
};

// Variables that would make a child think it is part of this process's job, if we have one.
inline const std::vector<std::string>& launch_variable_names() {
  static const std::vector<std::string> names = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                                                 "MASTER_ADDR", "MASTER_PORT", "OMPI_COMM_WORLD_RANK",
                                                 "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                                                 "MII_RENDEZVOUS_PORT", "TORCHELASTIC_USE_AGENT_STORE"};
  return names;
}

// Where a child's standard streams go besides the defaults (stdin inherited, stdout and stderr
// into one pipe).
struct child_io {
  std::filesystem::path input;  // a file for stdin (e.g. /dev/null)
  bool split_stderr = false;    // stderr into process_result::errors instead of output
};

class child_process {
 public:
  // Starts argv with the launch variables cleared, then `env` set (an empty value unsets).
  child_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                const child_io& io = {}) {
    int fds[2], err_fds[2] = {-1, -1};
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    if (io.split_stderr && ::pipe2(err_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    start_ = std::chrono::steady_clock::now();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      if (!io.input.empty()) {
        const int in = ::open(io.input.c_str(), O_RDONLY);
        if (in < 0) ::_exit(126);
        ::dup2(in, 0);
      }
      ::dup2(fds[1], 1);
      ::dup2(io.split_stderr ? err_fds[1] : fds[1], 2);
      for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::signal(s, SIG_DFL);  // whatever our runner ignored
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      for (const auto& n : launch_variable_names()) ::unsetenv(n.c_str());
      for (const auto& [k, v] : env) {
        if (v.empty()) ::unsetenv(k.c_str());
        else ::setenv(k.c_str(), v.c_str(), 1);
      }
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
    if (io.split_stderr) {
      ::close(err_fds[1]);
      err_ = err_fds[0];
    }
  }
  ~child_process() {
    if (!done_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const { return pid_; }

  // Collects output until the process exits (then what is left in the pipe for a moment), or
  // until `timeout`, when it is killed (SIGTERM, then SIGKILL) and timed_out is set.
  process_result wait(std::chrono::milliseconds timeout) {
    process_result r;
    const auto deadline = start_ + timeout;
    bool exited = false, terminated = false;
    // Reads whatever the pipes hold, waiting up to wait_ms for more; both are drained together
    // so that a child filling one of them never blocks.
    auto drain = [&](int wait_ms) {
      pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
      std::string* into[2] = {&r.output, &r.errors};
      const nfds_t count = err_ >= 0 ? 2 : 1;
      for (;;) {
        if (p[0].fd < 0 && (count == 1 || p[1].fd < 0)) return;  // every pipe closed
        if (::poll(p, count, wait_ms) <= 0) return;
        for (nfds_t i = 0; i < count; ++i) {
          if (p[i].fd < 0 || !p[i].revents) continue;
          char buf[4096];
          const ssize_t n = ::read(p[i].fd, buf, sizeof buf);
          if (n <= 0) p[i].fd = -1;  // closed: poll skips it from now on
          else into[i]->append(buf, std::size_t(n));
        }
      }
    };
    while (!exited) {
      drain(20);
      const pid_t w = ::waitpid(pid_, &r.status, WNOHANG);
      if (w == pid_) {
        exited = true;
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      } else if (std::chrono::steady_clock::now() > deadline) {
        r.timed_out = true;
        ::kill(pid_, terminated ? SIGKILL : SIGTERM);
        terminated = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    }
    done_ = true;
    drain(200);  // output the children wrote just before the end
    return r;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1, err_ = -1;
  bool done_ = false;
  std::chrono::steady_clock::time_point start_;
};

inline process_result run_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                                  std::chrono::milliseconds timeout = std::chrono::seconds(60), const child_io& io = {}) {
  child_process c(argv, env, io);
  return c.wait(timeout);
}

// True when no process with this pid runs: none exists, or only a zombie is left (dead, waiting
// for a parent that may be a PID 1 which never reaps).
inline bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return true;
  char buf[512] = {};
  (void)std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const std::string stat(buf);
  const auto paren = stat.rfind(')');  // "pid (name) S ...": the state follows the name
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

}  // namespace mii::test
