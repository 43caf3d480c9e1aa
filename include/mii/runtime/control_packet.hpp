// What the engine thread takes in before a step: new requests, cancellations, and whether to
// stop. Under tensor parallelism rank 0 decides it and sends it to every rank as int32 words (the
// element type every communicator moves), so that all schedulers see the same requests at the
// same step and stay in lockstep without further messages.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <mii/config.hpp>
#include <mii/runtime/request.hpp>

namespace mii::runtime {

struct cancel_order {
  std::uint64_t id = 0;
  generation_finish_reason why = generation_finish_reason::cancelled;  // or error (a stream callback threw)
  std::string message;
};

struct control_packet {
  bool stop = false;
  std::vector<cancel_order> cancels;
  std::vector<std::unique_ptr<request>> requests;

  bool empty() const { return !stop && cancels.empty() && requests.empty(); }
};

// The packet as words. Requests keep what decides their tokens (ids, limits, sampling, stop
// strings, prompt text); the detokenizer, stop matcher and channel are rebuilt by the receiver.
std::vector<std::int32_t> encode(const control_packet& p);
// Throws mii::error on words that are not a packet (a desynchronized communicator).
control_packet decode(std::span<const std::int32_t> words);

}  // namespace mii::runtime
