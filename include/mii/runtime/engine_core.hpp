// What the async front (async_engine.hpp) needs from an engine, whatever its model, backend and
// communicator: add and cancel requests, run one step, and move rank 0's decisions to the other
// ranks. engine<Model, Backend, Comm> implements it; every member but the rank queries and
// stats() is called from the engine thread only.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <mii/config.hpp>
#include <mii/runtime/control_packet.hpp>
#include <mii/runtime/request.hpp>

namespace mii::runtime {

class engine_core {
 public:
  virtual ~engine_core() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Whether this rank hands out responses and stream events (rank 0, or all with all_rank_output).
  virtual bool output_rank() const = 0;

  // Called once on the engine thread before anything else (the CUDA device is per thread).
  virtual void bind_thread() = 0;
  // Completes a request decoded from rank 0's packet: detokenizer and stop matcher.
  virtual void adopt(request& r) const = 0;
  // Takes a request (queued until max_tracked_sequences allows it into the scheduler). A request
  // already done (it failed before running) is answered at the next step.
  virtual void add(std::unique_ptr<request> r) = 0;
  // Ends a request now (its KV blocks are freed); unknown or finished ids are ignored.
  virtual void cancel(const cancel_order& c) = 0;
  // Ends every request (shutdown, or a step that failed and left the batch unusable).
  virtual void cancel_all(generation_finish_reason why, const std::string& message) = 0;
  virtual bool has_work() const = 0;
  // Admits, schedules, runs one forward pass, samples, applies stop criteria, streams, and
  // answers finished requests through their channels.
  virtual void step() = 0;
  // Requests whose stream callback threw during the last steps: to be cancelled with an error
  // (through rank 0's packet, so that every rank ends them at the same step).
  virtual std::vector<cancel_order> take_callback_failures() = 0;
  // Collective: every rank gets rank 0's words.
  virtual std::vector<std::int32_t> broadcast(std::vector<std::int32_t> words) = 0;
  // Any thread: the counters as of the last step.
  virtual engine_stats stats() const = 0;
};

}  // namespace mii::runtime
