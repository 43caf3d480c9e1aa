// The async front: one thread owns an engine and steps it continuously; any number of threads
// submit requests and get handles back at once. New requests join the running batch at the
// next step (continuous batching under the engine's Dynamic SplitFuse budgets); a cancelled
// request leaves at the next step and its KV blocks are free for the step after.
//
// Tensor parallelism: rank 0 decides. Before each step its thread packs what arrived (new
// requests, cancellations, stop) into a control packet and every rank's thread receives the same
// packet (engine_core::broadcast), so all schedulers take the same decisions. Requests submitted
// on other ranks are not run from their own arguments: the n-th request submitted on rank k is
// matched with the n-th request rank 0 sent (the ranks make the same calls in the same order,
// as MII asks of tensor-parallel programs), and gets that request's response. A rank that makes
// no calls at all runs follow() instead.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include <mii/config.hpp>
#include <mii/runtime/engine_core.hpp>
#include <mii/runtime/request_channel.hpp>

namespace mii::runtime {

class async_engine {
 public:
  // Starts the engine thread. `core` must outlive this object.
  explicit async_engine(engine_core& core);
  // stop(), then joins.
  ~async_engine();
  async_engine(const async_engine&) = delete;
  async_engine& operator=(const async_engine&) = delete;

  // Any thread. `r` comes from the engine's make_request (validated); its id is assigned here.
  // `stream` runs on the engine thread for every delta and once at the end (keep it short; it
  // may cancel its own request, but must not wait for another request of this engine).
  request_handle submit(std::unique_ptr<request> r, stream_callback stream);
  // A snapshot: the engine's counters plus requests still in the submission queue.
  engine_stats stats() const;
  // Ends every request still running (finish_reason cancelled) and stops the thread; later
  // submissions get an error response. Idempotent. Under tensor parallelism rank 0's stop stops
  // every rank.
  void stop();
  // Ranks other than 0 that submit nothing themselves: serve rank 0's requests until it stops.
  void follow();

 private:
  struct shared;
  void loop();
  void take_packet(control_packet& p, bool wait_for_work);
  void bind_remote(control_packet& p);

  engine_core& core_;
  std::shared_ptr<shared> s_;
  std::thread thread_;
};

}  // namespace mii::runtime
