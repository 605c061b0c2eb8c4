// The host kernels built for any CPU (one lane): the fallback, and the tile driver's portable check.
#include "kernels/host/simd_scalar.h"
#include "kernels/host/isa_impl.h"

namespace zoff::k::host {
IsaKernels scalar_kernels() { return make_kernels<Scalar>(); }
}  // namespace zoff::k::host
