// Decoder-only LMs (OPT, Llama, Qwen2) as resident parts plus a list of blocks, forward only.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "zoff/model_spec.h"

namespace zoff {

// What a parameter is, for weight decay and for the choice of ZO direction (SubZero perturbs
// Matrix parameters with low-rank directions; everything else gets element-wise z).
enum class ParamKind { Matrix, Embedding, Bias, Norm };

struct ParamInfo {
  std::string name;            // the HF checkpoint name
  std::vector<int64_t> shape;  // as in the checkpoint
  int64_t offset = 0;          // in elements, inside its group's flat buffer
  int64_t numel = 0;
  ParamKind kind = ParamKind::Matrix;
  uint64_t id = 0;             // k::param_id(name): the Philox key of its z
  bool decays() const { return kind == ParamKind::Matrix || kind == ParamKind::Embedding; }
};

// Note [Parameter groups]
// A model's parameters are split into groups, each stored as ONE contiguous flat buffer so that
// moving a group between host and device is one copy:
//   group 0          "embed": token embeddings (+ OPT learned positions, project_in)
//   group 1 .. L     "layers.i": one decoder block each (the unit the offload engine streams)
//   group L + 1      "head": final norm (+ OPT project_out, untied lm_head)
// Tied lm_head weights are not a parameter of their own: the head reads group 0's embedding.
// Parameters inside a group are laid out in the order the block uses them.
struct GroupLayout {
  std::string name;
  std::vector<ParamInfo> params;
  int64_t numel = 0;
  int index_of(const std::string& param_name) const;  // -1 if absent
};

// Supplies the weights a forward uses. The model asks for each parameter just before the op that
// needs it; what it gets (master view, perturbed copy in a scratch, dequantised fp8, ...) is the
// source's business. A returned tensor has the parameter's shape, the compute dtype and device,
// and stays valid until the next get() of a Matrix/Embedding parameter (vectors stay valid
// until the end of the group's forward).
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual at::Tensor get(int group, int param) = 0;
};

// Per-batch attention inputs shared by every block: additive mask (causal + padding), positions,
// rotary tables.
struct AttnContext {
  at::Tensor mask;       // [B, 1, T, T] additive, compute dtype (0 or a large negative)
  bool causal_only = false;  // no padding: the mask is exactly causal (Note [Attention path])
  at::Tensor positions;  // [B, T] int64
  at::Tensor rope_cos;   // [B, T, head_dim] (Llama/Qwen2), compute dtype
  at::Tensor rope_sin;
};

class Model {
 public:
  explicit Model(ModelSpec spec);

  const ModelSpec& spec() const { return spec_; }
  int num_layers() const { return int(spec_.num_layers); }
  int num_groups() const { return int(groups_.size()); }
  int embed_group() const { return 0; }
  int head_group() const { return num_groups() - 1; }
  int layer_group(int layer) const { return layer + 1; }
  const GroupLayout& group(int g) const { return groups_.at(size_t(g)); }
  const std::vector<GroupLayout>& groups() const { return groups_; }
  // (group, param) of a parameter name; false if the model has no such parameter.
  bool find_param(const std::string& name, int* group, int* param) const;
  int64_t num_params() const;

  AttnContext make_context(const at::Tensor& attention_mask, at::ScalarType dtype,
                           const at::Device& device) const;
  // input_ids [B,T] int64 -> hidden [B,T,H] in the compute dtype of the weights w hands out.
  at::Tensor embed(const at::Tensor& input_ids, const AttnContext& ctx, WeightSource& w) const;
  at::Tensor block(int layer, const at::Tensor& h, const AttnContext& ctx, WeightSource& w) const;
  // hidden -> logits [B,T,V] (float32).
  at::Tensor head(const at::Tensor& h, WeightSource& w) const;

 private:
  at::Tensor opt_block(int layer, const at::Tensor& h, const AttnContext& ctx, WeightSource& w) const;
  at::Tensor llama_block(int layer, const at::Tensor& h, const AttnContext& ctx, WeightSource& w) const;

  ModelSpec spec_;
  std::vector<GroupLayout> groups_;
  std::vector<std::vector<int>> slots_;  // per group: fixed param indices the forward uses
};

// Causal-LM losses with the usual shift (position t predicts token t+1) and ignore index -100.
// Mean over all non-ignored targets of the batch.
at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels);
// Per-row sums of the target negative log-likelihoods and counts of scored targets: [B] each.
void causal_lm_row_losses(const at::Tensor& logits, const at::Tensor& labels, at::Tensor* nll_sum,
                          at::Tensor* count);
// labels = input_ids with -100 where attention_mask == 0.
at::Tensor labels_from_inputs(const at::Tensor& input_ids, const at::Tensor& attention_mask);

}  // namespace zoff
