// CUDA side of the kernel routing: launches on LibTorch's current stream of the current device.
#include <c10/cuda/CUDAStream.h>

#include "../device_dispatch.h"

namespace zoff {

static cudaStream_t current() { return c10::cuda::getCurrentCUDAStream().stream(); }

void cuda_zo_perturb(const k::PerturbArgs& a) { k::zo_perturb(a, current()); }
void cuda_zo_update(const k::UpdateArgs& a) { k::zo_update(a, current()); }
void cuda_fill_z(float* out, int64_t n, uint64_t pid, uint64_t seed, k::Dist d) {
  k::fill_z(out, n, pid, seed, d, current());
}

}  // namespace zoff
