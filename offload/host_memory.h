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

// Note [Pinning at scale]
// OPT-175B's bf16 master is ~350 GB of pinned memory. cudaHostAlloc faults, zeroes and locks the
// pages of one buffer on one thread; session 2 measured the whole setup of a 175B run at ~1.6 GB/s,
// so a 600 s device call ended before step 1. HostAlloc::Register instead maps anonymous memory
// (transparent huge pages advised), faults its pages in on all cores with oneTBB, and then locks
// the already-present pages with cudaHostRegister. HostAlloc::CudaAlloc keeps the old path for
// comparison (bench_transfer's host/pin rows measure both; env ZOFF_PIN_METHOD=alloc|register
// picks the default, register unless set). Either way a new HostBuffer reads as zeros: anonymous
// pages come zeroed, and the cudaHostAlloc path clears its buffer in parallel.
enum class HostAlloc { Pageable, Register, CudaAlloc };

// The pinned method used when a caller just asks for pinned memory.
HostAlloc default_pinned_alloc();

// MemAvailable from /proc/meminfo in bytes, or -1 where it cannot be read.
int64_t host_memory_available();

// One contiguous, zero-filled host buffer, freed on destruction. Pinned when CUDA is compiled in,
// pinning was asked for and it succeeded; otherwise page-aligned pageable memory.
class HostBuffer {
 public:
  HostBuffer() = default;
  // want_pinned: pin with default_pinned_alloc() (CUDA builds only); on failure warn once per
  // call and fall back to pageable memory. `what` names the buffer in messages.
  HostBuffer(size_t bytes, bool want_pinned, const char* what);
  HostBuffer(size_t bytes, HostAlloc how, const char* what);
  ~HostBuffer();
  HostBuffer(HostBuffer&& o) noexcept;
  HostBuffer& operator=(HostBuffer&& o) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  bool pinned() const { return how_ != HostAlloc::Pageable; }
  HostAlloc how() const { return how_; }

 private:
  void release();
  void* data_ = nullptr;
  size_t bytes_ = 0;
  size_t mapped_ = 0;  // bytes mapped with mmap (0 for cudaHostAlloc buffers)
  HostAlloc how_ = HostAlloc::Pageable;
};

#ifdef ZOFF_WITH_CUDA
namespace detail {
// offload/cuda/pinned_memory.cpp. Each returns false / nullptr and fills *err on failure.
void* cuda_host_alloc(size_t bytes, const char** err);
void cuda_host_free(void* p);
bool cuda_host_register(void* p, size_t bytes, const char** err);
void cuda_host_unregister(void* p);
}  // namespace detail
#endif

}  // namespace zoff
