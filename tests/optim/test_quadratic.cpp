// Optimizer algebra on quadratics and linear losses: SPSA exactness, FZOO invariance and closed
// form, SubZero's subspace, SVRG's inner step with eta1 = 0.
#include <gtest/gtest.h>

#include "kernels/philox.h"
#include "zoff/error.h"
#include "test_helpers.h"

namespace zoff {
namespace {

using testing::one_matrix;

// f(theta) = 0.5 * sum a_i (theta_i - c_i)^2, in double.
struct Quadratic {
  at::Tensor a, c;
  double operator()(const at::Tensor& th) const {
    at::Tensor d = th.to(at::kDouble) - c;
    return 0.5 * (a * d * d).sum().item<double>();
  }
  at::Tensor grad(const at::Tensor& th) const { return a * (th.to(at::kDouble) - c); }
};

std::vector<double> eval(const GroupLayout& g, ZoOptimizer& opt, const StepRequest& r, const at::Tensor& th,
                         const std::function<double(const at::Tensor&)>& f) {
  std::vector<double> L;
  for (auto& fw : r.forwards) {
    at::Tensor out = at::empty_like(th);
    opt.directions().perturb(g.params[0], th, fw.terms, out);
    L.push_back(f(out));
  }
  return L;
}

TEST(Quadratic, MezoProjectedGradientIsZDotGrad) {
  at::manual_seed(1);
  GroupLayout g = one_matrix(16, 24);
  Quadratic q{at::rand({16 * 24}, at::kDouble) + 0.5, at::randn({16 * 24}, at::kDouble)};
  at::Tensor th = at::randn({16 * 24}, at::kFloat);
  OptimizerConfig cfg;
  cfg.eps = 1e-2;
  cfg.lr = 1e-3;
  auto opt = make_optimizer(cfg, 7, 10);
  StepRequest r = opt->begin_step(3);
  auto L = eval(g, *opt, r, th, q);
  double g_hat = opt->end_step(L)["projected_grad"].get<double>();
  // z as the kernels draw it, and the exact perturbed points as fp32 holds them.
  at::Tensor z = draw_z(th.numel(), g.params[0].id, r.forwards[0].terms[0].seed, k::Dist::Gaussian, at::kCPU);
  double expect = (z.to(at::kDouble) * q.grad(th)).sum().item<double>();
  EXPECT_NEAR(g_hat, expect, 2e-3 * std::fabs(expect) + 1e-3);
  // The pending update is -lr * g * z.
  at::Tensor before = th.clone();
  opt->apply_update(g, th);
  at::Tensor delta = (th - before).to(at::kDouble);
  EXPECT_LT((delta + cfg.lr * g_hat * z.to(at::kDouble)).abs().max().item<double>(), 1e-6);
}

TEST(Quadratic, FzooInvariantToAffineLossTransforms) {
  at::manual_seed(2);
  GroupLayout g = one_matrix(8, 8);
  Quadratic q{at::rand({64}, at::kDouble) + 0.5, at::randn({64}, at::kDouble)};
  at::Tensor th = at::randn({64}, at::kFloat);
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::FZOO;
  cfg.eps = 1e-2;
  cfg.lr = 1e-2;
  for (const char* conv : {"code", "paper"}) {
    cfg.fzoo_convention = conv;
    auto o1 = make_optimizer(cfg, 5, 10), o2 = make_optimizer(cfg, 5, 10);
    StepRequest r1 = o1->begin_step(0), r2 = o2->begin_step(0);
    ASSERT_EQ(r1.forwards.size(), size_t(cfg.fzoo_n + 1));
    auto L = eval(g, *o1, r1, th, q);
    std::vector<double> L2;
    for (double l : L) L2.push_back(3.5 * l - 11.0);
    o1->end_step(L);
    o2->end_step(L2);
    ASSERT_EQ(o1->pending().terms.size(), o2->pending().terms.size());
    for (size_t i = 0; i < o1->pending().terms.size(); ++i)
      EXPECT_NEAR(o1->pending().terms[i].coeff, o2->pending().terms[i].coeff,
                  1e-9 * std::fabs(o1->pending().terms[i].coeff) + 1e-15);
  }
}

TEST(Quadratic, FzooClosedFormOnLinearLossWithTwoDirections) {
  GroupLayout g = one_matrix(4, 8);
  at::Tensor c = at::randn({32}, at::kDouble);
  auto f = [&](const at::Tensor& th) { return (c * th.to(at::kDouble)).sum().item<double>(); };
  at::Tensor th = at::randn({32}, at::kFloat);
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::FZOO;
  cfg.fzoo_n = 2;
  cfg.eps = 1e-2;
  cfg.lr = 0.1;
  auto opt = make_optimizer(cfg, 9, 10);
  StepRequest r = opt->begin_step(0);
  auto L = eval(g, *opt, r, th, f);
  opt->end_step(L);
  // l_i - l_0 = eps c.u_i ; sigma_pop = |l_1 - l_2| / 2 ; coeff_i = -lr (l_i - l_0) / (2 sigma).
  double cu[2];
  for (int i = 0; i < 2; ++i) {
    at::Tensor u = draw_z(32, g.params[0].id, r.forwards[size_t(i + 1)].terms[0].seed, k::Dist::Rademacher, at::kCPU);
    EXPECT_TRUE(((u == 1) | (u == -1)).all().item<bool>());
    cu[i] = (c * u.to(at::kDouble)).sum().item<double>();
  }
  const double sigma = cfg.eps * std::fabs(cu[0] - cu[1]) / 2;
  for (int i = 0; i < 2; ++i) {
    double expect = -cfg.lr * cfg.eps * cu[i] / (2 * sigma);
    EXPECT_NEAR(opt->pending().terms[size_t(i)].coeff, expect, 1e-3 * std::fabs(expect));
  }
}

TEST(Quadratic, FzooSkipsStepWhenLossesAreEqual) {
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::FZOO;
  auto opt = make_optimizer(cfg, 1, 10);
  opt->begin_step(0);
  auto info = opt->end_step(std::vector<double>(size_t(cfg.fzoo_n + 1), 2.0));
  EXPECT_TRUE(info.value("skipped", false));
  EXPECT_TRUE(opt->pending().empty());
}

TEST(Quadratic, SubzeroUpdateLiesInSpanUV) {
  GroupLayout g = one_matrix(40, 30);
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::SubZero;
  cfg.subzero_rank = 4;
  cfg.subzero_period = 5;
  cfg.lr = 0.1;
  auto opt = make_optimizer(cfg, 3, 10);
  auto& dirs = dynamic_cast<LowRankDirections&>(opt->directions());
  at::Tensor th = at::randn({40 * 30}, at::kFloat);
  Quadratic q{at::ones({1200}, at::kDouble), at::zeros({1200}, at::kDouble)};
  for (int64_t t : {3, 4}) {  // step 4 is the last of basis 0; its update applies in basis 1
    StepRequest r = opt->begin_step(t);
    opt->end_step(eval(g, *opt, r, th, q));
    at::Tensor before = th.clone();
    if (t == 4) opt->begin_step(5);  // a new period starts before the delayed update is applied
    opt->apply_update(g, th);
    opt->clear_pending();
    auto uv = dirs.basis(g.params[0], 0, at::kCPU);  // the update of step 4 must use basis 0
    at::Tensor U = uv.first.to(at::kDouble), V = uv.second.to(at::kDouble);
    EXPECT_LT((U.t().mm(U) - at::eye(4, at::kDouble)).abs().max().item<double>(), 1e-6);
    EXPECT_LT((V.t().mm(V) - at::eye(4, at::kDouble)).abs().max().item<double>(), 1e-6);
    at::Tensor D = (th - before).to(at::kDouble).view({40, 30});
    ASSERT_GT(D.norm().item<double>(), 0);
    at::Tensor off = D - U.mm(U.t()).mm(D).mm(V).mm(V.t());
    EXPECT_LT(off.norm().item<double>(), 1e-5 * D.norm().item<double>() + 1e-7) << "step " << t;
  }
  auto b1 = dirs.basis(g.params[0], 1, at::kCPU);
  auto b0 = dirs.basis(g.params[0], 0, at::kCPU);
  EXPECT_GT((b1.first - b0.first).abs().max().item<double>(), 1e-3);  // resampled
}

TEST(Quadratic, SvrgInnerStepWithZeroEta1IsMinusEta2G) {
  GroupLayout g = one_matrix(8, 16);
  Quadratic q{at::rand({128}, at::kDouble) + 0.5, at::randn({128}, at::kDouble)};
  at::Tensor th = at::randn({128}, at::kFloat);
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::SVRG;
  cfg.svrg_q = 2;
  cfg.svrg_lr_full = 0;
  cfg.svrg_lr_inner = 1e-2;
  auto opt = make_optimizer(cfg, 11, 10);
  StepRequest r0 = opt->begin_step(0);
  EXPECT_TRUE(r0.full_batch);
  double g_full = opt->end_step(eval(g, *opt, r0, th, q))["projected_grad"].get<double>();
  opt->apply_update(g, th);
  opt->clear_pending();
  StepRequest r1 = opt->begin_step(1);
  ASSERT_EQ(r1.forwards.size(), 4u);
  auto L = eval(g, *opt, r1, th, q);
  EXPECT_EQ(L[0], L[2]);  // anchor == theta exactly: shared z, zero offset
  EXPECT_EQ(L[1], L[3]);
  opt->end_step(L);
  // pending = -eta2 * (0 * z_1 + g_full * z_0)
  const auto& p = opt->pending();
  ASSERT_EQ(p.terms.size(), 2u);
  EXPECT_EQ(p.terms[0].coeff, 0.0);
  EXPECT_DOUBLE_EQ(p.terms[1].coeff, -cfg.svrg_lr_inner * g_full);
  EXPECT_EQ(p.terms[1].seed, r0.forwards[0].terms[0].seed);
}

TEST(OptimizerConfigErrors, BadHyperparametersAreRejected) {
  auto bad = [](auto mutate, const char* key) {
    OptimizerConfig c;
    mutate(c);
    try {
      make_optimizer(c, 0, 10, "run.toml");
      ADD_FAILURE() << key << " accepted";
    } catch (const zoff::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("run.toml"), std::string::npos) << e.what();
    }
  };
  bad([](OptimizerConfig& c) { c.eps = 0; }, "optimizer.eps");
  bad([](OptimizerConfig& c) { c.eps = -1; }, "optimizer.eps");
  bad([](OptimizerConfig& c) { c.kind = OptimizerKind::FZOO; c.fzoo_n = 1; }, "optimizer.fzoo_n");
  bad([](OptimizerConfig& c) { c.kind = OptimizerKind::SVRG; c.svrg_q = 0; }, "optimizer.svrg_q");
  bad([](OptimizerConfig& c) { c.kind = OptimizerKind::SubZero; c.subzero_rank = 0; }, "optimizer.subzero_rank");
  bad([](OptimizerConfig& c) { c.lr_schedule = "step"; }, "optimizer.lr_schedule");
  // r larger than a matrix dimension: caught when the basis is built.
  OptimizerConfig c;
  c.kind = OptimizerKind::SubZero;
  c.subzero_rank = 50;
  auto opt = make_optimizer(c, 0, 10);
  GroupLayout g = one_matrix(40, 30);
  EXPECT_THROW(dynamic_cast<LowRankDirections&>(opt->directions()).basis(g.params[0], 0, at::kCPU), zoff::InputError);
}

}  // namespace
}  // namespace zoff
