// Element-wise (Philox) and SubZero low-rank directions: perturb out of place, update in place.
#include "zoff/directions.h"

#include <algorithm>
#include <cmath>

#include "device_dispatch.h"
#include "zoff/error.h"

namespace zoff {

at::Tensor draw_z(int64_t n, uint64_t pid, uint64_t seed, k::Dist dist, const at::Device& device) {
  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kFloat).device(device));
  dispatch_fill_z(out.data_ptr<float>(), n, pid, seed, dist, device);
  return out;
}

std::vector<k::ZTerm> to_kernel_terms(const std::vector<DirTerm>& t) {
  std::vector<k::ZTerm> out;
  out.reserve(t.size());
  for (auto& d : t) out.push_back(k::ZTerm{d.seed, float(d.coeff)});
  return out;
}

void ElementwiseDirections::perturb(const ParamInfo& p, const at::Tensor& theta,
                                    const std::vector<DirTerm>& terms, at::Tensor out) {
  perturb_mirror(p, theta, terms, out, at::Tensor());
}

void ElementwiseDirections::perturb_mirror(const ParamInfo& p, const at::Tensor& theta,
                                           const std::vector<DirTerm>& terms, at::Tensor out, at::Tensor out2) {
  ZOFF_CHECK(theta.is_contiguous() && out.is_contiguous() && theta.numel() == out.numel() &&
                 theta.device() == out.device(),
             "perturb: ", p.name, ": theta and out must be contiguous, same size and device");
  ZOFF_CHECK(!out2.defined() || (out2.is_contiguous() && out2.numel() == out.numel() &&
                                 out2.scalar_type() == out.scalar_type() && out2.device() == out.device()),
             "perturb: ", p.name, ": the mirror output must match out");
  auto kt = to_kernel_terms(terms);
  k::PerturbArgs a{};
  a.out = out.data_ptr();
  a.out_elem = elem_of(out.scalar_type());
  a.src = theta.data_ptr();
  a.src_elem = elem_of(theta.scalar_type());
  a.row_scales = nullptr;
  a.row_len = p.shape.empty() ? 1 : p.shape.back();
  a.n = theta.numel();
  a.pid = p.id;
  a.dist = dist_;
  a.terms = kt.data();
  a.nterms = int(kt.size());
  a.out2 = out2.defined() ? out2.data_ptr() : nullptr;
  dispatch_zo_perturb(a, theta.device());
}

void ElementwiseDirections::update(const ParamInfo& p, at::Tensor theta, const std::vector<DirTerm>& terms,
                                   double decay, uint64_t sr_seed, const k::DeltaOut* delta) {
  ZOFF_CHECK(theta.is_contiguous(), "update: ", p.name, " must be contiguous");
  auto kt = to_kernel_terms(terms);
  k::UpdateArgs a{};
  a.theta = theta.data_ptr();
  a.elem = elem_of(theta.scalar_type());
  a.n = theta.numel();
  a.pid = p.id;
  a.dist = dist_;
  a.terms = kt.data();
  a.nterms = int(kt.size());
  a.decay = float(decay);
  a.sr_seed = theta.scalar_type() == at::kFloat ? 0 : sr_seed;
  a.delta = delta;
  dispatch_zo_update(a, theta.device());
}

// ---- SubZero ------------------------------------------------------------------------------

namespace {
// Salts that separate U's, V's and Z's Philox streams of one parameter.
constexpr uint64_t kSaltU = 0x5500000000000001ull;
constexpr uint64_t kSaltV = 0x5600000000000002ull;
constexpr uint64_t kSaltZ = 0x5A00000000000003ull;

// Orthonormal columns of a Gaussian (rows×r) matrix, with the signs fixed (diag(R) > 0) so that
// the result does not depend on the LAPACK / cuSOLVER sign convention.
at::Tensor orthonormal(int64_t rows, int64_t r, uint64_t pid, uint64_t seed, const at::Device& dev) {
  at::Tensor g = draw_z(rows * r, pid, seed, k::Dist::Gaussian, dev).view({rows, r});
  auto qr = at::linalg_qr(g.to(at::kDouble), "reduced");
  at::Tensor q = std::get<0>(qr), rr = std::get<1>(qr);
  at::Tensor sign = at::sign(at::diagonal(rr));
  sign = at::where(sign == 0, at::ones_like(sign), sign);
  return (q * sign.unsqueeze(0)).to(at::kFloat).contiguous();
}
}  // namespace

std::pair<at::Tensor, at::Tensor> LowRankDirections::basis(const ParamInfo& p, int64_t b,
                                                           const at::Device& device) {
  std::lock_guard<std::mutex> lock(mu_);
  auto key = std::make_pair(p.id, b);
  auto it = cache_.find(key);
  if (it != cache_.end() && it->second.first.device() == device) return it->second;
  ZOFF_CHECK(p.shape.size() == 2, "SubZero basis for non-matrix ", p.name);
  const int64_t m = p.shape[0], n = p.shape[1];
  ZOFF_INPUT_CHECK(rank_ <= m && rank_ <= n, "optimizer.subzero_rank = ", rank_,
                   " is larger than a dimension of ", p.name, " [", m, ", ", n, "]");
  const uint64_t bseed = k::splitmix64(base_seed_ ^ k::splitmix64(uint64_t(b) + 0x5B5B));
  at::Tensor U = orthonormal(m, rank_, p.id ^ kSaltU, bseed, device);
  at::Tensor V = orthonormal(n, rank_, p.id ^ kSaltV, bseed, device);
  cache_[key] = {U, V};
  return {U, V};
}

at::Tensor LowRankDirections::core(const ParamInfo& p, uint64_t seed, const at::Device& device) const {
  return draw_z(int64_t(rank_) * rank_, p.id ^ kSaltZ, seed, k::Dist::Gaussian, device).view({rank_, rank_});
}

void LowRankDirections::evict_before(int64_t keep_from) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = cache_.begin(); it != cache_.end();)
    it = it->first.second < keep_from ? cache_.erase(it) : std::next(it);
}

int64_t LowRankDirections::state_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t b = 0;
  for (auto& kv : cache_) b += (kv.second.first.numel() + kv.second.second.numel()) * 4;
  return b;
}

// Note [Low-rank terms]
// target2d <- round(target2d * keep + sum_k c_k * sqrt(mn/r^2) * U_b Z_k V_b^T) through
// kernels/lowrank (Note [Low-rank stochastic rounding]). The terms of one basis b (every term of
// an update shares its step's period, so one group in practice) are folded into one r x r core
// C = sum_k fl(c_k * sqrt(mn/r^2)) * Z_k (fp32, in term order, one correctly rounded multiply and
// add per entry: the same bits on CPU and GPU) and applied with alpha = 1, so each element of W is
// rounded once per group. Group q rounds with SR pass q; keep (1 - weight decay) applies in group 0.
// Perturbations are transient and happen twice per matrix and step: they round to nearest through
// the cuBLAS kernel (Note [Low-rank update]: tensor-core GEMMs). Measured on the H100, SubZero
// streamed at OPT-1.3B: 0.061 s per step with ATen addmm_ everywhere (no SR), 0.082 with the
// fixed-order SR kernel for perturbations too, 0.072 as here; at 13B all three are transfer-bound
// (0.58-0.59 s). A term of coefficient -eps gives exactly -C, so theta + eps z and theta - eps z
// stay mirror images.
// Updates go through the SR kernel with the step's sr_seed, so a 16-bit master keeps sub-ulp
// progress in expectation, like zo_update (an fp32 target ignores sr_seed). That is why the update
// departs from issue 5's cuBLAS recipe: cuBLAS rounds its output to nearest, once, inside the GEMM.
void LowRankDirections::add_low_rank(const ParamInfo& p, at::Tensor t2, const std::vector<DirTerm>& terms,
                                     float keep, uint64_t sr_seed, bool perturbation) {
  ZOFF_CHECK(t2.is_contiguous(), "SubZero: ", p.name, " must be contiguous");
  const int64_t m = p.shape[0], n = p.shape[1];
  const double scale = std::sqrt(double(m) * double(n)) / double(rank_);
  std::vector<int64_t> bases;
  for (auto& term : terms)
    if (term.coeff != 0 && std::find(bases.begin(), bases.end(), term.basis) == bases.end()) bases.push_back(term.basis);
  for (size_t q = 0; q < bases.size(); ++q) {
    auto uv = basis(p, bases[q], t2.device());
    at::Tensor c;
    for (auto& term : terms) {
      if (term.coeff == 0 || term.basis != bases[q]) continue;
      at::Tensor ck = core(p, term.seed, t2.device()).mul(double(float(term.coeff * scale)));
      c = c.defined() ? c.add(ck) : ck;
    }
    c = c.contiguous();
    k::LowRankArgs a{};
    a.w = t2.data_ptr();
    a.elem = elem_of(t2.scalar_type());
    a.m = m;
    a.n = n;
    a.r = rank_;
    a.u = uv.first.data_ptr<float>();
    a.z = c.data_ptr<float>();
    a.v = uv.second.data_ptr<float>();
    a.alpha = 1.0f;
    if (perturbation) {  // Note [Low-rank terms]: round to nearest, through cuBLAS on the GPU
      dispatch_lowrank_update(a, t2.device());
      continue;
    }
    a.sr_seed = sr_seed;
    a.pid = p.id;
    a.sr_pass = int(q);
    a.keep = q == 0 ? keep : 1.0f;
    dispatch_lowrank_update_sr(a, t2.device());
  }
}

void LowRankDirections::perturb(const ParamInfo& p, const at::Tensor& theta,
                                const std::vector<DirTerm>& terms, at::Tensor out) {
  if (!is_low_rank(p)) return elementwise_.perturb(p, theta, terms, out);
  out.view(theta.sizes()).copy_(theta);
  add_low_rank(p, out.view({p.shape[0], p.shape[1]}), terms, 1.0f, 0, true);
}

void LowRankDirections::update(const ParamInfo& p, at::Tensor theta, const std::vector<DirTerm>& terms,
                               double decay, uint64_t sr_seed, const k::DeltaOut* delta) {
  ZOFF_CHECK(delta == nullptr, "SubZero: ", p.name, ": low-rank updates report no delta (Note [Delta write-back])");
  if (!is_low_rank(p)) return elementwise_.update(p, theta, terms, decay, sr_seed);
  const bool any = std::any_of(terms.begin(), terms.end(), [](const DirTerm& t) { return t.coeff != 0; });
  // Decay alone (every coefficient 0): zo_update with no terms rounds theta * (1 - decay) the same way.
  if (!any) return decay != 0 ? elementwise_.update(p, theta, {}, decay, sr_seed) : void();
  add_low_rank(p, theta.view({p.shape[0], p.shape[1]}), terms, 1.0f - float(decay), sr_seed, false);
}

}  // namespace zoff
