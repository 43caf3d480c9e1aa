// Run-time head_dim -> compile-time kernel instantiation, in one place. A head_dim listed here
// has tensor-core attention kernels (kernels/attention_hd<D>.cu); any other head_dim takes the
// generic fallback kernel. Adding a head_dim: add it to the list and add attention_hd<D>.cu.
#pragma once
#include <type_traits>
#include <utility>

namespace mii::kernels {

template <int... Dims>
struct head_dim_list {};

using tensor_core_head_dims = head_dim_list<64, 80, 96, 128, 256>;
// Head dims with a soft-capped tensor-core variant (kernels/attention_hd<D>_softcap.cu): Gemma 2's
// 256 (2B, 9B) and 128 (27B). Soft-capped attention at other head dims takes the fallback kernel.
using soft_capped_head_dims = head_dim_list<128, 256>;

namespace detail {
template <class F, int... Dims>
bool dispatch_head_dim_impl(int head_dim, F&& f, head_dim_list<Dims...>) {
  return ((head_dim == Dims ? (f(std::integral_constant<int, Dims>{}), true) : false) || ...);
}
}  // namespace detail

// Calls f(std::integral_constant<int, D>{}) when head_dim is one of `dims` (the tensor-core head
// dims unless given) and returns true; returns false (without calling f) otherwise.
template <class F, class List = tensor_core_head_dims>
bool dispatch_head_dim(int head_dim, F&& f, List dims = {}) {
  return detail::dispatch_head_dim_impl(head_dim, std::forward<F>(f), dims);
}

}  // namespace mii::kernels
