// Device queries the trainer needs: CUDA availability and GPU memory figures (zero on the CPU).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace zoff {

bool cuda_available();
// Asks LibTorch's CUDA caching allocator for expandable segments unless the user configured it
// (Note [Expandable segments]). Call before the first CUDA allocation; a no-op on the CPU and 1.x.
void configure_cuda_allocator();
// Peak bytes held by LibTorch's caching allocator since the last reset (cudaMaxMemoryAllocated).
int64_t gpu_peak_allocated(const at::Device& d);
void gpu_reset_peak(const at::Device& d);
// Bytes in use on the device as the driver sees them (total - free, what NVML/nvidia-smi report).
int64_t gpu_used_bytes(const at::Device& d);
// Blocks until the current (LibTorch) stream of d has finished its queued work; no-op on the CPU.
void sync_current_stream(const at::Device& d);

}  // namespace zoff
