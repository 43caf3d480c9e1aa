// The cuda backend's context (device, stream, cuBLASLt handle, staging memory), device memory,
// host <-> device copies, step metadata upload and weight upload.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/check.hpp"
#include "fp8.cuh"
#include "synthetic.cuh"
#include "cuda/context_state.hpp"

namespace mii::backend {

// ---- device memory -------------------------------------------------------------------------

namespace cuda_detail {

void* device_alloc(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // an allocation failure is not sticky; keep later calls clean
    std::size_t free_bytes = 0, total_bytes = 0;
    int device = -1;
    (void)cudaGetDevice(&device);
    const cudaError_t info = cudaMemGetInfo(&free_bytes, &total_bytes);
    (void)cudaGetLastError();
    if (info != cudaSuccess)
      fail("cudaMalloc of ", bytes, " bytes failed on device ", device, ": ", cudaGetErrorString(err));
    fail("cudaMalloc of ", bytes, " bytes (", double(bytes) / double(1 << 20), " MiB) failed on device ", device, ": ",
         cudaGetErrorString(err), "; free ", double(free_bytes) / double(1 << 20), " MiB of ",
         double(total_bytes) / double(1 << 20), " MiB");
  }
  return p;
}

void device_free(void* p) noexcept {
  if (p) (void)cudaFree(p);
}

}  // namespace cuda_detail

void* device_scratch::reserve(std::size_t need) {
  if (need <= bytes && ptr) return ptr;
  release();
  const std::size_t grown = std::max(need, bytes + bytes / 2);
  ptr = cuda_detail::device_alloc(std::max<std::size_t>(grown, 256));
  bytes = std::max<std::size_t>(grown, 256);
  return ptr;
}
void device_scratch::release() noexcept {
  cuda_detail::device_free(ptr);
  ptr = nullptr;
  bytes = 0;
}

void* pinned_scratch::reserve(std::size_t need, cudaStream_t stream) {
  if (need <= bytes && ptr) return ptr;
  if (ptr) {
    MII_CUDA_CHECK(cudaStreamSynchronize(stream));  // a copy may still read the old block
    release();
  }
  const std::size_t grown = std::max<std::size_t>(std::max(need, bytes + bytes / 2), 4096);
  if (const cudaError_t err = cudaMallocHost(&ptr, grown); err != cudaSuccess) {
    (void)cudaGetLastError();
    ptr = nullptr;
    fail("cudaMallocHost of ", grown, " bytes of pinned staging memory failed: ", cudaGetErrorString(err));
  }
  bytes = grown;
  return ptr;
}
void pinned_scratch::release() noexcept {
  if (ptr) (void)cudaFreeHost(ptr);
  ptr = nullptr;
  bytes = 0;
}

cuda_context_state::~cuda_context_state() {
  // Nothing here may throw: this also runs when the constructor failed half way.
  if (stream) (void)cudaStreamSynchronize(stream);
  for (auto& [key, plan] : gemm_plans) {
    if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
    if (plan.w) cublasLtMatrixLayoutDestroy(plan.w);
    if (plan.x) cublasLtMatrixLayoutDestroy(plan.x);
    if (plan.y) cublasLtMatrixLayoutDestroy(plan.y);
  }
  for (device_scratch* s : {&sample_meta, &sample_keys, &sample_keys_sorted, &sample_ids, &sample_ids_sorted,
                            &sample_temp, &sample_out, &moe_logits, &moe_topk_ids, &moe_topk_w, &moe_order, &moe_x,
                            &moe_gate_up, &moe_inner, &moe_y, &moe_device, &fp8_gemm_out, &fp8_staging})
    s->release();
  sample_host.release();
  moe_host.release();
  uploader.reset();  // joins its threads; its copies finish first
  arena.reset();
  if (step_copied) (void)cudaEventDestroy(step_copied);
  if (step_host) (void)cudaFreeHost(step_host);
  cuda_detail::device_free(step_device);
  cuda_detail::device_free(workspace);
  if (lt) cublasLtDestroy(lt);
  if (stream) (void)cudaStreamDestroy(stream);
  (void)cudaGetLastError();
}

// ---- context ---------------------------------------------------------------------------------

namespace {

// A row-count setting of docs/environment.md: 0..most, or `otherwise` when unset or empty.
int row_count_from_environment(const char* name, int most, int otherwise) {
  const char* v = std::getenv(name);
  if (!v || !*v) return otherwise;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < 0 || n > most) fail(name, " must be a row count in 0..", most, ", got \"", v, "\"");
  return int(n);
}

}  // namespace

template <class DType>
cuda<DType>::context::context(int device) : state_(std::make_unique<state>()) {
  state& st = *state_;
  int count = 0;
  MII_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (device < 0 || device >= count) fail("CUDA device ", device, " requested but ", count, " device(s) are visible");
  st.device = device;
  MII_CUDA_CHECK(cudaSetDevice(device));
  MII_CUDA_CHECK(cudaStreamCreateWithFlags(&st.stream, cudaStreamNonBlocking));
  MII_CUBLAS_CHECK(cublasLtCreate(&st.lt));
  // 32 MiB: what cuBLAS recommends for Hopper (split-K and stream-K algorithms need it).
  st.workspace_bytes = std::size_t(32) << 20;
  st.workspace = cuda_detail::device_alloc(st.workspace_bytes);
  MII_CUDA_CHECK(cudaEventCreateWithFlags(&st.step_copied, cudaEventDisableTiming));
  constexpr int gemv_rows = kernels::fp8_gemv_rows;
  st.gemv_max_rows = row_count_from_environment("MII_CUDA_GEMV_MAX_ROWS", 1, st.gemv_max_rows);
  st.fp8_gemv_max_rows = row_count_from_environment("MII_CUDA_FP8_GEMV_MAX_ROWS", gemv_rows, st.fp8_gemv_max_rows);
  st.moe_device_max_rows = row_count_from_environment("MII_CUDA_MOE_DEVICE_ROWS", gemv_rows, st.moe_device_max_rows);
  if (const char* v = std::getenv("MII_CUDA_PDL"); v && *v) {
    const std::string mode = v;
    if (mode != "0" && mode != "1") fail("MII_CUDA_PDL must be 0 (GEMVs launched in the usual order) or 1, got \"", v, "\"");
    st.gemv_programmatic = mode == "1";
  }
  if (const char* v = std::getenv("MII_CUDA_FP8_GEMM"); v && *v) {
    const std::string mode = v;
    if (mode != "outer" && mode != "fallback")
      fail("MII_CUDA_FP8_GEMM must be \"outer\" (cuBLASLt applies the FP8 scales; the default) or \"fallback\" "
           "(unit-scale FP8 GEMM into fp32, then a scaling kernel), got \"", v, "\"");
    st.fp8_gemm_fallback = mode == "fallback";
  }
}

template <class DType>
cuda<DType>::context::~context() = default;

template <class DType>
void cuda<DType>::context::synchronize() {
  MII_CUDA_CHECK(cudaStreamSynchronize(state_->stream));
}

template <class DType>
int cuda<DType>::context::device() const {
  return state_->device;
}

template <class DType>
void cuda<DType>::bind_thread(context& ctx) {
  MII_CUDA_CHECK(cudaSetDevice(ctx.device()));
}

// ---- copies ----------------------------------------------------------------------------------

// (U, not T: the class's own alias T would hide the member template's parameter in g++.)
template <class DType>
template <class U>
void cuda<DType>::copy_to_device(context& ctx, U* dst, const U* src, std::int64_t n) {
  if (n <= 0) return;
  MII_CUDA_CHECK(cudaMemcpyAsync(dst, src, std::size_t(n) * sizeof(U), cudaMemcpyDefault, ctx.impl().stream));
}

template <class DType>
template <class U>
void cuda<DType>::copy_to_host(context& ctx, U* dst, const U* src, std::int64_t n) {
  if (n <= 0) return;
  MII_CUDA_CHECK(cudaMemcpyAsync(dst, src, std::size_t(n) * sizeof(U), cudaMemcpyDefault, ctx.impl().stream));
}

template <class DType>
void cuda<DType>::reserve_step(context& ctx, std::size_t n) {
  auto& st = ctx.impl();
  MII_CUDA_CHECK(cudaEventSynchronize(st.step_copied));
  if (n > st.step_capacity) {
    MII_CUDA_CHECK(cudaStreamSynchronize(st.stream));  // kernels of the last step may still read step_device
    if (st.step_host) MII_CUDA_CHECK(cudaFreeHost(st.step_host));
    st.step_host = nullptr;
    cuda_detail::device_free(st.step_device);
    st.step_device = nullptr;
    st.step_capacity = 0;
    const std::size_t capacity = std::max<std::size_t>(n + n / 2, 4096);
    MII_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&st.step_host), capacity * sizeof(std::int32_t)));
    st.step_device = static_cast<std::int32_t*>(cuda_detail::device_alloc(capacity * sizeof(std::int32_t)));
    st.step_capacity = capacity;
  }
}

template <class DType>
step_batch cuda<DType>::upload_step(context& ctx, const runtime::step_builder& builder) {
  auto& st = ctx.impl();
  const auto& data = builder.data();
  const std::size_t n = data.size();
  // The previous step's copy must have left the pinned buffer before it is overwritten.
  reserve_step(ctx, n);
  if (n > 0) {
    std::memcpy(st.step_host, data.data(), n * sizeof(std::int32_t));
    MII_CUDA_CHECK(cudaMemcpyAsync(st.step_device, st.step_host, n * sizeof(std::int32_t), cudaMemcpyHostToDevice,
                                   st.stream));
    MII_CUDA_CHECK(cudaEventRecord(st.step_copied, st.stream));
  }
  return builder.bind(st.step_device);
}

template <class DType>
std::size_t cuda<DType>::kv_budget_bytes(context& ctx, double memory_fraction) {
  MII_CUDA_CHECK(cudaSetDevice(ctx.device()));
  std::size_t free_bytes = 0, total_bytes = 0;
  MII_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return std::size_t(double(free_bytes) * memory_fraction);
}

// ---- weights -----------------------------------------------------------------------------------

namespace cuda_detail {
graph_exec& graph_exec::operator=(graph_exec&& o) noexcept {
  if (this != &o) {
    if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
    exec_ = std::exchange(o.exec_, nullptr);
  }
  return *this;
}
graph_exec::~graph_exec() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
}
}  // namespace cuda_detail

namespace {

constexpr std::size_t arena_alignment = 256;  // what cudaMalloc gives: vector loads and cuBLASLt alike
std::size_t arena_bytes(std::int64_t elements, std::size_t esize) {
  return (std::size_t(elements) * esize + arena_alignment - 1) / arena_alignment * arena_alignment;
}

// n elements from the weight arena, or an allocation of their own when it has no room left.
template <class U>
cuda_detail::device_buffer<U> take_weight_buffer(cuda_context_state& st, std::int64_t n) {
  if (const std::size_t need = arena_bytes(n, sizeof(U)); st.arena && need <= st.arena_left) {
    cuda_detail::device_buffer<U> b(reinterpret_cast<U*>(st.arena_next), n, st.arena);
    st.arena_next += need;
    st.arena_left -= need;
    if (st.arena_left == 0) st.arena.reset();  // the buffers own it now
    return b;
  }
  return cuda_detail::device_buffer<U>(n);
}

// load_fp8 goes through the fp32 staging this many whole rows at a time.
std::int64_t fp8_rows_per_piece(const cuda_context_state& st, const model::plan_entry& e) {
  return std::clamp<std::int64_t>(st.fp8_staging_elements / std::max<std::int64_t>(e.cols, 1), 1, e.rows);
}

// How load_fp8 stores an FP8 entry's scales (backend/fp8.hpp): a pre-quantized block-wise entry
// its blocks, [scale_rows][scale_ld] with scale_ld the groups rounded up to a multiple of 4 (the
// row stride cuBLASLt's BLK128x128_32F scales need, src/cuda/gemm_fp8.cu; padding zero); every
// other entry one scale per row (quantize-on-load quantizes per row).
struct fp8_scale_layout {
  fp8_blocks blocks{};
  std::int64_t ld = 1, count = 0;
};
fp8_scale_layout fp8_scales_of(const model::plan_entry& e) {
  if (!e.prequantized() || e.fp8_blocks.per_row()) return {fp8_blocks{}, 1, e.rows};
  const std::int64_t ld = (e.fp8_blocks.groups(e.cols) + 3) / 4 * 4;
  return {e.fp8_blocks, ld, e.fp8_blocks.scale_rows(e.rows) * ld};
}

// Rows [first, first + n) of an entry, as an entry of their own.
model::plan_entry entry_rows(const model::plan_entry& e, std::int64_t first, std::int64_t n) {
  model::plan_entry part = e;
  part.runs.clear();
  part.rows = n;
  std::int64_t at = 0;  // canonical row of the current run's first row
  for (const model::row_run& r : e.runs) {
    const std::int64_t begin = std::max(first, at), end = std::min(first + n, at + r.count);
    if (begin < end) part.runs.push_back({r.tensor, r.row + (begin - at), end - begin});
    at += r.count;
  }
  return part;
}

}  // namespace

template <class DType>
void cuda<DType>::reserve_weights(context& ctx, const model::weight_plan& plan) {
  auto& st = ctx.impl();
  st.arena.reset();
  st.arena_next = nullptr;
  st.arena_left = 0;
  std::size_t bytes = 0;
  std::int64_t staging = 0;  // fp32 elements of load_fp8's largest piece
  bool read = false, convert = false;
  auto add = [&](const model::plan_entry& e) {
    if (!e.present() || e.numel() == 0) return;
    if (e.fp8) {  // load_fp8: e4m3 bytes and fp32 scales, through the fp32 staging
      bytes += arena_bytes(e.numel(), 1) + arena_bytes(fp8_scales_of(e).count, sizeof(float)) +
               (e.input_scales.empty() ? 0 : arena_bytes(1, sizeof(float)));
      staging = std::max(staging, fp8_rows_per_piece(st, e) * e.cols);
    } else {
      bytes += arena_bytes(e.numel(), sizeof(DType));
    }
    if (e.synthetic()) return;
    read = true;
    const dtype to = e.fp8 ? dtype::f32 : DType::tag;
    for (const auto& r : e.runs) convert |= r.tensor->type != to;
  };
  for (const auto& e : plan.globals) add(e);
  for (const auto& l : plan.layers)
    for (const auto& e : l) add(e);
  for (const auto* group : {&plan.expert_up, &plan.expert_down})
    for (const auto& l : *group)
      for (const auto& e : l) add(e);
  if (bytes == 0) return;
  void* base = cuda_detail::device_alloc(bytes);
  st.arena = std::shared_ptr<void>(base, [](void* p) { cuda_detail::device_free(p); });
  st.arena_next = static_cast<std::byte*>(base);
  st.arena_left = bytes;
  // Everything that allocates is done before the first copy starts: a device or pinned
  // allocation while copies run may wait for them.
  if (staging > 0) st.fp8_staging.reserve(std::size_t(staging) * sizeof(float));
  if (read && !st.uploader)
    st.uploader = std::make_unique<weight_uploader>(st.device, load_threads_from_environment(), st.upload_slot_bytes);
  if (convert) st.uploader->prepare_conversion();
}

template <class DType>
typename cuda<DType>::template buffer<DType> cuda<DType>::load(context& ctx, const model::plan_entry& e) {
  auto& st = ctx.impl();
  if (e.numel() == 0) return {};
  buffer<DType> dst = take_weight_buffer<DType>(st, e.numel());
  if (e.synthetic()) {  // random weights: made on the device, nothing to read or copy
    kernels::fill_synthetic(dst.data(), e.numel(), e.synthetic_key(), e.synthetic_constant(), e.vector, st.stream);
    return dst;
  }
  if (!st.uploader)
    st.uploader = std::make_unique<weight_uploader>(st.device, load_threads_from_environment(), st.upload_slot_bytes);
  st.uploader->upload(e, DType::tag, dst.data(), st.stream);
  return dst;
}

template <class DType>
typename cuda<DType>::fp8_buffers cuda<DType>::load_fp8(context& ctx, const model::plan_entry& e) {
  auto& st = ctx.impl();
  if (e.vector) fail("internal: ", e.what, " is a vector and cannot be stored as FP8");
  if (e.numel() == 0) return {};
  // e4m3 tensor-core instructions (the FP8 GEMV, cuBLASLt's FP8 GEMM) start with Ada (8.9).
  int major = 0, minor = 0;
  MII_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, st.device));
  MII_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, st.device));
  if (major * 10 + minor < 89)
    fail("FP8 weights (model_config.quantization = \"fp8\" or an FP8 checkpoint) need a GPU of compute capability 8.9 "
         "or newer (Ada, Hopper); CUDA device ", st.device, " is ", major, ".", minor);
  const fp8_scale_layout layout = fp8_scales_of(e);
  fp8_buffers b{take_weight_buffer<std::uint8_t>(st, e.numel()), take_weight_buffer<float>(st, layout.count)};
  b.blocks = layout.blocks;
  b.scale_ld = layout.ld;
  if (!e.synthetic() && !st.uploader)
    st.uploader = std::make_unique<weight_uploader>(st.device, load_threads_from_environment(), st.upload_slot_bytes);
  if (e.prequantized()) {
    // A pre-quantized checkpoint: its e4m3 bytes copied as they are (no conversion: same dtype),
    // its scales made on the host (a per-tensor scale repeated per row; block scales in rows of
    // layout.ld) and copied behind them (from pageable memory: staged before the call returns,
    // so `scales` may go).
    st.uploader->upload(e, dtype::f8_e4m3, b.data.data(), st.stream);
    std::vector<float> scales(static_cast<std::size_t>(layout.count));
    model::materialize_fp8_scales(e, scales.data(), layout.blocks.per_row() ? 0 : layout.ld);
    copy_to_device(ctx, b.scale.data(), scales.data(), layout.count);
    if (!e.input_scales.empty()) {  // the static input scale (compressed-tensors "dynamic": false)
      const float input_scale = model::static_input_scale(e);
      b.input_scale = take_weight_buffer<float>(st, 1);
      copy_to_device(ctx, b.input_scale.data(), &input_scale, 1);
    }
    return b;
  }
  // The values as fp32 (exact from any checkpoint dtype, as the host's load), a piece of whole
  // rows at a time, each quantized on the stream before the next is written into the staging:
  // the uploader's copies wait for the stream (upload's `before`), the synthetic fill is on it.
  const std::int64_t per = fp8_rows_per_piece(st, e);
  float* staging = st.fp8_staging.template as<float>(std::size_t(per * e.cols));
  for (std::int64_t first = 0; first < e.rows; first += per) {
    const std::int64_t n = std::min(per, e.rows - first);
    if (e.synthetic())
      kernels::fill_synthetic(staging, n * e.cols, e.synthetic_key(), e.synthetic_constant(), false, st.stream,
                              first * e.cols);
    else
      st.uploader->upload(entry_rows(e, first, n), dtype::f32, staging, st.stream, st.stream);
    kernels::quantize_fp8_rows(staging, n, e.cols, b.data.data() + first * e.cols, b.scale.data() + first, st.stream);
  }
  return b;
}

// ---- CUDA graphs -------------------------------------------------------------------------------

template <class DType>
void cuda<DType>::graph_begin(context& ctx) {
  // Thread-local mode: other threads of the process (tensor-parallel ranks as threads, the
  // application) may keep using CUDA while this stream is being captured.
  MII_CUDA_CHECK(cudaStreamBeginCapture(ctx.impl().stream, cudaStreamCaptureModeThreadLocal));
}

template <class DType>
cuda_detail::graph_exec cuda<DType>::graph_end(context& ctx) {
  cudaGraph_t g = nullptr;
  MII_CUDA_CHECK(cudaStreamEndCapture(ctx.impl().stream, &g));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, g, 0);
  MII_CUDA_CHECK(cudaGraphDestroy(g));
  MII_CUDA_CHECK(err);
  return cuda_detail::graph_exec(exec);
}

template <class DType>
void cuda<DType>::graph_launch(context& ctx, const graph& g) {
  MII_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(g.handle()), ctx.impl().stream));
}

// ---- instantiations ---------------------------------------------------------------------------

template struct cuda<bf16_t>;
template struct cuda<fp16_t>;

#define MII_CUDA_COPIES(D, T)                                                                \
  template void cuda<D>::copy_to_device<T>(context&, T*, const T*, std::int64_t);            \
  template void cuda<D>::copy_to_host<T>(context&, T*, const T*, std::int64_t);
MII_CUDA_COPIES(bf16_t, bf16_t)
MII_CUDA_COPIES(bf16_t, float)
MII_CUDA_COPIES(bf16_t, std::int32_t)
MII_CUDA_COPIES(bf16_t, std::uint8_t)  // FP8 weights and activations (backend/fp8.hpp)
MII_CUDA_COPIES(fp16_t, fp16_t)
MII_CUDA_COPIES(fp16_t, float)
MII_CUDA_COPIES(fp16_t, std::int32_t)
MII_CUDA_COPIES(fp16_t, std::uint8_t)
#undef MII_CUDA_COPIES

}  // namespace mii::backend
