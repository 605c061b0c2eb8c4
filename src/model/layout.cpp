// Parameter groups of OPT, Llama and Qwen2: names, shapes, kinds and flat offsets (Note [Parameter groups]).
#include <ATen/ATen.h>

#include "kernels/philox.h"
#include "zoff/error.h"
#include "zoff/model.h"

namespace zoff {

int GroupLayout::index_of(const std::string& n) const {
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].name == n) return int(i);
  return -1;
}

namespace {

struct GroupBuilder {
  GroupLayout g;
  explicit GroupBuilder(std::string name) { g.name = std::move(name); }
  void add(const std::string& name, std::vector<int64_t> shape, ParamKind kind) {
    ParamInfo p;
    p.name = name;
    p.shape = std::move(shape);
    p.numel = 1;
    for (auto d : p.shape) p.numel *= d;
    p.offset = g.numel;
    p.kind = kind;
    p.id = k::param_id(name.c_str());
    // Keep every parameter 16-byte aligned inside the flat buffer (4 fp32 / 8 bf16 elements),
    // so vectorised kernels can work per parameter.
    g.numel += (p.numel + 7) / 8 * 8;
    g.params.push_back(std::move(p));
  }
  void linear(const std::string& prefix, int64_t out, int64_t in, bool bias) {
    add(prefix + ".weight", {out, in}, ParamKind::Matrix);
    if (bias) add(prefix + ".bias", {out}, ParamKind::Bias);
  }
  void norm(const std::string& prefix, int64_t dim, bool bias) {
    add(prefix + ".weight", {dim}, ParamKind::Norm);
    if (bias) add(prefix + ".bias", {dim}, ParamKind::Norm);
  }
};

std::vector<GroupLayout> opt_groups(const ModelSpec& s) {
  std::vector<GroupLayout> out;
  const std::string d = "model.decoder.";
  const int64_t H = s.hidden_size, W = s.word_embed_proj_dim, F = s.ffn_dim;
  const bool b = s.enable_bias, aff = s.layer_norm_elementwise_affine;
  GroupBuilder e("embed");
  e.add(d + "embed_tokens.weight", {s.vocab_size, W}, ParamKind::Embedding);
  e.add(d + "embed_positions.weight", {s.max_positions + s.position_offset, H}, ParamKind::Embedding);
  if (s.has_project_in_out()) e.add(d + "project_in.weight", {H, W}, ParamKind::Matrix);
  out.push_back(e.g);
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = d + "layers." + std::to_string(i) + ".";
    GroupBuilder g("layers." + std::to_string(i));
    if (aff) g.norm(p + "self_attn_layer_norm", H, true);
    g.linear(p + "self_attn.q_proj", H, H, b);
    g.linear(p + "self_attn.k_proj", H, H, b);
    g.linear(p + "self_attn.v_proj", H, H, b);
    g.linear(p + "self_attn.out_proj", H, H, b);
    if (aff) g.norm(p + "final_layer_norm", H, true);
    g.linear(p + "fc1", F, H, b);
    g.linear(p + "fc2", H, F, b);
    out.push_back(g.g);
  }
  GroupBuilder h("head");
  if (s.do_layer_norm_before && !s.remove_final_layer_norm && aff)
    h.norm(d + "final_layer_norm", H, true);
  if (s.has_project_in_out()) h.add(d + "project_out.weight", {W, H}, ParamKind::Matrix);
  if (!s.tie_word_embeddings) h.add("lm_head.weight", {s.vocab_size, W}, ParamKind::Matrix);
  out.push_back(h.g);
  return out;
}

std::vector<GroupLayout> llama_groups(const ModelSpec& s) {
  std::vector<GroupLayout> out;
  const int64_t H = s.hidden_size, D = s.head_dim, F = s.ffn_dim;
  GroupBuilder e("embed");
  e.add("model.embed_tokens.weight", {s.vocab_size, H}, ParamKind::Embedding);
  out.push_back(e.g);
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    GroupBuilder g("layers." + std::to_string(i));
    g.norm(p + "input_layernorm", H, false);
    g.linear(p + "self_attn.q_proj", s.num_heads * D, H, s.attention_bias);
    g.linear(p + "self_attn.k_proj", s.num_kv_heads * D, H, s.attention_bias);
    g.linear(p + "self_attn.v_proj", s.num_kv_heads * D, H, s.attention_bias);
    g.linear(p + "self_attn.o_proj", H, s.num_heads * D, s.o_proj_bias);
    g.norm(p + "post_attention_layernorm", H, false);
    g.linear(p + "mlp.gate_proj", F, H, s.mlp_bias);
    g.linear(p + "mlp.up_proj", F, H, s.mlp_bias);
    g.linear(p + "mlp.down_proj", H, F, s.mlp_bias);
    out.push_back(g.g);
  }
  GroupBuilder h("head");
  h.norm("model.norm", H, false);
  if (!s.tie_word_embeddings) h.add("lm_head.weight", {s.vocab_size, H}, ParamKind::Matrix);
  out.push_back(h.g);
  return out;
}

}  // namespace

std::vector<GroupLayout> build_groups(const ModelSpec& s) {
  return s.arch == Arch::OPT ? opt_groups(s) : llama_groups(s);
}

}  // namespace zoff
