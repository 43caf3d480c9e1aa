// mii-serve: an OpenAI-compatible (and DeepSpeed-MII REST) HTTP server over one pipeline
// (`mii-serve --help`; docs/serving.md). The server itself is src/serve/; this is its main:
// options, loading, signals.
//
// stderr carries one startup line with the URL, one line per request, and the shutdown notes.
// Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 a load or listen error, 2 a usage error.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <mii/chat.hpp>
#include <mii/io/hub.hpp>
#include <mii/pipeline.hpp>

#include "serve/command_line.hpp"
#include "serve/server.hpp"

namespace {

// One whole line per write, so that lines from the I/O threads never interleave.
void note(const std::string& text) {
  static std::mutex m;
  const std::string line = "mii-serve: " + text + "\n";
  const std::lock_guard lock(m);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

int main(int argc, char** argv) {
  mii::serve::command_line cl;
  try {
    cl = mii::serve::parse_command_line(std::vector<std::string>(argv + 1, argv + argc), std::getenv("MII_API_KEY"));
  } catch (const mii::serve::usage_error& e) {
    std::cerr << "mii-serve: " << e.what() << "\n";
    mii::serve::print_usage(std::cerr);
    return 2;
  }
  if (cl.help) {
    mii::serve::print_usage(std::cout);
    return 0;
  }

  // SIGINT/SIGTERM are taken by sigwait below: block them before any thread starts (the engine's,
  // the host backend's workers, the I/O threads), so that every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error code, not a signal

  try {
    cl.model_dir = mii::serve::resolve_model_dir(cl, note);  // a Hub id: its snapshot
    auto pipe = mii::pipeline(cl.model_dir, cl.engine);
    std::optional<mii::chat_template> chat = mii::serve::chat_template_of(cl);
    if (!cl.quiet) cl.server.log = note;
    mii::serve::server srv(pipe, std::move(chat), cl.server);
    note("serving " + cl.server.service.served_model_name + " (" + std::string(pipe.model_name()) + " on " +
         std::string(pipe.backend_name()) + ", context " + std::to_string(pipe.max_sequence_length()) + " tokens" +
         (srv.svc().options().api_key.empty() ? "" : ", API key required") + ") at " + srv.url());

    int sig = 0;
    sigwait(&stop_signals, &sig);
    note(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + ": not accepting new requests; finishing " +
         std::to_string(srv.svc().in_flight()) + " in flight (up to " +
         std::to_string(cl.shutdown_timeout.count() / 1000.0).substr(0, 6) + " s; a second signal cancels them)");
    // A second signal ends the wait for the requests in flight.
    std::thread([&srv, stop_signals] {
      int again = 0;
      sigwait(&stop_signals, &again);
      srv.cut_grace_short();
    }).detach();
    srv.shutdown(cl.shutdown_timeout);
    pipe.shutdown();
    note("stopped");
  } catch (const mii::error& e) {
    note(e.what());
    return 1;
  }
  return 0;
}
