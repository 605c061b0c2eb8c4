// SubZero's low-rank updates on 16-bit masters round stochastically (Note [Low-rank terms]): progress in expectation.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/philox.h"
#include "test_helpers.h"
#include "zoff/directions.h"

namespace zoff {
namespace {

GroupLayout matrix_group(int64_t m, int64_t n) {
  return testing::one_matrix(m, n, "layers.0", "model.layers.0.mlp.fc1.weight");
}

// The exact (fp64) low-rank update sum_k c_k sqrt(mn/r^2) U Z_k V^T of `terms`, flattened.
at::Tensor exact_update(LowRankDirections& dirs, const ParamInfo& p, const std::vector<DirTerm>& terms) {
  const int64_t m = p.shape[0], n = p.shape[1];
  const double scale = std::sqrt(double(m) * double(n)) / double(dirs.rank());
  at::Tensor d = at::zeros({m, n}, at::kDouble);
  for (auto& t : terms) {
    auto uv = dirs.basis(p, t.basis, at::kCPU);
    at::Tensor z = dirs.core(p, t.seed, at::kCPU).to(at::kDouble);
    d += t.coeff * scale * uv.first.to(at::kDouble).mm(z).mm(uv.second.to(at::kDouble).t());
  }
  return d.view({m * n});
}

// A tiny-lr SubZero step on a 1024 x 1024 bf16 master of 1.5 (updates ~1e-3 ulp): with SR the
// progress along the exact update D, <dW, D> / <D, D>, is 1 within 3 sigma, and so is the mean
// change in D's sign direction; rounding to nearest (sr_seed 0) leaves the master untouched.
TEST(SubzeroSr, Bf16MasterKeepsSubUlpProgressInExpectation) {
  const int64_t m = 1024, n = 1024;
  GroupLayout g = matrix_group(m, n);
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::SubZero;
  cfg.subzero_rank = 8;
  cfg.subzero_period = 100;
  cfg.eps = 1e-3;
  cfg.lr = 1e-8;
  auto opt = make_optimizer(cfg, 17, 10);
  auto& dirs = dynamic_cast<LowRankDirections&>(opt->directions());
  opt->begin_step(0);
  opt->end_step({1.0, 0.0});
  const std::vector<DirTerm> terms = opt->pending().terms;
  ASSERT_FALSE(terms.empty());
  at::Tensor D = exact_update(dirs, g.params[0], terms);
  const double ulp = std::ldexp(1.0, -7);  // bf16 spacing in [1, 2)
  const double N = double(m * n), dd = (D * D).sum().item<double>();
  at::Tensor p = D.abs() / ulp;
  ASSERT_LT(p.max().item<double>(), 0.01);  // every update far below half an ulp
  const double var = (ulp * ulp * p * (1 - p)).sum().item<double>();
  const double sigma_proj = std::sqrt(((D * D) * ulp * ulp * p * (1 - p)).sum().item<double>()) / dd;
  const double want_sign = D.abs().sum().item<double>() / N, sigma_sign = std::sqrt(var) / N;
  ASSERT_GT(want_sign, 20 * sigma_sign);

  at::Tensor th = at::full({m * n}, 1.5, at::kBFloat16);
  opt->apply_update(g, th);  // the optimizer's own sr_seed
  at::Tensor dw = th.to(at::kDouble) - 1.5;
  const double proj = (dw * D).sum().item<double>() / dd;
  const double sign_mean = (dw * D.sign()).sum().item<double>() / N;
  EXPECT_NEAR(proj, 1.0, 3 * sigma_proj) << "progress along the update";
  EXPECT_NEAR(sign_mean, want_sign, 3 * sigma_sign) << "mean change in the update's sign direction";
  EXPECT_GT(dw.ne(0).sum().item<int64_t>(), 0);

  at::Tensor rne = at::full({m * n}, 1.5, at::kBFloat16);
  dirs.update(g.params[0], rne, terms, 0.0, 0);
  EXPECT_EQ(rne.to(at::kDouble).ne(1.5).sum().item<int64_t>(), 0) << "round to nearest loses every update";

  at::Tensor th32 = at::full({m * n}, 1.5, at::kFloat);  // fp32: plain fp32 arithmetic, no SR
  opt->apply_update(g, th32);
  at::Tensor err = (th32.to(at::kDouble) - 1.5 - D).abs();
  EXPECT_LT(err.max().item<double>(), std::ldexp(1.0, -23) + 1e-3 * D.abs().max().item<double>());
}

// Perturbations round to nearest: from theta = 0, +eps and -eps give exact negatives (bf16, f16, fp32).
TEST(SubzeroSr, PerturbationsAreExactMirrorImages) {
  GroupLayout g = matrix_group(48, 40);
  LowRankDirections dirs(4, 5);
  const ParamInfo& p = g.params[0];
  for (at::ScalarType st : {at::kBFloat16, at::kHalf, at::kFloat}) {
    at::Tensor th = at::zeros({48 * 40}, st), plus = at::empty_like(th), minus = at::empty_like(th);
    dirs.perturb(p, th, {DirTerm{99, 1e-3, 0}}, plus);
    dirs.perturb(p, th, {DirTerm{99, -1e-3, 0}}, minus);
    EXPECT_GT(plus.ne(0).sum().item<int64_t>(), 0);
    EXPECT_TRUE(at::equal(plus, minus.neg())) << c10::toString(st);
    at::Tensor again = at::empty_like(th);
    dirs.perturb(p, th, {DirTerm{99, 1e-3, 0}}, again);
    EXPECT_TRUE(at::equal(plus, again));
  }
}

// Weight decay is folded into the same rounding: update(theta, decay) equals update(theta * keep, 0)
// for an fp32 master, and a step with zero coefficients still decays.
TEST(SubzeroSr, WeightDecayFoldsIntoTheLowRankPass) {
  GroupLayout g = matrix_group(40, 30);
  LowRankDirections dirs(4, 6);
  const ParamInfo& p = g.params[0];
  at::manual_seed(3);
  at::Tensor th = at::randn({40 * 30}, at::kFloat);
  const float keep = 1.0f - float(0.1);
  at::Tensor a = th.clone(), b = th.mul(double(keep));
  const std::vector<DirTerm> terms{DirTerm{7, 0.25, 0}, DirTerm{8, -0.5, 0}};
  dirs.update(p, a, terms, 0.1, 3);
  dirs.update(p, b, terms, 0.0, 3);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_GT((a - th).abs().max().item<double>(), 1e-3);
  at::Tensor c = th.clone();
  dirs.update(p, c, {DirTerm{7, 0.0, 0}}, 0.1, 3);
  EXPECT_TRUE(at::equal(c, th.mul(double(keep))));
}

}  // namespace
}  // namespace zoff
