// CPU-build side of the device queries (CUDA builds use src/train/cuda/device_info_cuda.cpp).
#include "device_info.h"

#include <torch/version.h>

#include <cstdlib>

namespace zoff {

// Note [Expandable segments]
// LibTorch's caching allocator keeps freed blocks cached in fixed segments; a step's transients of
// varying sizes split them, and session 3 measured NVML 1.4 GiB above the allocator's peak on
// OPT-30B within a 12 GiB budget (13161 MiB NVML, 11.39 GiB allocated, 0.6 GiB of it context).
// Expandable segments (LibTorch 2.x) grow one mapping per stream instead, so the cache stays close
// to the peak. Users who set PYTORCH_CUDA_ALLOC_CONF or PYTORCH_ALLOC_CONF keep their choice.
void configure_cuda_allocator() {
#if defined(ZOFF_WITH_CUDA) && TORCH_VERSION_MAJOR >= 2
  if (!std::getenv("PYTORCH_CUDA_ALLOC_CONF") && !std::getenv("PYTORCH_ALLOC_CONF"))
    setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True", 0);
#endif
}

}  // namespace zoff

#ifndef ZOFF_WITH_CUDA
namespace zoff {
bool cuda_available() { return false; }
int64_t gpu_peak_allocated(const at::Device&) { return 0; }
void gpu_reset_peak(const at::Device&) {}
int64_t gpu_used_bytes(const at::Device&) { return 0; }
void sync_current_stream(const at::Device&) {}
}  // namespace zoff
#endif
