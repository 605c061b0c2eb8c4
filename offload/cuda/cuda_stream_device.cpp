// CudaStreamDevice: cudaStream_t x3, cudaEvent_t, checked CUDA calls (Note [CUDA streams]).
#include "offload/cuda_stream_device.h"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include "offload/env_knob.h"
#include "offload/host_memory.h"
#include "zoff/error.h"
#include "zoff/log.h"

#define ZOFF_CUDA_CHECK(expr)                                                              \
  do {                                                                                     \
    cudaError_t zoff_err_ = (expr);                                                        \
    ZOFF_CHECK(zoff_err_ == cudaSuccess, #expr, " failed: ", cudaGetErrorString(zoff_err_)); \
  } while (0)

namespace zoff {

namespace {
// Makes device_index current for the scope (CUDA calls below act on the current device).
struct DeviceScope {
  explicit DeviceScope(int d) {
    ZOFF_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != d) ZOFF_CUDA_CHECK(cudaSetDevice(d));
    changed_ = prev_ != d;
  }
  ~DeviceScope() {
    if (changed_) (void)cudaSetDevice(prev_);
  }
  int prev_ = 0;
  bool changed_ = false;
};
}  // namespace

// Note [Partial uploads for measurement]
// ZOFF_DEBUG_H2D_PERCENT=P (1..99) copies only the first P% of every host-to-device copy of
// 1 MiB or more over the link; the rest (the tail) comes from a device buffer that holds the
// tail of the largest such copy seen so far (one device-to-device copy, ~0.1 ms). The tail's
// values are real weights of the same model, only not this block's, so the update kernels see
// ordinary data: the delta codes, their exceptions and the host apply keep their rates (with
// stale tails the first version of this knob made the delta overflow into dense write-backs).
// The model computes on wrong weights, so this is for timing only: it answers "what would the
// step take if the same blocks crossed the link in P% of the bytes" (a compressed transfer
// format) before such a format is built (docs/results.md, session 16). A warning says it is on.
CudaStreamDevice::CudaStreamDevice(int device_index) : device_index_(device_index) {
  h2d_percent_ = env_int("ZOFF_DEBUG_H2D_PERCENT", 1, 99, 100);
  if (h2d_percent_ != 100)
    log::warn("ZOFF_DEBUG_H2D_PERCENT={}: large uploads copy only {}% of their bytes (timing only; weights go stale)",
              h2d_percent_, h2d_percent_);
  int count = 0;
  ZOFF_CUDA_CHECK(cudaGetDeviceCount(&count));
  ZOFF_CHECK(device_index >= 0 && device_index < count, "CUDA device ", device_index,
             " does not exist (", count, " devices)");
  DeviceScope scope(device_index_);
  try {
    for (cudaStream_t& s : streams_) {
      ZOFF_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      note_offload_allocation();
    }
  } catch (...) {
    for (cudaStream_t s : streams_)
      if (s) (void)cudaStreamDestroy(s);
    throw;
  }
}

CudaStreamDevice::~CudaStreamDevice() {
  // No throwing from a destructor: log what fails.
  int prev = 0;
  (void)cudaGetDevice(&prev);
  (void)cudaSetDevice(device_index_);
  for (cudaStream_t s : streams_) {
    if (!s) continue;
    cudaError_t e = cudaStreamSynchronize(s);
    if (e != cudaSuccess) log::error("CudaStreamDevice: cudaStreamSynchronize: {}", cudaGetErrorString(e));
  }
  for (cudaEvent_t e : events_) (void)cudaEventDestroy(e);
  for (cudaEvent_t e : timers_) (void)cudaEventDestroy(e);
  for (cudaStream_t s : streams_)
    if (s) (void)cudaStreamDestroy(s);
  if (tail_src_) (void)cudaFree(tail_src_);
  (void)cudaSetDevice(prev);
}

at::Device CudaStreamDevice::device() const {
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index_));
}

cudaEvent_t CudaStreamDevice::event(EventId e) const {
  ZOFF_CHECK(e >= 0 && size_t(e) < events_.size(), "CudaStreamDevice: unknown event ", e);
  return events_[size_t(e)];
}

cudaEvent_t CudaStreamDevice::timer(TimerId t) const {
  ZOFF_CHECK(t >= 0 && size_t(t) < timers_.size(), "CudaStreamDevice: unknown timer ", t);
  return timers_[size_t(t)];
}

EventId CudaStreamDevice::create_event() {
  DeviceScope scope(device_index_);
  cudaEvent_t e = nullptr;
  ZOFF_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  events_.push_back(e);
  note_offload_allocation();
  return EventId(events_.size() - 1);
}

TimerId CudaStreamDevice::create_timer() {
  DeviceScope scope(device_index_);
  cudaEvent_t e = nullptr;
  ZOFF_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDefault));
  timers_.push_back(e);
  note_offload_allocation();
  return TimerId(timers_.size() - 1);
}

void CudaStreamDevice::copy_h2d(StreamId s, void* dst, const void* src, size_t bytes, int) {
  if (h2d_percent_ != 100 && bytes >= (size_t(1) << 20)) {
    const size_t head = bytes / 100 * size_t(h2d_percent_), tail = bytes - head;
    char* tail_dst = static_cast<char*>(dst) + head;
    if (tail <= tail_bytes_) {
      ZOFF_CUDA_CHECK(cudaMemcpyAsync(dst, src, head, cudaMemcpyHostToDevice, stream(s)));
      ZOFF_CUDA_CHECK(cudaMemcpyAsync(tail_dst, tail_src_, tail, cudaMemcpyDeviceToDevice, stream(s)));
      return;
    }
    // A larger tail than any before: copy this one whole and keep its tail (Note [Partial uploads
    // for measurement]). Synchronous: it happens once per size, in the first step.
    DeviceScope scope(device_index_);
    ZOFF_CUDA_CHECK(cudaStreamSynchronize(stream(s)));
    if (tail_src_) ZOFF_CUDA_CHECK(cudaFree(tail_src_));
    tail_src_ = nullptr;
    tail_bytes_ = 0;
    ZOFF_CUDA_CHECK(cudaMalloc(&tail_src_, tail));
    tail_bytes_ = tail;
    ZOFF_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream(s)));
    ZOFF_CUDA_CHECK(cudaMemcpyAsync(tail_src_, tail_dst, tail, cudaMemcpyDeviceToDevice, stream(s)));
    ZOFF_CUDA_CHECK(cudaStreamSynchronize(stream(s)));
    return;
  }
  ZOFF_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream(s)));
}

void CudaStreamDevice::copy_d2h(StreamId s, void* dst, const void* src, size_t bytes, int) {
  ZOFF_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream(s)));
}

void CudaStreamDevice::launch(StreamId s, std::function<void()> fn, int) {
  c10::cuda::CUDAStream cs = c10::cuda::getStreamFromExternal(
      stream(s), static_cast<c10::DeviceIndex>(device_index_));
  c10::cuda::CUDAStreamGuard guard(cs);  // also makes the stream's device current
  fn();
  // Surface launch errors of fn's kernels at the op that caused them.
  ZOFF_CUDA_CHECK(cudaPeekAtLastError());
}

void CudaStreamDevice::record(StreamId s, EventId e) {
  ZOFF_CUDA_CHECK(cudaEventRecord(event(e), stream(s)));
}

void CudaStreamDevice::wait(StreamId s, EventId e) {
  ZOFF_CUDA_CHECK(cudaStreamWaitEvent(stream(s), event(e), 0));
}

void CudaStreamDevice::host_wait(EventId e) { ZOFF_CUDA_CHECK(cudaEventSynchronize(event(e))); }

void CudaStreamDevice::mark(StreamId s, TimerId t) {
  ZOFF_CUDA_CHECK(cudaEventRecord(timer(t), stream(s)));
}

double CudaStreamDevice::elapsed_ms(TimerId from, TimerId to) {
  float ms = 0;
  ZOFF_CUDA_CHECK(cudaEventElapsedTime(&ms, timer(from), timer(to)));
  return double(ms);
}

void CudaStreamDevice::synchronize_all() {
  for (cudaStream_t s : streams_) ZOFF_CUDA_CHECK(cudaStreamSynchronize(s));
}

void* CudaStreamDevice::mapped_pointer(void* host) {
  void* d = nullptr;
  ZOFF_CUDA_CHECK(cudaHostGetDevicePointer(&d, host, 0));
  return d;
}

}  // namespace zoff
