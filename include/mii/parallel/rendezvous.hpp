// The bootstrap of a multi-process job: rank 0 hands a small blob (the NCCL unique id) to every
// other rank over TCP. Rank 0 listens on the rendezvous address, the others connect, retrying
// while rank 0 is still starting, until a deadline; then each side fails with a message naming
// the address, the elapsed time and who is missing, instead of hanging.
#pragma once
#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace mii::parallel {

struct rendezvous_point {
  std::string addr = "127.0.0.1";  // host name or IPv4 address rank 0 listens on
  int port = 29500;
};

// Rank 0 passes `blob` and returns it once all `world_size - 1` other ranks have received it;
// the other ranks pass an empty span and return rank 0's blob. World size 1 returns `blob`.
std::vector<std::byte> share_from_rank0(const rendezvous_point& where, int rank, int world_size,
                                        std::span<const std::byte> blob, std::chrono::milliseconds timeout);

}  // namespace mii::parallel
