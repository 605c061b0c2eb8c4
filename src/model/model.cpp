// Forward pass of OPT, Llama and Qwen2 blocks over weights handed out by a WeightSource.
#include "zoff/model.h"

#include <torch/version.h>  // TORCH_VERSION_MAJOR (tiny header; ATen does not define it)

#include <cmath>
#include <limits>

#include "zoff/error.h"

namespace zoff {

std::vector<GroupLayout> build_groups(const ModelSpec& s);  // layout.cpp

namespace {

// Role order of the parameter indices kept in Model::slots_ (absent parameters are -1).
const char* const kOptBlockRoles[] = {
    "self_attn_layer_norm.weight", "self_attn_layer_norm.bias", "self_attn.q_proj.weight",
    "self_attn.q_proj.bias",       "self_attn.k_proj.weight",   "self_attn.k_proj.bias",
    "self_attn.v_proj.weight",     "self_attn.v_proj.bias",     "self_attn.out_proj.weight",
    "self_attn.out_proj.bias",     "final_layer_norm.weight",   "final_layer_norm.bias",
    "fc1.weight",                  "fc1.bias",                  "fc2.weight",
    "fc2.bias"};
const char* const kLlamaBlockRoles[] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
    "self_attn.k_proj.weight", "self_attn.k_proj.bias",  "self_attn.v_proj.weight",
    "self_attn.v_proj.bias",  "self_attn.o_proj.weight", "self_attn.o_proj.bias",
    "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.gate_proj.bias",
    "mlp.up_proj.weight",     "mlp.up_proj.bias",        "mlp.down_proj.weight",
    "mlp.down_proj.bias"};
const char* const kOptEmbedRoles[] = {"embed_tokens.weight", "embed_positions.weight",
                                      "project_in.weight"};
const char* const kOptHeadRoles[] = {"final_layer_norm.weight", "final_layer_norm.bias",
                                     "project_out.weight", "lm_head.weight"};
const char* const kLlamaEmbedRoles[] = {"embed_tokens.weight"};
const char* const kLlamaHeadRoles[] = {"model.norm.weight", "lm_head.weight"};

template <size_t N>
std::vector<int> resolve(const GroupLayout& g, const char* const (&roles)[N]) {
  std::vector<int> out(N, -1);
  for (size_t r = 0; r < N; ++r) {
    const std::string suffix = roles[r];
    for (size_t i = 0; i < g.params.size(); ++i) {
      const std::string& n = g.params[i].name;
      if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          (n.size() == suffix.size() || n[n.size() - suffix.size() - 1] == '.'))
        out[r] = int(i);
    }
  }
  return out;
}

// w.get() for an optional parameter: an undefined tensor when the model has none.
at::Tensor maybe(WeightSource& w, int group, int idx) {
  return idx < 0 ? at::Tensor() : w.get(group, idx);
}

at::Tensor linear(const at::Tensor& x, WeightSource& w, int group, int wi, int bi) {
  at::Tensor W = w.get(group, wi);
  at::Tensor b = maybe(w, group, bi);
  return at::linear(x, W, b);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean({-1}, /*keepdim=*/true);
  at::Tensor y = (xf * at::rsqrt(var + eps)).to(x.scalar_type());
  return weight * y;
}

at::Tensor rotate_half(const at::Tensor& x) {
  int64_t h = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

// q [B,T,nh*D], k/v [B,T,nkv*D] -> [B,T,nh*D]. Masked softmax attention (Note [Attention path]).
at::Tensor attention(at::Tensor q, at::Tensor k, at::Tensor v, const AttnContext& ctx, int64_t nh,
                     int64_t nkv, int64_t D, bool rope) {
  const int64_t B = q.size(0), T = q.size(1);
  q = q.view({B, T, nh, D}).transpose(1, 2);
  k = k.view({B, T, nkv, D}).transpose(1, 2);
  v = v.view({B, T, nkv, D}).transpose(1, 2);
  if (rope) {
    at::Tensor cos = ctx.rope_cos.unsqueeze(1), sin = ctx.rope_sin.unsqueeze(1);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
  }
  if (nkv != nh) {
    k = k.repeat_interleave(nh / nkv, 1);
    v = v.repeat_interleave(nh / nkv, 1);
  }
  // Note [Attention path]
  // LibTorch >= 2.0 has at::scaled_dot_product_attention, which picks fused kernels on the GPU;
  // 1.13 only has a private variant, so there we compute the same masked softmax explicitly.
  // The mask is additive (0 / a large negative, Note [Mask value]). An explicit mask rules out
  // the flash kernel (and its skipping of the masked half), so a batch without padding
  // (ctx.causal_only, the usual packed or full-length batch) asks for is_causal instead: the
  // same masked softmax, up to rounding.
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  at::Tensor o = ctx.causal_only ? at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true)
                                 : at::scaled_dot_product_attention(q, k, v, ctx.mask);
#else
  at::Tensor s = at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(D)));
  s = s + ctx.mask;
  at::Tensor p = at::softmax(s, -1, at::kFloat).to(q.scalar_type());
  at::Tensor o = at::matmul(p, v);
#endif
  return o.transpose(1, 2).reshape({B, T, nh * D});
}

at::Tensor activation(const at::Tensor& x, const std::string& act) {
  if (act == "relu") return at::relu(x);
  if (act == "gelu") return at::gelu(x);
  if (act == "silu" || act == "swish") return at::silu(x);
  ZOFF_FAIL("unsupported activation '", act, "'");
}

}  // namespace

Model::Model(ModelSpec spec) : spec_(std::move(spec)) {
  spec_.validate("model spec");
  groups_ = build_groups(spec_);
  slots_.resize(groups_.size());
  const bool opt = spec_.arch == Arch::OPT;
  slots_[0] = opt ? resolve(groups_[0], kOptEmbedRoles) : resolve(groups_[0], kLlamaEmbedRoles);
  for (int l = 0; l < num_layers(); ++l)
    slots_[size_t(l + 1)] = opt ? resolve(groups_[size_t(l + 1)], kOptBlockRoles)
                                : resolve(groups_[size_t(l + 1)], kLlamaBlockRoles);
  slots_.back() = opt ? resolve(groups_.back(), kOptHeadRoles) : resolve(groups_.back(), kLlamaHeadRoles);
}

bool Model::find_param(const std::string& name, int* group, int* param) const {
  for (size_t g = 0; g < groups_.size(); ++g) {
    int i = groups_[g].index_of(name);
    if (i >= 0) {
      *group = int(g);
      *param = i;
      return true;
    }
  }
  return false;
}

int64_t Model::num_params() const {
  int64_t n = 0;
  for (auto& g : groups_)
    for (auto& p : g.params) n += p.numel;
  return n;
}

AttnContext Model::make_context(const at::Tensor& attention_mask, at::ScalarType dtype,
                                const at::Device& device) const {
  ZOFF_CHECK(attention_mask.dim() == 2, "attention_mask must be [B, T]");
  AttnContext ctx;
  at::Tensor am = attention_mask.to(device, at::kLong);
  // Read on the host only when the mask is there already (no device sync for it).
  ctx.causal_only = attention_mask.device().is_cpu() && attention_mask.numel() > 0 &&
                    attention_mask.ne(0).all().item<bool>();
  const int64_t B = am.size(0), T = am.size(1);
  auto lopt = at::TensorOptions().device(device);
  // Note [Mask value]
  // Masked scores get half the dtype's lowest finite value: exp() of it underflows to 0 like
  // -inf would, but a row whose keys are all masked (left padding) stays finite instead of NaN,
  // and adding it to a score cannot overflow to -inf.
  double neg = 0.5 * (dtype == at::kHalf ? -65504.0
                      : dtype == at::kBFloat16 ? -3.3895313892515355e38
                                                : double(std::numeric_limits<float>::lowest()));
  at::Tensor causal = at::ones({T, T}, lopt.dtype(at::kBool)).tril();
  at::Tensor keep = causal.unsqueeze(0) & am.to(at::kBool).unsqueeze(1);  // [B,T,T]
  ctx.mask = at::zeros({B, 1, T, T}, lopt.dtype(dtype)).masked_fill(keep.logical_not().unsqueeze(1), neg);
  if (spec_.arch == Arch::OPT) {
    // HF OPT: positions from the cumulative sum of the mask; padded positions get -1.
    ctx.positions = at::cumsum(am, 1) * am - 1;
  } else {
    ctx.positions = at::arange(T, lopt.dtype(at::kLong)).unsqueeze(0).expand({B, T});
    const int64_t D = spec_.head_dim;
    at::Tensor inv = at::pow(spec_.rope_theta,
                             at::arange(0, D, 2, lopt.dtype(at::kFloat)) / double(D)).reciprocal();
    at::Tensor freqs = ctx.positions.to(at::kFloat).unsqueeze(-1) * inv;  // [B,T,D/2]
    at::Tensor emb = at::cat({freqs, freqs}, -1);
    ctx.rope_cos = emb.cos().to(dtype);
    ctx.rope_sin = emb.sin().to(dtype);
  }
  return ctx;
}

at::Tensor Model::embed(const at::Tensor& ids, const AttnContext& ctx, WeightSource& w) const {
  const auto& s = slots_[0];
  at::Tensor tok = w.get(0, s[0]);
  at::Tensor h = at::embedding(tok, ids);
  if (spec_.arch != Arch::OPT) return h;
  if (s[2] >= 0) h = at::linear(h, w.get(0, s[2]));
  at::Tensor pos = w.get(0, s[1]);
  return h + at::embedding(pos, ctx.positions + spec_.position_offset);
}

at::Tensor Model::block(int layer, const at::Tensor& h, const AttnContext& ctx, WeightSource& w) const {
  ZOFF_CHECK(layer >= 0 && layer < num_layers(), "layer ", layer, " out of range");
  return spec_.arch == Arch::OPT ? opt_block(layer, h, ctx, w) : llama_block(layer, h, ctx, w);
}

at::Tensor Model::opt_block(int layer, const at::Tensor& h_in, const AttnContext& ctx,
                            WeightSource& w) const {
  const int g = layer_group(layer);
  const auto& s = slots_[size_t(g)];
  const int64_t H = spec_.hidden_size;
  const double eps = spec_.layer_norm_eps;
  auto ln = [&](const at::Tensor& x, int wi, int bi) {
    return at::layer_norm(x, {H}, maybe(w, g, wi), maybe(w, g, bi), eps);
  };
  const bool pre = spec_.do_layer_norm_before;
  at::Tensor h = h_in;
  at::Tensor x = pre ? ln(h, s[0], s[1]) : h;
  at::Tensor q = linear(x, w, g, s[2], s[3]);
  at::Tensor k = linear(x, w, g, s[4], s[5]);
  at::Tensor v = linear(x, w, g, s[6], s[7]);
  at::Tensor a = attention(q, k, v, ctx, spec_.num_heads, spec_.num_heads, spec_.head_dim, false);
  h = h + linear(a, w, g, s[8], s[9]);
  if (!pre) h = ln(h, s[0], s[1]);
  x = pre ? ln(h, s[10], s[11]) : h;
  x = activation(linear(x, w, g, s[12], s[13]), spec_.activation);
  h = h + linear(x, w, g, s[14], s[15]);
  if (!pre) h = ln(h, s[10], s[11]);
  return h;
}

at::Tensor Model::llama_block(int layer, const at::Tensor& h_in, const AttnContext& ctx,
                              WeightSource& w) const {
  const int g = layer_group(layer);
  const auto& s = slots_[size_t(g)];
  const double eps = spec_.rms_norm_eps;
  at::Tensor h = h_in;
  at::Tensor x = rms_norm(h, w.get(g, s[0]), eps);
  at::Tensor q = linear(x, w, g, s[1], s[2]);
  at::Tensor k = linear(x, w, g, s[3], s[4]);
  at::Tensor v = linear(x, w, g, s[5], s[6]);
  at::Tensor a = attention(q, k, v, ctx, spec_.num_heads, spec_.num_kv_heads, spec_.head_dim, true);
  h = h + linear(a, w, g, s[7], s[8]);
  x = rms_norm(h, w.get(g, s[9]), eps);
  at::Tensor gate = activation(linear(x, w, g, s[10], s[11]), spec_.activation);
  at::Tensor up = linear(x, w, g, s[12], s[13]);
  h = h + linear(gate * up, w, g, s[14], s[15]);
  return h;
}

at::Tensor Model::head(const at::Tensor& h_in, WeightSource& w) const {
  const int g = head_group();
  const auto& s = slots_[size_t(g)];
  at::Tensor h = h_in;
  at::Tensor lm;
  if (spec_.arch == Arch::OPT) {
    if (s[0] >= 0)
      h = at::layer_norm(h, {spec_.hidden_size}, w.get(g, s[0]), maybe(w, g, s[1]), spec_.layer_norm_eps);
    if (s[2] >= 0) h = at::linear(h, w.get(g, s[2]));
    lm = s[3] >= 0 ? w.get(g, s[3]) : w.get(0, slots_[0][0]);
  } else {
    h = rms_norm(h, w.get(g, s[0]), spec_.rms_norm_eps);
    lm = s[1] >= 0 ? w.get(g, s[1]) : w.get(0, slots_[0][0]);
  }
  return at::linear(h, lm).to(at::kFloat);
}

}  // namespace zoff
