// CPU-build side of the device queries (CUDA builds use src/train/cuda/device_info_cuda.cpp).
#include "device_info.h"

#ifndef ZOFF_WITH_CUDA
namespace zoff {
bool cuda_available() { return false; }
int64_t gpu_peak_allocated(const at::Device&) { return 0; }
void gpu_reset_peak(const at::Device&) {}
int64_t gpu_used_bytes(const at::Device&) { return 0; }
void sync_current_stream(const at::Device&) {}
}  // namespace zoff
#endif
