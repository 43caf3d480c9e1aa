#include "serve/server.hpp"

#include <future>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "serve/http_session.hpp"

namespace mii::serve {

namespace net = boost::asio;
using tcp = net::ip::tcp;

struct server::impl {
  impl(service& svc, const server_options& o)
      : env{.svc = svc,
            .max_body_bytes = o.max_body_bytes,
            .max_header_bytes = o.max_header_bytes,
            .read_timeout = o.read_timeout,
            .write_timeout = o.write_timeout,
            .log = o.log},
        ioc(std::max(1, o.http_threads)),
        acceptor(net::make_strand(ioc)),
        retry(acceptor.get_executor()) {}

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](boost::system::error_code ec, tcp::socket socket) {
      if (!acceptor.is_open()) return;
      if (ec) {
        // Out of file descriptors and the like: try again shortly rather than spin.
        retry.expires_after(std::chrono::milliseconds(50));
        retry.async_wait([this](boost::system::error_code e) {
          if (!e) accept();
        });
        return;
      }
      // Streamed tokens are small writes: with Nagle's algorithm on, each waits for the ACK of
      // the one before, which the client's delayed ACK holds back by up to 40 ms.
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<http_session>(std::move(socket), env)->start();
      accept();
    });
  }

  // Sessions still queued in the io_context when it is destroyed use env: it goes last.
  session_env env;
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::steady_timer retry;
  std::vector<std::thread> threads;
};

server::server(generation_pipeline& pipe, std::optional<chat_template> chat, server_options opts)
    : opts_(std::move(opts)), svc_(pipe, std::move(chat), opts_.service), impl_(std::make_unique<impl>(svc_, opts_)) {
  tcp::endpoint endpoint;
  try {
    tcp::resolver resolver(impl_->ioc);
    const auto results = resolver.resolve(opts_.host, std::to_string(opts_.port),
                                          tcp::resolver::passive | tcp::resolver::numeric_service);
    if (results.empty()) fail("--host ", opts_.host, " resolves to no address");
    endpoint = results.begin()->endpoint();
    auto& a = impl_->acceptor;
    a.open(endpoint.protocol());
    a.set_option(net::socket_base::reuse_address(true));
    a.bind(endpoint);
    a.listen(net::socket_base::max_listen_connections);
    port_ = a.local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    fail("cannot listen on ", opts_.host, ":", opts_.port, ": ", e.code().message());
  }
  net::post(impl_->acceptor.get_executor(), [this] { impl_->accept(); });
  for (int i = 0; i < std::max(1, opts_.http_threads); ++i) impl_->threads.emplace_back([this] { impl_->ioc.run(); });
}

server::~server() { shutdown(std::chrono::milliseconds(0)); }

std::string server::url() const {
  const bool v6 = opts_.host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + opts_.host + "]" : opts_.host) + ":" + std::to_string(port_);
}

void server::shutdown(std::chrono::milliseconds grace) {
  std::call_once(shutdown_once_, [&] {
    using clock = std::chrono::steady_clock;
    // Draining: connections are still accepted, so that a load balancer's probe reads 503 from
    // /health and a request that still arrives gets 503 + Retry-After rather than a refused
    // connection it cannot tell from a crash.
    svc_.begin_draining();
    const auto wait_until = [&](const std::function<bool()>& done, clock::time_point deadline) {
      while (!done() && clock::now() < deadline && !cut_short_.load())
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return done();
    };
    const auto no_requests = [&] { return svc_.in_flight() == 0; };
    if (!wait_until(no_requests, clock::now() + grace)) {
      svc_.cancel_all();
      // Cancellations take effect at the engine's next step.
      cut_short_.store(false);
      wait_until(no_requests, clock::now() + std::chrono::seconds(30));
    }
    // Stop accepting; the last answers (and the cancelled requests' 503s) on their way out.
    std::promise<void> closed;
    net::post(impl_->acceptor.get_executor(), [&] {  // the acceptor lives on its strand
      boost::system::error_code ignored;
      impl_->acceptor.close(ignored);
      impl_->retry.cancel();
      closed.set_value();
    });
    closed.get_future().wait();
    cut_short_.store(false);
    wait_until([&] { return impl_->env.active_exchanges.load() == 0; }, clock::now() + std::chrono::seconds(2));
    // Close every connection (idle keep-alive ones included): a client must see the server go,
    // not wait on a socket nobody reads.
    std::vector<std::shared_ptr<http_session>> open;
    {
      const std::lock_guard lock(impl_->env.sessions_m);
      for (auto& w : impl_->env.sessions)
        if (auto s = w.lock()) open.push_back(std::move(s));
      impl_->env.sessions.clear();
    }
    for (auto& s : open) s->close_from_server();
    open.clear();
    wait_until([&] { return impl_->env.open_sessions.load() == 0; }, clock::now() + std::chrono::seconds(2));
    impl_->ioc.stop();
    for (auto& t : impl_->threads) t.join();
    impl_->threads.clear();
  });
}

}  // namespace mii::serve
