// ZoOptimizer base: lr schedule, lazily applied pending update, state for resume, validation.
#include "zoff/optimizer.h"

#include <cmath>

#include "device_dispatch.h"
#include "optimizers.h"
#include "zoff/error.h"
#include "zoff/weights.h"

namespace zoff {

ZoOptimizer::ZoOptimizer(OptimizerConfig cfg, uint64_t seed, int64_t total_steps,
                         std::unique_ptr<Directions> d)
    : cfg_(std::move(cfg)), seed_(seed), total_steps_(total_steps), dirs_(std::move(d)) {}

// Note [LR schedule]
// As the HF Trainer that MeZO runs under: linear warmup from 0 over warmup_steps, then constant,
// linear decay to 0 at total_steps, or cosine decay to 0. The update of step t uses lr_at(t), the
// rate of the step its gradient belongs to, even though it is applied during step t + 1.
double ZoOptimizer::lr_at(int64_t t) const {
  const double lr = cfg_.lr;
  const int64_t w = cfg_.warmup_steps;
  if (w > 0 && t < w) return lr * double(t) / double(w);
  if (cfg_.lr_schedule == "constant") return lr;
  const int64_t span = std::max<int64_t>(1, total_steps_ - w);
  const double progress = std::min(1.0, double(t - w) / double(span));
  if (cfg_.lr_schedule == "linear") return lr * std::max(0.0, 1.0 - progress);
  return lr * 0.5 * (1.0 + std::cos(M_PI * progress));  // cosine
}

void ZoOptimizer::apply_update(const PendingUpdate& u, const GroupLayout& g, const at::Tensor& flat) const {
  apply_impl(u, g, flat, nullptr);
}

bool ZoOptimizer::delta_ok(const PendingUpdate& u) const {
  return dirs_->supports_delta() && int(u.terms.size()) <= k::kMaxTerms;
}

void ZoOptimizer::apply_update(const GroupLayout& g, const at::Tensor& flat, const k::DeltaOut& group_delta) const {
  if (pending_.empty()) return;
  ZOFF_CHECK(delta_ok(pending_), name(), ": this update cannot report a delta (", pending_.terms.size(), " terms)");
  ZOFF_CHECK(flat.scalar_type() != at::kFloat, "delta write-back needs a 16-bit master");
  apply_impl(pending_, g, flat, &group_delta);
}

// Stochastic rounding bits of an update: keyed by its step, distinct from every z seed (odd: never 0).
uint64_t ZoOptimizer::sr_seed_of(const PendingUpdate& u) const {
  return k::step_seed(seed_ ^ 0x5E5E5E5E5E5E5E5Eull, uint64_t(u.step), 0x5) | 1;
}

void ZoOptimizer::apply_update_fp8(const GroupLayout& g, const at::Tensor& q, const std::vector<int64_t>& param_rows,
                                   at::Tensor w, const k::Fp8DeltaOut& gd, k::Fp8RecomputeRecipe* recipe) const {
  if (pending_.empty()) return;
  const PendingUpdate& u = pending_;
  ZOFF_CHECK(delta_ok(u), name(), ": this update cannot report a delta (", u.terms.size(), " terms)");
  const auto* elem = dynamic_cast<const ElementwiseDirections*>(dirs_.get());
  ZOFF_CHECK(elem != nullptr, name(), ": fp8 transfers at the GPU site need element-wise directions");
  ZOFF_CHECK(q.scalar_type() == at::kByte && q.numel() >= g.numel && w.numel() == g.numel &&
                 w.scalar_type() == at::kBFloat16 && param_rows.size() == g.params.size(),
             "apply_update_fp8: group ", g.name, ": bad fp8 bytes, forward-weight buffer or row table");
  std::vector<k::ZTerm> kt = to_kernel_terms(u.terms);
  const uint64_t sr_seed = sr_seed_of(u);
  const float* scales = reinterpret_cast<const float*>(q.data_ptr<uint8_t>() + (g.numel + 15) / 16 * 16);
  if (recipe != nullptr) {
    recipe->params.clear();
    recipe->terms = kt;
    recipe->dist = elem->dist();
    recipe->sr_seed = sr_seed;
  }
  for (size_t i = 0; i < g.params.size(); ++i) {
    const ParamInfo& p = g.params[i];
    ZOFF_CHECK(!p.decays() || u.decay == 0, name(), ": ", p.name,
               ": weight decay cannot be applied from an fp8 copy (Note [fp8 at the GPU site])");
    k::Fp8UpdateArgs a{};
    a.q = q.data_ptr<uint8_t>() + p.offset;
    a.row_scales = scales + param_rows[i];
    a.row_len = p.shape.size() == 2 ? p.shape[1] : p.numel;
    a.w = static_cast<char*>(w.data_ptr()) + p.offset * 2;
    a.w_elem = k::Elem::BF16;
    a.n = p.numel;
    a.pid = p.id;
    a.dist = elem->dist();
    a.terms = kt.data();
    a.nterms = int(kt.size());
    a.sr_seed = sr_seed;
    a.delta = gd;
    a.delta.codes = gd.codes + p.offset / 4;
    a.delta.index_base = gd.index_base + p.offset;
    dispatch_zo_update_fp8(a, w.device());
    if (recipe != nullptr) recipe->params.push_back(k::Fp8RecomputeParam{p.offset, p.numel, p.id});
  }
}

void ZoOptimizer::split_recipe(const GroupLayout& g, k::SplitRecipe* recipe) const {
  const PendingUpdate& u = pending_;
  const auto* elem = dynamic_cast<const ElementwiseDirections*>(dirs_.get());
  ZOFF_CHECK(elem != nullptr, name(), ": split bf16 masters at the GPU site need element-wise directions");
  recipe->params.clear();
  recipe->terms = to_kernel_terms(u.terms);
  recipe->dist = elem->dist();
  recipe->sr_seed = sr_seed_of(u);
  // ElementwiseDirections::update: keep = 1 - float(decay), as the kernel forms it (Note [Term passes]).
  for (const ParamInfo& p : g.params)
    recipe->params.push_back(k::SplitRecomputeParam{p.offset, p.numel, p.id, 1.0f - float(p.decays() ? u.decay : 0.0)});
}

void ZoOptimizer::apply_impl(const PendingUpdate& u, const GroupLayout& g, const at::Tensor& flat,
                             const k::DeltaOut* gd) const {
  if (u.empty()) return;
  const uint64_t sr_seed = sr_seed_of(u);
  for (size_t i = 0; i < g.params.size(); ++i) {
    const ParamInfo& p = g.params[i];
    k::DeltaOut d{};
    if (gd != nullptr) {  // parameter offsets are 16-byte aligned (Note [Parameter groups]): multiples of 4
      d = *gd;
      d.codes = gd->codes + p.offset / 4;
      d.overflow = gd->overflow + p.offset;
      d.index_base = gd->index_base + p.offset;
    }
    dirs_->update(p, param_view(g, int(i), flat), u.terms, p.decays() ? u.decay : 0.0, sr_seed,
                  gd != nullptr ? &d : nullptr);
  }
}

static nlohmann::json terms_json(const std::vector<DirTerm>& t) {
  nlohmann::json a = nlohmann::json::array();
  for (auto& d : t) a.push_back({d.seed, d.coeff, d.basis});
  return a;
}

static std::vector<DirTerm> terms_from(const nlohmann::json& a) {
  std::vector<DirTerm> out;
  for (auto& e : a) out.push_back(DirTerm{e.at(0).get<uint64_t>(), e.at(1).get<double>(), e.at(2).get<int64_t>()});
  return out;
}

nlohmann::json pending_json(const PendingUpdate& p) {
  return {{"step", p.step}, {"terms", terms_json(p.terms)}, {"decay", p.decay}, {"lr", p.lr}};
}

PendingUpdate pending_from(const nlohmann::json& j) {
  PendingUpdate p;
  p.step = j.at("step").get<int64_t>();
  p.terms = terms_from(j.at("terms"));
  p.decay = j.at("decay").get<double>();
  p.lr = j.at("lr").get<double>();
  return p;
}

nlohmann::json ZoOptimizer::state() const {
  return {{"optimizer", name()}, {"seed", seed_}, {"pending", pending_json(pending_)}};
}

void ZoOptimizer::load_state(const nlohmann::json& j) {
  ZOFF_INPUT_CHECK(j.at("optimizer").get<std::string>() == name(), "optimizer state is for '",
                   j.at("optimizer").get<std::string>(), "', the config asks for '", name(), "'");
  ZOFF_INPUT_CHECK(j.at("seed").get<uint64_t>() == seed_, "optimizer state has seed ",
                   j.at("seed").get<uint64_t>(), " but train.seed is ", seed_);
  pending_ = pending_from(j.at("pending"));
}

nlohmann::json terms_to_json(const std::vector<DirTerm>& t) { return terms_json(t); }
std::vector<DirTerm> terms_from_json(const nlohmann::json& a) { return terms_from(a); }

void validate_optimizer_config(const OptimizerConfig& c, const std::string& src) {
  ZOFF_INPUT_CHECK(c.eps > 0 && std::isfinite(c.eps), src, ": optimizer.eps must be > 0 (got ", c.eps, ")");
  ZOFF_INPUT_CHECK(c.lr >= 0 && std::isfinite(c.lr), src, ": optimizer.lr must be >= 0 (got ", c.lr, ")");
  ZOFF_INPUT_CHECK(c.weight_decay >= 0, src, ": optimizer.weight_decay must be >= 0 (got ", c.weight_decay, ")");
  ZOFF_INPUT_CHECK(c.lr_schedule == "constant" || c.lr_schedule == "linear" || c.lr_schedule == "cosine",
                   src, ": optimizer.lr_schedule must be constant, linear or cosine (got '", c.lr_schedule, "')");
  ZOFF_INPUT_CHECK(c.warmup_steps >= 0, src, ": optimizer.warmup_steps must be >= 0");
  ZOFF_INPUT_CHECK(c.direction == "gaussian" || c.direction == "rademacher", src,
                   ": optimizer.direction must be gaussian or rademacher (got '", c.direction, "')");
  switch (c.kind) {
    case OptimizerKind::FZOO:
      ZOFF_INPUT_CHECK(c.fzoo_n >= 2, src, ": optimizer.fzoo_n must be >= 2 (got ", c.fzoo_n, ")");
      ZOFF_INPUT_CHECK(c.fzoo_convention == "code" || c.fzoo_convention == "paper", src,
                       ": optimizer.fzoo_convention must be code or paper (got '", c.fzoo_convention, "')");
      break;
    case OptimizerKind::SubZero:
      ZOFF_INPUT_CHECK(c.subzero_rank >= 1, src, ": optimizer.subzero_rank must be >= 1 (got ", c.subzero_rank, ")");
      ZOFF_INPUT_CHECK(c.subzero_period >= 1, src, ": optimizer.subzero_period must be >= 1 (got ", c.subzero_period, ")");
      break;
    case OptimizerKind::SVRG:
      ZOFF_INPUT_CHECK(c.svrg_q >= 1, src, ": optimizer.svrg_q must be >= 1 (got ", c.svrg_q, ")");
      ZOFF_INPUT_CHECK(c.svrg_lr_inner >= 0 && c.svrg_lr_full >= 0, src,
                       ": optimizer.svrg_lr_inner and svrg_lr_full must be >= 0");
      ZOFF_INPUT_CHECK(c.svrg_anchor == "rebuild", src, ": optimizer.svrg_anchor = '", c.svrg_anchor,
                       "' is not supported: zoff rebuilds the anchor from seeds (docs/optimizers.md)");
      ZOFF_INPUT_CHECK(c.weight_decay == 0, src,
                       ": optimizer.weight_decay must be 0 with svrg (the anchor is rebuilt from "
                       "additive seed terms; MeZO-SVRG uses no weight decay)");
      break;
    case OptimizerKind::MeZO: break;
  }
}

std::unique_ptr<ZoOptimizer> make_optimizer(const OptimizerConfig& cfg, uint64_t seed,
                                            int64_t total_steps, const std::string& source,
                                            std::unique_ptr<Directions> dirs) {
  validate_optimizer_config(cfg, source);
  std::unique_ptr<ZoOptimizer> o;
  switch (cfg.kind) {
    case OptimizerKind::MeZO: o = make_mezo(cfg, seed, total_steps); break;
    case OptimizerKind::SubZero: o = make_subzero(cfg, seed, total_steps); break;
    case OptimizerKind::FZOO: o = make_fzoo(cfg, seed, total_steps); break;
    case OptimizerKind::SVRG: o = make_svrg(cfg, seed, total_steps); break;
  }
  if (dirs) o->replace_directions(std::move(dirs));
  return o;
}

}  // namespace zoff
