// CudaStreamDevice: the three offload streams as real CUDA streams and events (ZOFF_WITH_CUDA builds).
#pragma once

#include <vector>

#include "offload/stream_device.h"

typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

namespace zoff {

// Note [CUDA streams]
// Three non-blocking streams (they never synchronise with the legacy default stream) on one
// device. Events for ordering are created with cudaEventDisableTiming (cheaper to record and
// wait on); timers are separate timing events. launch() runs fn on the calling thread inside a
// CUDAStreamGuard for the chosen stream (c10::cuda::getStreamFromExternal), so every ATen op
// and every kernel fn launches on the current stream goes to that stream, in issue order. Every
// CUDA call is checked: a failure throws zoff::Error with cudaGetErrorString. Streams and events
// are destroyed in the destructor after a final synchronisation (errors there are logged).
class CudaStreamDevice : public StreamDevice {
 public:
  explicit CudaStreamDevice(int device_index = 0);
  ~CudaStreamDevice() override;
  CudaStreamDevice(const CudaStreamDevice&) = delete;
  CudaStreamDevice& operator=(const CudaStreamDevice&) = delete;

  at::Device device() const override;
  const char* name() const override { return "cuda"; }
  EventId create_event() override;
  TimerId create_timer() override;
  void copy_h2d(StreamId s, void* dst, const void* src, size_t bytes, int tag) override;
  void copy_d2h(StreamId s, void* dst, const void* src, size_t bytes, int tag) override;
  void launch(StreamId s, std::function<void()> fn, int tag) override;
  void record(StreamId s, EventId e) override;
  void wait(StreamId s, EventId e) override;
  void host_wait(EventId e) override;
  void mark(StreamId s, TimerId t) override;
  double elapsed_ms(TimerId from, TimerId to) override;
  void synchronize_all() override;
  void* mapped_pointer(void* host) override;

  cudaStream_t stream(StreamId s) const { return streams_[int(s)]; }
  int device_index() const { return device_index_; }

 private:
  cudaEvent_t event(EventId e) const;
  cudaEvent_t timer(TimerId t) const;
  int device_index_;
  cudaStream_t streams_[kNumStreams] = {nullptr, nullptr, nullptr};
  long h2d_percent_ = 100;  // ZOFF_DEBUG_H2D_PERCENT (Note [Partial uploads for measurement])
  void* tail_src_ = nullptr;  // device memory: the tails those uploads take instead
  size_t tail_bytes_ = 0;
  std::vector<cudaEvent_t> events_;
  std::vector<cudaEvent_t> timers_;
};

}  // namespace zoff
