// zo_perturb on the GPU: out = dequant(src) + sum_k c_k z_k, any float/fp8 source into a float output.
#include "kernels/ew_kernel.cuh"

namespace zoff::k {
namespace {

// Note [Mirror perturbation] (zo_kernels.h): the mirror output is fused into the pass when the
// job is one pass (<= kMaxTerms terms) reading and writing one dtype -- the resident case this is
// for; otherwise it is a second job with negated coefficients, the reference's definition.
template <Elem OUT, Elem SRC, Dist D>
void perturb_launch(const EwJob& j, cudaStream_t s) {
  if (j.out2 == nullptr) return ew_launch<OUT, SRC, D, false>(j, s);
  if constexpr (OUT == SRC) {
    if (!j.noop && j.nterms <= kMaxTerms) {
      EwParams p{};
      p.out = j.out;
      p.out2 = j.out2;
      p.src = j.src;
      p.n = j.n;
      p.first = j.first;
      p.keep = j.keep;
      p.nterms = j.nterms;
      for (int k = 0; k < p.nterms; ++k) p.key[k] = philox_key(j.terms[k].seed, j.pid), p.coeff[k] = j.terms[k].coeff;
      return ew_pass<OUT, SRC, D, false, true>(p, s);
    }
  }
  EwJob a = j;
  a.out2 = nullptr;
  ew_launch<OUT, SRC, D, false>(a, s);
  const MirrorJob m(j);
  ew_launch<OUT, SRC, D, false>(m.job, s);
}

template <Elem OUT, Elem SRC>
void perturb_dist(const EwJob& j, cudaStream_t s) {
  if (j.dist == Dist::Gaussian) perturb_launch<OUT, SRC, Dist::Gaussian>(j, s);
  else perturb_launch<OUT, SRC, Dist::Rademacher>(j, s);
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
