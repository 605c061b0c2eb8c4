// cudaHostAlloc / cudaHostRegister and their inverses behind HostBuffer (ZOFF_WITH_CUDA only).
#include <cuda_runtime.h>

#include "offload/host_memory.h"
#include "zoff/log.h"

namespace zoff::detail {

void* cuda_host_alloc(size_t bytes, const char** err) {
  void* p = nullptr;
  cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocMapped | cudaHostAllocPortable);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the non-sticky error so later calls do not see it
    *err = cudaGetErrorString(e);
    return nullptr;
  }
  return p;
}

void cuda_host_free(void* p) {
  // Called from destructors: log instead of throwing.
  cudaError_t e = cudaFreeHost(p);
  if (e != cudaSuccess) log::error("cudaFreeHost failed: {}", cudaGetErrorString(e));
}

bool cuda_host_register(void* p, size_t bytes, const char** err) {
  // Mapped: kernels may store to it directly (Note [Delta write-back]); portable: any device.
  cudaError_t e = cudaHostRegister(p, bytes, cudaHostRegisterMapped | cudaHostRegisterPortable);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    *err = cudaGetErrorString(e);
    return false;
  }
  return true;
}

void cuda_host_unregister(void* p) {
  cudaError_t e = cudaHostUnregister(p);
  if (e != cudaSuccess) log::error("cudaHostUnregister failed: {}", cudaGetErrorString(e));
}

}  // namespace zoff::detail
