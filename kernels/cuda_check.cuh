// Checked CUDA and cuBLAS calls for the kernel layer (they throw zoff::Error), and launch sizing.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "zoff/error.h"

// Every CUDA runtime call in kernels/ goes through ZOFF_CUDA_CHECK; every launch is followed by
// ZOFF_CUDA_LAUNCH_CHECK (cudaGetLastError: bad configuration, missing device code), so a failure
// surfaces at the call that caused it, as a zoff::Error naming that call.
#define ZOFF_CUDA_CHECK(expr)                                                               \
  do {                                                                                      \
    cudaError_t zoff_err_ = (expr);                                                         \
    ZOFF_CHECK(zoff_err_ == cudaSuccess, #expr, " failed: ", cudaGetErrorName(zoff_err_), " (", \
               cudaGetErrorString(zoff_err_), ")");                                         \
  } while (0)

#define ZOFF_CUDA_LAUNCH_CHECK(kernel_name) \
  ZOFF_CUDA_CHECK(cudaGetLastError()) /* the launch of kernel_name */

#define ZOFF_CUBLAS_CHECK(expr)                                                                 \
  do {                                                                                          \
    cublasStatus_t zoff_st_ = (expr);                                                           \
    ZOFF_CHECK(zoff_st_ == CUBLAS_STATUS_SUCCESS, #expr, " failed: ", cublasGetStatusName(zoff_st_), \
               " (", cublasGetStatusString(zoff_st_), ")");                                     \
  } while (0)

namespace zoff::k {

// Multiprocessors of the current device.
inline int sm_count() {
  int dev = 0, n = 0;
  ZOFF_CUDA_CHECK(cudaGetDevice(&dev));
  ZOFF_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}

// Blocks for a grid-stride kernel: enough for `threads` work items, at most one full wave.
template <typename Kernel>
int grid_for(Kernel kernel, int block, int64_t threads) {
  int per_sm = 0;
  ZOFF_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block, 0));
  int64_t wave = int64_t(sm_count()) * (per_sm > 0 ? per_sm : 1);
  int64_t need = (threads + block - 1) / block;
  return int(need < 1 ? 1 : need < wave ? need : wave);
}

}  // namespace zoff::k
