// The CUDA backend: the host backend's op contract (backend/host/host_backend.hpp) in bf16 or
// fp16 on an NVIDIA GPU. Everything here compiles without CUDA headers (plain g++ user code
// instantiates transformer<Model, cuda<bf16_t>>); kernels live in kernels/*.cu, explicitly
// instantiated for the (dtype, head_dim, ...) combinations dispatched in kernels/dispatch.cuh.
//
// All ops are asynchronous on the context's stream; only copy_to_host/sample/synchronize wait.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include <mii/backend/fp8.hpp>
#include <mii/backend/kv_fp8.hpp>
#include <mii/backend/moe_weights.hpp>
#include <mii/backend/step_batch.hpp>
#include <mii/dtype.hpp>
#include <mii/layers/policies.hpp>
#include <mii/model/weight_plan.hpp>
#include <mii/runtime/sampling.hpp>
#include <mii/runtime/step_builder.hpp>

namespace mii::backend {

namespace cuda_detail {
void* device_alloc(std::size_t bytes);   // throws mii::error naming the size and free memory
void device_free(void* p) noexcept;

// Owning device memory (move-only). Default-constructed: empty. A buffer made from a slice of a
// larger allocation (the weight arena) shares that allocation's ownership instead: the
// allocation is freed with the last buffer that holds a slice of it.
template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::int64_t n) : data_(static_cast<T*>(device_alloc(std::size_t(n) * sizeof(T)))), size_(n) {}
  device_buffer(T* slice, std::int64_t n, std::shared_ptr<void> owner) : data_(slice), size_(n), owner_(std::move(owner)) {}
  device_buffer(device_buffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), owner_(std::move(o.owner_)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      owner_ = std::move(o.owner_);
    }
    return *this;
  }
  ~device_buffer() { release(); }
  T* data() { return data_; }
  const T* data() const { return data_; }
  std::int64_t size() const { return size_; }
  bool empty() const { return data_ == nullptr; }

 private:
  void release() noexcept {
    if (owner_) owner_.reset();
    else device_free(data_);
  }
  T* data_ = nullptr;
  std::int64_t size_ = 0;
  std::shared_ptr<void> owner_;  // set for a slice: the allocation it lives in
};
// An instantiated CUDA graph (move-only). Empty when default-constructed.
class graph_exec {
 public:
  graph_exec() = default;
  graph_exec(graph_exec&& o) noexcept : exec_(std::exchange(o.exec_, nullptr)) {}
  graph_exec& operator=(graph_exec&& o) noexcept;
  ~graph_exec();
  bool empty() const { return exec_ == nullptr; }
  void* handle() const { return exec_; }  // cudaGraphExec_t
  explicit graph_exec(void* exec) : exec_(exec) {}

 private:
  void* exec_ = nullptr;
};
}  // namespace cuda_detail

// DType: bf16_t or fp16_t (layout-compatible with __nv_bfloat16 / __half).
template <class DType>
struct cuda {
  using compute_t = DType;
  static constexpr std::string_view name = "cuda";
  static constexpr dtype compute_dtype = DType::tag;

  // One per engine (per rank): the device, a stream, cuBLASLt handle and workspace, pinned
  // staging memory for weight uploads and step metadata, the sampler's scratch.
  class context {
   public:
    explicit context(int device = 0);
    ~context();
    context(const context&) = delete;
    context& operator=(const context&) = delete;
    void synchronize();
    int device() const;
    struct state;  // defined in src/cuda; kernels reach the stream and handles through it
    state& impl() { return *state_; }

   private:
    std::unique_ptr<state> state_;
  };

  // Makes the context's device current on the calling thread (the engine thread calls it once).
  static void bind_thread(context&);

  template <class T>
  using buffer = cuda_detail::device_buffer<T>;
  template <class T>
  static buffer<T> alloc(context&, std::int64_t n) { return buffer<T>(n); }
  static void fill(context&, float* data, std::int64_t n, float value);
  template <class T>
  static void copy_to_device(context&, T* dst, const T* src, std::int64_t n);
  template <class T>
  static void copy_to_host(context&, T* dst, const T* src, std::int64_t n);

  using T = DType;
  static void embed(context&, const step_batch&, const T* table, std::int64_t vocab_begin, std::int64_t local_vocab,
                    std::int64_t dim, T* out);
  static void add_positions(context&, const step_batch&, const T* table, int offset, std::int64_t dim, T* out);
  template <layers::norm_kind K>
  static void add_norm(context&, T* residual, const T* delta, const T* w, const T* bias, float eps, std::int64_t rows,
                       std::int64_t cols, T* out);
  static void scale(context&, T* x, std::int64_t n, float factor);  // factor rounded to T first
  static void softcap(context&, float* x, std::int64_t n, float cap);
  static void linear(context&, const T* x, std::int64_t rows, std::int64_t in, const T* w, std::int64_t out,
                     const T* bias, T* y, bool accumulate = false);
  static void linear_f32(context&, const T* x, std::int64_t rows, std::int64_t in, const T* w, std::int64_t out,
                         const T* bias, float* y);
  // FP8 linear and its quantization step, as the host backend's (backend/fp8.hpp).
  static void linear_fp8(context&, const T* x, std::int64_t rows, std::int64_t in, fp8_weight w, std::int64_t out,
                         const T* bias, T* y, bool accumulate, fp8_scratch scratch);
  static void quantize_fp8(context&, const T* x, std::int64_t rows, std::int64_t cols, fp8_scratch out);
  template <layers::rotary_style S>
  static void rope_store_kv(context&, const step_batch&, T* qkv, const attention_shape&, const rope_table&,
                            kv_layer<T> cache);
  static void attention(context&, const step_batch&, const T* qkv, const attention_shape&, kv_layer<const T> cache,
                        T* out);
  // Over an FP8 KV cache (backend/kv_fp8.hpp), as the host backend's.
  template <layers::rotary_style S>
  static void rope_store_kv(context&, const step_batch&, T* qkv, const attention_shape&, const rope_table&,
                            fp8_kv_layer<std::uint8_t> cache);
  static void attention(context&, const step_batch&, const T* qkv, const attention_shape&,
                        fp8_kv_layer<const std::uint8_t> cache, T* out);
  template <layers::activation A>
  static void gated_act(context&, const T* gate_up, std::int64_t rows, std::int64_t f, T* out);
  template <layers::activation A>
  static void act(context&, T* x, std::int64_t rows, std::int64_t cols);
  static void gather_rows(context&, const T* x, std::int64_t cols, const std::int32_t* rows, std::int32_t n, T* out);
  static void add(context&, T* x, const T* d, std::int64_t n);
  static void copy_2d(context&, float* dst, std::int64_t dst_pitch, const float* src, std::int64_t src_pitch,
                      std::int64_t width, std::int64_t height);
  template <layers::activation A>
  static void moe(context&, const T* x, std::int64_t rows, std::int64_t hidden, const moe_weights<T>& w, T* out);
  // The most rows moe() runs entirely on the device for these weights (no wait for the host, so
  // CUDA graphs may capture it): 8 (MII_CUDA_MOE_DEVICE_ROWS), or 0 where the expert-indexed
  // GEMVs cannot take them (more than 256 experts, unaligned rows, FP8 experts of differing or
  // generic block layouts).
  static std::int64_t moe_device_rows(context&, const moe_weights<T>& w, std::int64_t hidden);
  static void head_rms_norm(context&, T* qkv, std::int64_t rows, const attention_shape& as, const T* q_w,
                            const T* k_w, float eps, float weight_offset);

  // Copies whole KV blocks (keys and values of every layer) in list order, as the host backend's.
  static void copy_kv_blocks(context&, std::uint8_t* kv, std::int64_t layers, std::int64_t blocks_per_layer,
                             std::int64_t block_bytes, std::span<const block_copy> copies);

  static step_batch upload_step(context&, const runtime::step_builder&);
  // Grows the step-metadata buffers to hold `elements` int32 values now, so that later steps
  // (and CUDA graphs captured reading them) keep the same device address.
  static void reserve_step(context&, std::size_t elements);

  // CUDA graphs: everything issued on the context's stream between graph_begin and graph_end is
  // captured, not run; graph_launch replays it. Pointers and launch shapes are frozen at capture.
  using graph = cuda_detail::graph_exec;
  static void graph_begin(context&);
  static graph graph_end(context&);
  static void graph_launch(context&, const graph&);
  static void sample(context&, const float* logits, std::int32_t rows, std::int64_t vocab,
                     std::span<const runtime::sample_params> params, std::span<const std::int32_t> eos_ids,
                     std::int32_t* out);
  // Around sampling, as the host backend's (host_backend.hpp): log-probability summaries, edits
  // (penalties, biases) in place, single logits read back. Outputs in host memory; each call
  // waits for its results.
  static void summarize_rows(context&, const float* logits, std::int64_t vocab, std::span<const std::int32_t> rows,
                             std::int32_t top_n, float* lse, std::int32_t* top_ids, float* top_logits);
  static void edit_logits(context&, float* logits, std::int64_t vocab, std::span<const runtime::logit_edit> edits,
                          float* replaced);
  static void gather_logits(context&, const float* logits, std::int64_t vocab, std::span<const std::int32_t> rows,
                            std::span<const std::int32_t> tokens, float* out);
  // memory_fraction of the device memory free now (after weights and workspace).
  static std::size_t kv_budget_bytes(context&, double memory_fraction);
  // Weights. reserve_weights makes one allocation for every entry of the plan; the load() calls
  // that follow take their buffers from it in any order (a load that does not fit allocates its
  // own). load() reads the entry's rows on several host threads into pinned staging buffers
  // (pread from the checkpoint file where the rows are contiguous), copies them on two copy
  // streams and converts dtypes on the device; it returns once every copy is queued, and work
  // issued later on the context's stream runs after them. MII_LOAD_THREADS sets the number of
  // reading threads (default: min(8, cores)).
  static void reserve_weights(context&, const model::weight_plan& plan);
  static buffer<T> load(context&, const model::plan_entry& e);
  // An FP8 entry (plan_entry::fp8): the entry's values as fp32 (checkpoint or synthetic),
  // quantized on the device row by row exactly as the host backend's load_fp8 does (same bytes).
  using fp8_buffers = fp8_weight_buffers<buffer>;
  static fp8_buffers load_fp8(context&, const model::plan_entry& e);
};

}  // namespace mii::backend
