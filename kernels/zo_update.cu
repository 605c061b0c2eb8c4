// zo_update on the GPU: theta <- theta * (1 - decay) + sum_k c_k z_k in one pass (Note [Fused update]).
#include "kernels/ew_kernel.cuh"

namespace zoff::k {
namespace {

template <Elem E>
void update_dist(const EwJob& j, cudaStream_t s) {
  constexpr bool k16 = E != Elem::F32;
  const bool sr = k16 && j.sr_seed != 0;
  if (j.dist == Dist::Gaussian) {
    if (sr) ew_launch<E, E, Dist::Gaussian, k16>(j, s);
    else ew_launch<E, E, Dist::Gaussian, false>(j, s);
  } else {
    if (sr) ew_launch<E, E, Dist::Rademacher, k16>(j, s);
    else ew_launch<E, E, Dist::Rademacher, false>(j, s);
  }
}

}  // namespace

void zo_update(const UpdateArgs& a, cudaStream_t s) {
  const EwJob j = update_job(a);
  if (j.noop) return;
  switch (a.elem) {
    case Elem::F32: return update_dist<Elem::F32>(j, s);
    case Elem::F16: return update_dist<Elem::F16>(j, s);
    case Elem::BF16: return update_dist<Elem::BF16>(j, s);
    case Elem::F8E4M3: break;  // rejected by update_job
  }
}

}  // namespace zoff::k
