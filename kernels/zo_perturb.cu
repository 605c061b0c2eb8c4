// zo_perturb on the GPU: out = dequant(src) + sum_k c_k z_k, any float/fp8 source into a float output.
#include "kernels/ew_kernel.cuh"

namespace zoff::k {
namespace {

template <Elem OUT, Elem SRC>
void perturb_dist(const EwJob& j, cudaStream_t s) {
  if (j.dist == Dist::Gaussian) ew_launch<OUT, SRC, Dist::Gaussian, false>(j, s);
  else ew_launch<OUT, SRC, Dist::Rademacher, false>(j, s);
}

template <Elem OUT>
void perturb_src(const EwJob& j, cudaStream_t s) {
  switch (j.src_elem) {
    case Elem::F32: return perturb_dist<OUT, Elem::F32>(j, s);
    case Elem::F16: return perturb_dist<OUT, Elem::F16>(j, s);
    case Elem::BF16: return perturb_dist<OUT, Elem::BF16>(j, s);
    case Elem::F8E4M3: return perturb_dist<OUT, Elem::F8E4M3>(j, s);
  }
}

}  // namespace

void zo_perturb(const PerturbArgs& a, cudaStream_t s) {
  const EwJob j = perturb_job(a);
  if (j.noop) return;
  switch (a.out_elem) {
    case Elem::F32: return perturb_src<Elem::F32>(j, s);
    case Elem::F16: return perturb_src<Elem::F16>(j, s);
    case Elem::BF16: return perturb_src<Elem::BF16>(j, s);
    case Elem::F8E4M3: break;  // rejected by perturb_job
  }
}

}  // namespace zoff::k
