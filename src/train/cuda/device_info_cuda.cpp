// CUDA device queries: caching-allocator peaks and driver-reported memory use.
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include "../device_info.h"

namespace zoff {

bool cuda_available() { return at::hasCUDA(); }

int64_t gpu_peak_allocated(const at::Device& d) {
  if (!d.is_cuda()) return 0;
  auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(d.index() < 0 ? 0 : d.index());
  return s.allocated_bytes[0].peak;  // aggregate pool
}

void gpu_reset_peak(const at::Device& d) {
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.index() < 0 ? 0 : d.index());
}

int64_t gpu_used_bytes(const at::Device& d) {
  if (!d.is_cuda()) return 0;
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return 0;
  return int64_t(total_b - free_b);
}

void sync_current_stream(const at::Device& d) {
  if (d.is_cuda()) c10::cuda::getCurrentCUDAStream(d.index() < 0 ? 0 : d.index()).synchronize();
}

}  // namespace zoff
