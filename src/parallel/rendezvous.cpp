// share_from_rank0 over plain POSIX sockets. The exchange is tiny (a 128-byte NCCL unique id),
// so each side does blocking work under poll() deadlines: nothing here may wait forever.
//
// Wire format (integers big-endian):
//   rank k -> rank 0:  "MIIR" | u32 version | u32 rank | u32 world_size
//   rank 0 -> rank k:  u32 status (0 ok, 1 error) | u32 length | bytes (the blob, or an error text)
#include <mii/parallel/rendezvous.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>

#include <mii/error.hpp>
#include <mii/parallel/launch_env.hpp>

namespace mii::parallel {
namespace {

using clock = std::chrono::steady_clock;
constexpr std::uint32_t protocol_version = 1;
constexpr std::size_t max_blob = 1 << 20;
// A connection that says nothing is not a rank (a port scanner, a stale client): rank 0 gives
// each connection this long to introduce itself before moving on.
constexpr std::chrono::milliseconds hello_timeout{5000};

struct socket_fd {
  int fd = -1;
  explicit socket_fd(int f = -1) : fd(f) {}
  socket_fd(socket_fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  socket_fd& operator=(socket_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd = std::exchange(o.fd, -1);
    }
    return *this;
  }
  ~socket_fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

std::string where(const rendezvous_point& p) { return p.addr + ":" + std::to_string(p.port); }
std::string errno_text(int err = errno) { return std::strerror(err); }

int ms_left(clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return int(std::clamp<long long>(left, 0, 1 << 30));
}

double seconds_since(clock::time_point start) {
  return std::chrono::duration<double>(clock::now() - start).count();
}

// Waits until fd is ready for `events`; false on timeout.
bool wait_for(int fd, short events, clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) fail("rendezvous: poll failed: ", errno_text());
  }
}

// Reads/writes exactly n bytes before the deadline; false on timeout or a closed connection.
bool read_all(int fd, void* data, std::size_t n, clock::time_point deadline) {
  auto* p = static_cast<std::byte*>(data);
  while (n > 0) {
    if (!wait_for(fd, POLLIN, deadline)) return false;
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    p += r;
    n -= std::size_t(r);
  }
  return true;
}
bool write_all(int fd, const void* data, std::size_t n, clock::time_point deadline) {
  const auto* p = static_cast<const std::byte*>(data);
  while (n > 0) {
    if (!wait_for(fd, POLLOUT, deadline)) return false;
    const ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);  // a vanished peer is an error, not SIGPIPE
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    p += r;
    n -= std::size_t(r);
  }
  return true;
}

void put_u32(std::vector<std::byte>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(std::byte((v >> shift) & 0xff));
}
std::uint32_t get_u32(const std::byte* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | std::uint32_t(p[3]);
}

sockaddr_in resolve(const rendezvous_point& p) {
  if (p.port < 1 || p.port > 65535) fail("rendezvous: port ", p.port, " is not a TCP port");
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(p.addr.c_str(), nullptr, &hints, &found);
  if (rc != 0 || !found)
    fail("rendezvous: cannot resolve MASTER_ADDR \"", p.addr, "\": ", ::gai_strerror(rc));
  sockaddr_in a{};
  std::memcpy(&a, found->ai_addr, sizeof a);
  ::freeaddrinfo(found);
  a.sin_port = htons(std::uint16_t(p.port));
  return a;
}

void reply(int fd, std::uint32_t status, std::span<const std::byte> body, clock::time_point deadline) {
  std::vector<std::byte> msg;
  put_u32(msg, status);
  put_u32(msg, std::uint32_t(body.size()));
  msg.insert(msg.end(), body.begin(), body.end());
  (void)write_all(fd, msg.data(), msg.size(), deadline);  // a client that left is its own problem
}
void reply_error(int fd, const std::string& text, clock::time_point deadline) {
  reply(fd, 1, std::as_bytes(std::span(text.data(), text.size())), deadline);
}

std::vector<std::byte> serve(const rendezvous_point& p, int world, std::span<const std::byte> blob,
                             std::chrono::milliseconds timeout) {
  const auto start = clock::now(), deadline = start + timeout;
  const sockaddr_in addr = resolve(p);
  socket_fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.fd < 0) fail("rendezvous: socket() failed: ", errno_text());
  const int one = 1;
  ::setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // restart right after a crash
  if (::bind(listener.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    fail("rank 0 cannot listen on ", where(p), " for the rendezvous: ", errno_text(),
         "; choose a free port with MASTER_PORT (or MII_RENDEZVOUS_PORT)");
  if (::listen(listener.fd, std::min(world, 1024)) != 0) fail("rendezvous: listen on ", where(p), " failed: ", errno_text());

  std::set<int> served;  // ranks that have the blob
  std::vector<socket_fd> open;  // kept until the end: closing early could reset a reply in flight
  while (int(served.size()) < world - 1) {
    if (!wait_for(listener.fd, POLLIN, deadline)) {
      std::string missing;
      for (int r = 1; r < world; ++r)
        if (!served.count(r)) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      fail("rank 0 of ", world, ": only ", served.size(), " of the ", world - 1, " other ranks connected to ",
           where(p), " within ", seconds_since(start), " s (missing: rank ", missing,
           "); did they start, and with the same MASTER_ADDR/MASTER_PORT? (timeout: MII_CONNECT_TIMEOUT)");
    }
    socket_fd c(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (c.fd < 0) continue;  // the client gave up between poll and accept
    std::byte hello[16];
    if (!read_all(c.fd, hello, sizeof hello, std::min(deadline, clock::now() + hello_timeout))) continue;
    if (std::memcmp(hello, "MIIR", 4) != 0 || get_u32(hello + 4) != protocol_version) continue;  // not one of ours
    const auto rank = std::int64_t(get_u32(hello + 8)), their_world = std::int64_t(get_u32(hello + 12));
    std::string problem;
    if (their_world != world)
      problem = "rank " + std::to_string(rank) + " says the world size is " + std::to_string(their_world) +
                " but rank 0 has " + std::to_string(world);
    else if (rank < 1 || rank >= world)
      problem = "a client says it is rank " + std::to_string(rank) + " of " + std::to_string(world);
    else if (served.count(int(rank)))
      problem = "two processes say they are rank " + std::to_string(rank);
    if (!problem.empty()) {
      reply_error(c.fd, "rendezvous at " + where(p) + ": " + problem, deadline);
      fail("rank 0: rendezvous at ", where(p), ": ", problem, " (check RANK/WORLD_SIZE of every process)");
    }
    reply(c.fd, 0, blob, deadline);
    served.insert(int(rank));
    open.push_back(std::move(c));
  }
  // Each client closes after reading its reply; waiting for that (briefly) makes sure no reply
  // is cut off by our close.
  for (auto& c : open) {
    std::byte drain;
    (void)read_all(c.fd, &drain, 1, std::min(deadline, clock::now() + std::chrono::milliseconds(1000)));
  }
  return {blob.begin(), blob.end()};
}

[[noreturn]] void fetch_failed(const rendezvous_point& p, int rank, int world, clock::time_point start,
                               const std::string& why) {
  fail("rank ", rank, " of ", world, ": could not get the rendezvous from rank 0 at ", where(p), " within ",
       seconds_since(start), " s (", why, "); is rank 0 running, with the same MASTER_ADDR/MASTER_PORT? "
       "(timeout: MII_CONNECT_TIMEOUT)");
}

std::vector<std::byte> fetch(const rendezvous_point& p, int rank, int world, std::chrono::milliseconds timeout) {
  const auto start = clock::now(), deadline = start + timeout;
  const sockaddr_in addr = resolve(p);
  std::string last_error = "no attempt finished";
  while (clock::now() < deadline) {
    socket_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (s.fd < 0) fail("rendezvous: socket() failed: ", errno_text());
    int rc = ::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    if (rc != 0 && errno == EINPROGRESS) {
      if (wait_for(s.fd, POLLOUT, std::min(deadline, clock::now() + std::chrono::seconds(2)))) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (rc != 0) {
      last_error = "last error: " + errno_text();
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100, ms_left(deadline))));
      continue;  // rank 0 is not listening yet
    }
    std::vector<std::byte> hello;
    for (char ch : {'M', 'I', 'I', 'R'}) hello.push_back(std::byte(ch));
    put_u32(hello, protocol_version);
    put_u32(hello, std::uint32_t(rank));
    put_u32(hello, std::uint32_t(world));
    std::byte head[8];
    if (!write_all(s.fd, hello.data(), hello.size(), deadline) || !read_all(s.fd, head, sizeof head, deadline)) {
      last_error = "connected, but no answer came; is another program using this port?";
      continue;
    }
    const std::uint32_t status = get_u32(head), length = get_u32(head + 4);
    if (length > max_blob)
      fetch_failed(p, rank, world, start, "the answer claims " + std::to_string(length) + " bytes; not a mii rendezvous");
    std::vector<std::byte> body(length);
    if (!read_all(s.fd, body.data(), body.size(), deadline)) {
      last_error = "the connection closed mid-answer";
      continue;
    }
    if (status != 0) fail("rank ", rank, ": ", std::string(reinterpret_cast<const char*>(body.data()), body.size()));
    return body;
  }
  fetch_failed(p, rank, world, start, last_error);
}

}  // namespace

std::vector<std::byte> share_from_rank0(const rendezvous_point& where, int rank, int world_size,
                                        std::span<const std::byte> blob, std::chrono::milliseconds timeout) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    fail("rendezvous: rank ", rank, " of world size ", world_size, " is not a valid rank");
  if (blob.size() > max_blob) fail("rendezvous: a ", blob.size(), "-byte blob is larger than ", max_blob, " bytes");
  if (world_size == 1) return {blob.begin(), blob.end()};
  auto shared = rank == 0 ? serve(where, world_size, blob, timeout) : fetch(where, rank, world_size, timeout);
  tell_launcher_joined(rank);  // mii-launch reports ranks that never get here
  return shared;
}

}  // namespace mii::parallel
