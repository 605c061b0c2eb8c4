// DType <-> at::ScalarType and k::Elem for the offload engine's tensor views and kernel calls.
#pragma once

#include <ATen/ATen.h>

#include "kernels/zo_kernels.h"
#include "zoff/dtype.h"
#include "zoff/error.h"
#include "zoff/safetensors.h"  // to_scalar_type

namespace zoff {

// F8_E4M3 maps to kByte: LibTorch 1.13 has no float8 type, and the offload engine only moves
// fp8 bytes (the unpack kernels read them through raw pointers).
inline at::ScalarType offload_scalar_type(DType t) { return to_scalar_type(t); }

inline k::Elem offload_elem(DType t) {
  switch (t) {
    case DType::F32: return k::Elem::F32;
    case DType::F16: return k::Elem::F16;
    case DType::BF16: return k::Elem::BF16;
    case DType::F8_E4M3: return k::Elem::F8E4M3;
    default: ZOFF_FAIL("dtype ", dtype_name(t), " is not a kernel element type");
  }
}

}  // namespace zoff
