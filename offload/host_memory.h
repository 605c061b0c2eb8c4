// Host buffers for the offload engine (pinned when CUDA allows) and its allocation counter.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zoff {

// Note [Allocation counter]
// The offload engine allocates every buffer it needs once, when it is built: host masters and
// transfer copies (BlockStore), device slots (SlotRing), resident block copies (ResidentBlocks),
// events and timers (StreamDevice). Each of those allocations bumps one process-wide counter, so a
// test can read offload_allocations() before and after N steps and assert it did not move. The
// counter counts buffers and device objects, not the small heap objects a std::function or a
// queue node may need.
int64_t offload_allocations();
void note_offload_allocation();

// One contiguous host buffer, freed on destruction. Pinned (cudaHostAlloc) when CUDA is compiled
// in and pinning was asked for and succeeded; otherwise 4 KiB-aligned pageable memory.
class HostBuffer {
 public:
  HostBuffer() = default;
  // want_pinned: try cudaHostAlloc first (CUDA builds only); on failure warn once per call and fall
  // back to pageable memory. `what` names the buffer in the warning.
  HostBuffer(size_t bytes, bool want_pinned, const char* what);
  ~HostBuffer();
  HostBuffer(HostBuffer&& o) noexcept;
  HostBuffer& operator=(HostBuffer&& o) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  bool pinned() const { return pinned_; }

 private:
  void release();
  void* data_ = nullptr;
  size_t bytes_ = 0;
  bool pinned_ = false;
};

#ifdef ZOFF_WITH_CUDA
namespace detail {
// offload/cuda/pinned_memory.cpp. cuda_host_alloc returns nullptr and fills *err on failure.
void* cuda_host_alloc(size_t bytes, const char** err);
void cuda_host_free(void* p);
}  // namespace detail
#endif

}  // namespace zoff
