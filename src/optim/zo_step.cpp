// ZoStep: applies pending updates and runs all perturbed forwards through each visited group.
#include "zoff/zo_step.h"

#include "device_dispatch.h"
#include "zoff/error.h"
#include "zoff/weights.h"

namespace zoff {

// Hands out theta + sum(terms of the current forward) per parameter: the identity view when a
// forward is clean and already in the compute dtype, else a perturbed copy. Matrices share one
// scratch (valid until the next matrix get, per the WeightSource contract); vectors get small
// buffers of their own.
class ZoStep::Source : public WeightSource {
 public:
  Source(const Model& m, Directions* dirs, at::ScalarType compute, const at::Device& dev)
      : model_(m), dirs_(dirs), elem_(dynamic_cast<ElementwiseDirections*>(dirs)), compute_(compute),
        flats_(size_t(m.num_groups())) {
    int64_t big = 0;
    for (auto& g : m.groups())
      for (auto& p : g.params)
        if (p.shape.size() >= 2) big = std::max(big, p.numel);
    scratch_ = at::empty({big}, at::TensorOptions().dtype(compute).device(dev));
  }
  void set_flat(int g, const at::Tensor& f) { flats_[size_t(g)] = f; }
  // Note [fp8 groups]: a streamed block that travelled as fp8 arrives as bytes: numel e4m3
  // payload bytes (padded to 16), then one float scale per row (Note [Transfer layout]). Its
  // weights are dequantised (and perturbed) in the same fused pass, straight into the scratch.
  void set_fp8_rows(std::vector<std::vector<int64_t>> rows) { fp8_rows_ = std::move(rows); }
  const std::vector<int64_t>& fp8_rows(int g) const { return fp8_rows_.at(size_t(g)); }
  // The bf16 forward weights of one group that did not arrive as bf16: an fp8 group after its
  // update (Note [fp8 at the GPU site]) or a decoded split group (Note [Split bf16 masters]).
  at::Tensor work16(int64_t numel) {
    if (!work16_.defined()) {
      int64_t big = 0;
      for (auto& g : model_.groups()) big = std::max(big, g.numel);
      work16_ = at::empty({big}, scratch_.options().dtype(at::kBFloat16));
    }
    return work16_.narrow(0, 0, numel);
  }
  int64_t work16_bytes() const { return work16_.defined() ? work16_.numel() * 2 : 0; }
  void set_terms(const std::vector<DirTerm>* t) { terms_ = t; }
  int64_t scratch_bytes() const {
    int64_t b = scratch_.numel() * int64_t(scratch_.element_size());
    return mirror_.defined() ? b + mirror_.numel() * int64_t(mirror_.element_size()) : b;
  }
  // Note [Mirror forwards] (zo_step.h).
  void enable_mirror(bool on) {
    if (!on) {
      mirror_ = at::Tensor();
      return;
    }
    if (mirror_.defined()) return;
    int64_t big = 0;
    for (auto& g : model_.groups()) big = std::max(big, g.numel);
    mirror_ = at::empty({big}, scratch_.options());
  }
  bool mirror_enabled() const { return mirror_.defined(); }
  int64_t mirror_reads() const { return mirror_reads_; }
  // role 1: this forward also fills the mirror buffer for group g; role 2: it reads it.
  void set_role(int role, int group) {
    role_ = mirror_.defined() ? role : 0;
    if (role_ == 1) {
      mirror_group_ = group;
      mirror_ok_.assign(model_.group(group).params.size(), 0);
    }
  }

  at::Tensor get(int group, int param) override {
    const at::Tensor& flat = flats_.at(size_t(group));
    ZOFF_CHECK(flat.defined(), "group ", model_.group(group).name, " is not resident");
    const ParamInfo& p = model_.group(group).params.at(size_t(param));
    if (flat.scalar_type() == at::kByte) return get_fp8(group, param, p, flat);
    at::Tensor theta = param_view(model_.group(group), param, flat);
    if ((terms_ == nullptr || terms_->empty()) && theta.scalar_type() == compute_) return theta;
    const bool matrix = p.shape.size() >= 2;
    if (role_ == 2 && matrix && mirror_group_ == group && mirror_ok_.at(size_t(param))) {
      ++mirror_reads_;
      return mirror_.narrow(0, p.offset, p.numel).view(p.shape);
    }
    at::Tensor out = out_for(p);
    if (terms_ == nullptr || terms_->empty()) {
      out.copy_(theta);
    } else if (role_ == 1 && matrix && elem_ != nullptr && group == mirror_group_) {
      elem_->perturb_mirror(p, theta, *terms_, out, mirror_.narrow(0, p.offset, p.numel).view(p.shape));
      mirror_ok_.at(size_t(param)) = 1;
    } else {
      dirs_->perturb(p, theta, *terms_, out);
    }
    return out;
  }

 private:
  const Model& model_;
  Directions* dirs_;
  ElementwiseDirections* elem_;  // dirs_ when element-wise (fused kernel paths), else null
  at::ScalarType compute_;
  std::vector<at::Tensor> flats_;
  at::Tensor scratch_;
  const std::vector<DirTerm>* terms_ = nullptr;
  std::vector<std::vector<int64_t>> fp8_rows_;  // per group, per param: first row index
  at::Tensor mirror_;  // one largest group in the compute dtype, when mirroring is on
  at::Tensor work16_;  // one largest group in bf16, once an fp8 update or a split visit needed it
  int role_ = 0, mirror_group_ = -1;
  int64_t mirror_reads_ = 0;
  std::vector<char> mirror_ok_;  // per param of mirror_group_: its mirror is filled

  at::Tensor out_for(const ParamInfo& p) {
    return p.shape.size() >= 2 ? scratch_.narrow(0, 0, p.numel).view(p.shape) : at::empty(p.shape, scratch_.options());
  }

  at::Tensor get_fp8(int group, int param, const ParamInfo& p, const at::Tensor& flat) {
    const int64_t numel = model_.group(group).numel;
    const float* scales = reinterpret_cast<const float*>(flat.data_ptr<uint8_t>() + (numel + 15) / 16 * 16);
    const int64_t row0 = fp8_rows_.at(size_t(group)).at(size_t(param));
    at::Tensor out = out_for(p);
    std::vector<k::ZTerm> kt = (terms_ && elem_) ? to_kernel_terms(*terms_) : std::vector<k::ZTerm>{};
    k::PerturbArgs a{};
    a.out = out.data_ptr();
    a.out_elem = elem_of(out.scalar_type());
    a.src = flat.data_ptr<uint8_t>() + p.offset;
    a.src_elem = k::Elem::F8E4M3;
    a.row_scales = scales + row0;
    a.row_len = p.shape.size() == 2 ? p.shape[1] : p.numel;
    a.n = p.numel;
    a.pid = p.id;
    a.dist = elem_ ? elem_->dist() : k::Dist::Gaussian;
    a.terms = kt.data();
    a.nterms = int(kt.size());
    dispatch_zo_perturb(a, flat.device());  // dequantise (+ element-wise perturbation)
    if (terms_ && !terms_->empty() && !elem_) {
      // Low-rank (or other) directions: perturb the dequantised weight in place.
      dirs_->perturb(p, out, *terms_, out);
    }
    return out;
  }
};

ZoStep::ZoStep(const Model& m, ZoOptimizer* opt, at::ScalarType compute, const at::Device& device)
    : model_(m), opt_(opt), compute_(compute), device_(device) {
  static ElementwiseDirections plain(k::Dist::Gaussian);  // eval without an optimizer: clean forwards only
  src_ = std::make_unique<Source>(m, opt ? &opt->directions() : &plain, compute, device);
  // First row of each parameter inside its group, counting one row per vector and per padding
  // run, exactly as the offload engine's block layout counts rows (run_plan.cpp block_desc).
  std::vector<std::vector<int64_t>> rows;
  for (auto& g : m.groups()) {
    std::vector<int64_t> r;
    int64_t row = 0, covered = 0;
    for (auto& p : g.params) {
      if (p.offset > covered) row += 1;  // padding run
      r.push_back(row);
      row += p.shape.size() == 2 ? p.shape[0] : 1;
      covered = p.offset + p.numel;
    }
    rows.push_back(std::move(r));
  }
  src_->set_fp8_rows(std::move(rows));
}

ZoStep::~ZoStep() = default;

int64_t ZoStep::scratch_bytes() const { return src_->scratch_bytes(); }

int64_t ZoStep::work16_bytes() const { return src_->work16_bytes(); }

void ZoStep::set_mirror(bool on) { src_->enable_mirror(on); }

int64_t ZoStep::mirror_reads() const { return src_->mirror_reads(); }

namespace {
// True when b's terms are exactly a's negated (same seeds and bases): b's weights are a's mirror.
bool is_mirror(const Perturbation& a, const Perturbation& b) {
  if (a.terms.empty() || a.terms.size() != b.terms.size()) return false;
  for (size_t i = 0; i < a.terms.size(); ++i) {
    const DirTerm &x = a.terms[i], &y = b.terms[i];
    if (x.seed != y.seed || x.basis != y.basis || x.coeff == 0 || y.coeff != -x.coeff) return false;
  }
  return true;
}
}  // namespace

void ZoStep::begin_pass(const StepRequest& req, const StepBatch& batch, bool apply_pending, bool keep_rows) {
  ZOFF_CHECK(!req.forwards.empty(), "a step needs at least one forward");
  ZOFF_CHECK(!apply_pending || opt_ != nullptr, "apply_pending without an optimizer");
  req_ = req;
  batch_.input_ids = batch.input_ids.to(device_, at::kLong);
  batch_.attention_mask = batch.attention_mask.to(device_, at::kLong);
  batch_.labels = batch.labels.defined() ? batch.labels.to(device_, at::kLong)
                                         : labels_from_inputs(batch_.input_ids, batch_.attention_mask);
  ctx_ = model_.make_context(batch.attention_mask, compute_, device_);
  apply_pending_ = apply_pending;
  keep_rows_ = keep_rows;
  next_group_ = 0;
  h_.assign(req_.forwards.size(), at::Tensor());
  loss_.assign(req_.forwards.size(), at::Tensor());
  // Mirror pairs (Note [Mirror forwards]): each forward pairs with the first later unpaired one
  // that is its negation.
  role_.assign(req_.forwards.size(), 0);
  if (src_->mirror_enabled())
    for (size_t f = 0; f < req_.forwards.size(); ++f) {
      if (role_[f] != 0) continue;
      for (size_t g = f + 1; g < req_.forwards.size(); ++g)
        if (role_[g] == 0 && is_mirror(req_.forwards[f], req_.forwards[g])) {
          role_[f] = 1;
          role_[g] = 2;
          break;
        }
    }
}

void ZoStep::visit(int g, const at::Tensor& flat, bool apply_here, const k::DeltaOut* delta, const Fp8Visit* fp8v) {
  ZOFF_CHECK(g == next_group_, "visit order: expected group ", next_group_, ", got ", g);
  const bool fp8 = flat.scalar_type() == at::kByte;
  ZOFF_CHECK(fp8 ? flat.numel() >= model_.group(g).numel : flat.numel() == model_.group(g).numel, "group ", g,
             " buffer has the wrong size");
  const bool update = apply_pending_ && apply_here && !opt_->pending().empty();
  ZOFF_CHECK(!fp8 || !update || fp8v != nullptr, "group ", g,
             ": an fp8 transfer copy takes an update only as the fp8 GPU-site delta (Note [fp8 at the GPU site])");
  ZOFF_CHECK(fp8v == nullptr || fp8, "group ", g, ": an fp8 visit needs the group's fp8 bytes");
  if (fp8 && update) {
    at::Tensor w = src_->work16(model_.group(g).numel);
    opt_->apply_update_fp8(model_.group(g), flat, src_->fp8_rows(g), w, fp8v->delta, fp8v->recipe);
    src_->set_flat(g, w);
  } else {
    if (update) {
      if (delta != nullptr) opt_->apply_update(model_.group(g), flat, *delta);
      else opt_->apply_update(model_.group(g), flat);
    }
    src_->set_flat(g, flat);
  }
  const int L = model_.num_layers();
  for (size_t f = 0; f < req_.forwards.size(); ++f) {
    src_->set_terms(&req_.forwards[f].terms);
    src_->set_role(role_[f], g);
    if (g == model_.embed_group()) {
      h_[f] = model_.embed(batch_.input_ids, ctx_, *src_);
    } else if (g <= L) {
      h_[f] = model_.block(g - 1, h_[f], ctx_, *src_);
    } else {
      at::Tensor logits = model_.head(h_[f], *src_);
      h_[f] = at::Tensor();
      at::Tensor nll, cnt;
      causal_lm_row_losses(logits, batch_.labels, &nll, &cnt);
      loss_[f] = nll.sum() / cnt.sum().clamp_min(1).to(at::kFloat);
      if (keep_rows_) {
        if (f == 0) {
          row_nll_ = at::empty({int64_t(req_.forwards.size()), nll.size(0)}, at::kFloat);
          row_count_ = at::empty({int64_t(req_.forwards.size()), nll.size(0)}, at::kLong);
        }
        row_nll_[int64_t(f)].copy_(nll);
        row_count_[int64_t(f)].copy_(cnt);
      }
      if (f == 0) count_ = cnt.sum();
    }
  }
  src_->set_terms(nullptr);
  src_->set_role(0, g);
  ++next_group_;
}

void ZoStep::visit_split(int g, const at::Tensor& planes, bool apply_here, const SplitVisit& v) {
  const int64_t n = model_.group(g).numel;
  ZOFF_CHECK(planes.scalar_type() == at::kByte && planes.numel() >= k::split_bytes(n), "group ", g,
             ": split planes need ", k::split_bytes(n), " bytes, got ", planes.numel());
  at::Tensor w = src_->work16(n);
  dispatch_split16_decode(k::split_planes(planes.data_ptr(), n), v.escapes, v.escape_count,
                          static_cast<uint16_t*>(w.data_ptr()), w.device());
  const bool update = apply_pending_ && apply_here && !opt_->pending().empty();
  if (!update) return visit(g, w, false);
  ZOFF_CHECK(v.delta != nullptr, "group ", g, ": a split master takes an update only as a delta (Note [Split bf16 masters])");
  k::DeltaOut d = *v.delta;
  d.overflow = static_cast<uint16_t*>(w.data_ptr());
  if (v.recipe != nullptr) opt_->split_recipe(model_.group(g), v.recipe);
  visit(g, w, true, &d);
}

int64_t ZoStep::scored_tokens() const { return count_.defined() ? count_.item<int64_t>() : 0; }

std::vector<double> ZoStep::losses() {
  ZOFF_CHECK(done(), "losses() before the head was visited");
  at::Tensor all = at::stack(loss_).to(at::kCPU, at::kDouble);
  std::vector<double> out(size_t(all.numel()));
  for (int64_t i = 0; i < all.numel(); ++i) out[size_t(i)] = all[i].item<double>();
  if (apply_pending_) opt_->clear_pending();
  return out;
}

}  // namespace zoff
