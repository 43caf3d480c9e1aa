// Values the ranks must agree on before running in lockstep, settled with one all_gather: a
// sampling seed drawn at random (rank 0's wins) and a KV cache size measured from each GPU's
// free memory (the smallest wins). Everything else the ranks decide is a function of identical
// inputs, so it needs no message.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace mii::parallel {

// Every rank's `value`, in rank order. A collective: all ranks must call it. Moves through the
// backend's memory because that is where the communicator works (device memory for nccl).
template <class Backend, class Comm>
std::vector<std::int64_t> gather_values(typename Backend::context& ctx, Comm& comm, std::int64_t value) {
  if (comm.size() == 1) return {value};
  // As two 32-bit halves: int32 is the integer type every communicator moves.
  const auto bits = std::uint64_t(value);
  const std::int32_t mine[2] = {std::int32_t(std::uint32_t(bits >> 32)), std::int32_t(std::uint32_t(bits))};
  auto send = Backend::template alloc<std::int32_t>(ctx, 2);
  auto recv = Backend::template alloc<std::int32_t>(ctx, 2 * std::int64_t(comm.size()));
  Backend::copy_to_device(ctx, send.data(), mine, 2);
  comm.all_gather(ctx, send.data(), 2, recv.data());
  std::vector<std::int32_t> halves(2 * std::size_t(comm.size()));
  Backend::copy_to_host(ctx, halves.data(), recv.data(), std::int64_t(halves.size()));
  ctx.synchronize();
  std::vector<std::int64_t> out;
  for (std::size_t r = 0; r < std::size_t(comm.size()); ++r)
    out.push_back(std::int64_t(std::uint64_t(std::uint32_t(halves[2 * r])) << 32 | std::uint32_t(halves[2 * r + 1])));
  return out;
}

template <class Backend, class Comm>
std::int64_t rank0_value(typename Backend::context& ctx, Comm& comm, std::int64_t value) {
  return gather_values<Backend>(ctx, comm, value).front();
}

template <class Backend, class Comm>
std::int64_t min_value(typename Backend::context& ctx, Comm& comm, std::int64_t value) {
  const auto all = gather_values<Backend>(ctx, comm, value);
  return *std::min_element(all.begin(), all.end());
}

// Rank 0's words, on every rank (a collective; the other ranks' `words` are ignored). Sizes are
// agreed first, so ranks need not know the length in advance.
template <class Backend, class Comm>
std::vector<std::int32_t> broadcast_words(typename Backend::context& ctx, Comm& comm, std::vector<std::int32_t> words) {
  if (comm.size() == 1) return words;
  const std::int64_t n = rank0_value<Backend>(ctx, comm, std::int64_t(words.size()));
  if (n == 0) return {};
  words.resize(std::size_t(n), 0);
  auto send = Backend::template alloc<std::int32_t>(ctx, n);
  auto recv = Backend::template alloc<std::int32_t>(ctx, n * comm.size());
  Backend::copy_to_device(ctx, send.data(), words.data(), n);
  comm.all_gather(ctx, send.data(), n, recv.data());
  Backend::copy_to_host(ctx, words.data(), recv.data(), n);  // rank 0's part comes first
  ctx.synchronize();
  return words;
}

}  // namespace mii::parallel
