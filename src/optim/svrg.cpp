// MeZO-SVRG: full-batch SPSA anchors every q steps, variance-reduced minibatch steps in between.
#include <cmath>

#include "optimizers.h"
#include "zoff/error.h"
#include "zoff/log.h"

namespace zoff {
namespace {

// Note [MeZO-SVRG]
// Gautam et al. 2024, Algorithm 1 (MeZO-SVRG):
//   if t mod q == 0:  g <- ĝ(theta; full batch) (SPSA with z_a), anchor <- theta, theta <- theta - eta1 g
//   else:             theta <- theta - eta2 (ĝ_I(theta) - ĝ_I(anchor) + g), with one z for both ĝ_I
// g is kept as (seed z_a, scalar g_a). The anchor is never stored: every update since the anchor
// is a sum of seed terms, so anchor = theta + A with A = eta1 g_a z_a + sum_j eta2 (d_j z_j + g_a z_a),
// and the forwards at anchor ± eps z are theta + A ± eps z, generated in the same fused pass as
// any perturbation (Note [Directions]). Differences from the official code: it stores a copy of
// the anchor parameters (memory 1× the model) — rebuilding is exact up to fp32 rounding of the
// sum; it uses no weight decay, and neither do we (rejected in the config).
class SVRG : public ZoOptimizer {
 public:
  using ZoOptimizer::ZoOptimizer;
  const char* name() const override { return "svrg"; }

  StepRequest begin_step(int64_t t) override {
    step_ = t;
    seed_t_ = k::step_seed(seed_, uint64_t(t), 0);
    anchor_step_now_ = (t % cfg_.svrg_q == 0) || !have_anchor_;
    StepRequest r;
    r.step = t;
    const double e = cfg_.eps;
    r.forwards = {Perturbation{{DirTerm{seed_t_, e, 0}}}, Perturbation{{DirTerm{seed_t_, -e, 0}}}};
    if (anchor_step_now_) {
      r.full_batch = true;
    } else {
      Perturbation ap = Perturbation{offset_}, am = Perturbation{offset_};
      ap.terms.push_back(DirTerm{seed_t_, e, 0});
      am.terms.push_back(DirTerm{seed_t_, -e, 0});
      r.forwards.push_back(ap);
      r.forwards.push_back(am);
    }
    return r;
  }

  nlohmann::json end_step(const std::vector<double>& L) override {
    const double e = cfg_.eps;
    const double g_theta = (L.at(0) - L.at(1)) / (2 * e);
    nlohmann::json info = {{"loss", 0.5 * (L[0] + L[1])}, {"projected_grad", g_theta}};
    const bool finite = std::isfinite(g_theta) && (anchor_step_now_ || (std::isfinite(L.at(2)) && std::isfinite(L.at(3))));
    if (!finite) {
      log::warn("step {}: non-finite SVRG estimate; update skipped", step_);
      info["skipped"] = true;
      return info;
    }
    pending_.step = step_;
    pending_.decay = 0;
    if (anchor_step_now_) {
      const double eta1 = cfg_.svrg_lr_full;
      anchor_seed_ = seed_t_;
      g_anchor_ = g_theta;
      have_anchor_ = true;
      pending_.terms = {DirTerm{seed_t_, -eta1 * g_theta, 0}};
      pending_.lr = eta1;
      offset_ = {DirTerm{anchor_seed_, eta1 * g_anchor_, 0}};
      info["anchor"] = true;
    } else {
      const double eta2 = cfg_.svrg_lr_inner;
      const double g_anchor_batch = (L.at(2) - L.at(3)) / (2 * e);
      const double d = g_theta - g_anchor_batch;
      pending_.terms = {DirTerm{seed_t_, -eta2 * d, 0}, DirTerm{anchor_seed_, -eta2 * g_anchor_, 0}};
      pending_.lr = eta2;
      offset_[0].coeff += eta2 * g_anchor_;
      offset_.push_back(DirTerm{seed_t_, eta2 * d, 0});
      info["variance_reduced_grad"] = d + g_anchor_;
    }
    return info;
  }

  nlohmann::json state() const override {
    nlohmann::json j = ZoOptimizer::state();
    j["svrg"] = {{"have_anchor", have_anchor_}, {"anchor_seed", anchor_seed_}, {"g_anchor", g_anchor_},
                 {"offset", terms_to_json(offset_)}};
    return j;
  }
  void load_state(const nlohmann::json& j) override {
    ZoOptimizer::load_state(j);
    const auto& s = j.at("svrg");
    have_anchor_ = s.at("have_anchor").get<bool>();
    anchor_seed_ = s.at("anchor_seed").get<uint64_t>();
    g_anchor_ = s.at("g_anchor").get<double>();
    offset_ = terms_from_json(s.at("offset"));
  }

 private:
  uint64_t seed_t_ = 0;
  bool anchor_step_now_ = false;
  bool have_anchor_ = false;
  uint64_t anchor_seed_ = 0;
  double g_anchor_ = 0;
  std::vector<DirTerm> offset_;  // anchor = theta + sum offset_ (relative to the CURRENT theta)
};

}  // namespace

std::unique_ptr<ZoOptimizer> make_svrg(const OptimizerConfig& c, uint64_t seed, int64_t total) {
  return std::make_unique<SVRG>(c, seed, total, std::make_unique<ElementwiseDirections>(k::Dist::Gaussian));
}

}  // namespace zoff
