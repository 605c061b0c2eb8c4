// CUDA runtime helpers shared by bench_transfer and bench_step: checked calls, RAII buffers, timed copies.
#pragma once

#ifdef ZOFF_WITH_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "zoff/error.h"
#include "zoff/log.h"

// Every CUDA runtime call goes through this: a failure throws zoff::Error naming the call.
#define ZOFF_CUDA_OK(expr)                                                                     \
  do {                                                                                         \
    const cudaError_t zoff_cuda_err_ = (expr);                                                 \
    ZOFF_CHECK(zoff_cuda_err_ == cudaSuccess, #expr, " failed: ", cudaGetErrorName(zoff_cuda_err_), \
               " (", cudaGetErrorString(zoff_cuda_err_), ")");                                 \
  } while (0)

namespace zoff::bench {

// Destructors cannot throw: they log a failed release instead.
inline void log_cuda_release(cudaError_t e, const char* what) {
  if (e != cudaSuccess) log::error("{} failed: {}", what, cudaGetErrorString(e));
}

// Host memory: pinned (cudaHostAlloc) or pageable (4 KiB-aligned, every page touched once so the
// first timed copy does not pay for page faults).
class HostMem {
 public:
  HostMem(size_t bytes, bool pinned) : bytes_(bytes), pinned_(pinned) {
    if (pinned) {
      ZOFF_CUDA_OK(cudaHostAlloc(&p_, bytes, cudaHostAllocDefault));
    } else {
      p_ = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
      ZOFF_CHECK(p_ != nullptr, "aligned_alloc of ", bytes, " bytes failed");
    }
    std::memset(p_, 0x5a, bytes);
  }
  ~HostMem() {
    if (!p_) return;
    if (pinned_) log_cuda_release(cudaFreeHost(p_), "cudaFreeHost");
    else std::free(p_);
  }
  HostMem(const HostMem&) = delete;
  HostMem& operator=(const HostMem&) = delete;
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
  bool pinned_ = false;
};

class DeviceMem {
 public:
  explicit DeviceMem(size_t bytes) {
    ZOFF_CUDA_OK(cudaMalloc(&p_, bytes));
    ZOFF_CUDA_OK(cudaMemset(p_, 0, bytes));
  }
  ~DeviceMem() {
    if (p_) log_cuda_release(cudaFree(p_), "cudaFree");
  }
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};

class Stream {
 public:
  Stream() { ZOFF_CUDA_OK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() { log_cuda_release(cudaStreamDestroy(s_), "cudaStreamDestroy"); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event() { ZOFF_CUDA_OK(cudaEventCreate(&e_)); }
  ~Event() { log_cuda_release(cudaEventDestroy(e_), "cudaEventDestroy"); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// Milliseconds between two completed events.
inline double elapsed_ms(const Event& a, const Event& b) {
  float ms = 0;
  ZOFF_CUDA_OK(cudaEventElapsedTime(&ms, a.get(), b.get()));
  return double(ms);
}

// Seconds one cudaMemcpyAsync of `bytes` takes on stream s, timed by events around it.
inline double timed_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const Stream& s) {
  Event a, b;
  ZOFF_CUDA_OK(cudaEventRecord(a.get(), s.get()));
  ZOFF_CUDA_OK(cudaMemcpyAsync(dst, src, bytes, kind, s.get()));
  ZOFF_CUDA_OK(cudaEventRecord(b.get(), s.get()));
  ZOFF_CUDA_OK(cudaEventSynchronize(b.get()));
  return elapsed_ms(a, b) / 1e3;
}

// Note [Reference H2D bandwidth]
// The transfer bound of a streamed step is its H2D bytes over the pinned host-to-device
// bandwidth of the machine it runs on, measured in the same process (not the planner's 54.7
// GB/s constant): one warm-up copy, then the median of `reps` event-timed copies of `bytes`
// from a pinned buffer. Returned in bytes per second.
inline double measure_pinned_h2d(size_t bytes, int reps) {
  HostMem host(bytes, true);
  DeviceMem dev(bytes);
  Stream s;
  timed_copy(dev.get(), host.get(), bytes, cudaMemcpyHostToDevice, s);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) t.push_back(timed_copy(dev.get(), host.get(), bytes, cudaMemcpyHostToDevice, s));
  std::sort(t.begin(), t.end());
  return double(bytes) / t[t.size() / 2];
}

inline std::string device_name() {
  int dev = 0;
  ZOFF_CUDA_OK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  ZOFF_CUDA_OK(cudaGetDeviceProperties(&p, dev));
  return p.name;
}

}  // namespace zoff::bench

#endif  // ZOFF_WITH_CUDA
