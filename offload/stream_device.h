// StreamDevice: three ordered streams, events and copies: the interface the offload executor runs on.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace zoff {

// Note [Three streams]
// Upload carries host->device copies, Compute runs the blocks, Offload carries device->host
// copies (GPU update site). Work on one stream runs in issue order; work on different streams is
// ordered only by events:
//   record(s, e): e completes when everything issued on s before it has finished;
//   wait(s, e):   work issued on s afterwards starts only once the LATEST record of e issued
//                 before this call has completed (cudaStreamWaitEvent semantics: a later
//                 re-record does not move the target; an event never recorded is complete).
// Nothing here blocks the calling thread except host_wait and synchronize_all.
enum class StreamId : int { Upload = 0, Compute = 1, Offload = 2 };
constexpr int kNumStreams = 3;
const char* stream_name(StreamId s);

using EventId = int32_t;  // handle from create_event(), valid for the device's lifetime
using TimerId = int32_t;  // handle from create_timer()

class StreamDevice {
 public:
  virtual ~StreamDevice() = default;

  // Where slots and resident blocks live: CPU for the host devices, CUDA:i for CUDA.
  virtual at::Device device() const = 0;
  virtual const char* name() const = 0;

  // Created once (each counts as an offload allocation, Note [Allocation counter]).
  virtual EventId create_event() = 0;
  virtual TimerId create_timer() = 0;

  // Asynchronous copies on stream s. `tag` labels the op in fake-device timelines (a block index).
  virtual void copy_h2d(StreamId s, void* dst, const void* src, size_t bytes, int tag) = 0;
  virtual void copy_d2h(StreamId s, void* dst, const void* src, size_t bytes, int tag) = 0;
  // Runs fn as stream s's next piece of work. Host devices run it on the stream's worker thread
  // when the stream reaches it; CudaStreamDevice runs it at once on the calling thread with s as
  // the current ATen stream, so the kernels fn enqueues land on s in order. Either way fn must
  // only touch memory through work it enqueues (CUDA) or runs (host) -- see docs/offload.md.
  virtual void launch(StreamId s, std::function<void()> fn, int tag) = 0;

  virtual void record(StreamId s, EventId e) = 0;
  virtual void wait(StreamId s, EventId e) = 0;
  // Blocks the calling thread until the latest record of e (at the time of the call) completed.
  virtual void host_wait(EventId e) = 0;

  // Timing: mark(s, t) stamps t when stream s reaches it; elapsed_ms(a, b) = stamp(b) - stamp(a)
  // once both completed (after a synchronize_all).
  virtual void mark(StreamId s, TimerId t) = 0;
  virtual double elapsed_ms(TimerId from, TimerId to) = 0;

  // Waits for all work on all streams. Rethrows the first error any stream work raised.
  virtual void synchronize_all() = 0;

  // The address under which work on this device reads and writes the pinned host memory at
  // `host` (kernels store to it directly, Note [Delta write-back]). Host devices: host itself.
  // CUDA: the mapped device pointer; zoff::Error for memory that is not pinned.
  virtual void* mapped_pointer(void* host) { return host; }
};

}  // namespace zoff
