// Model weights as one flat buffer per parameter group: allocation, loading, dummy init, export.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "zoff/model.h"

namespace zoff {

class Checkpoint;

// A shaped view of parameter `param` of group `group` inside that group's flat buffer.
at::Tensor param_view(const GroupLayout& g, int param, const at::Tensor& flat);

// One flat buffer per group (1-D, zero-filled padding between parameters).
struct ModelWeights {
  std::vector<at::Tensor> flats;
  at::Tensor view(const Model& m, int group, int param) const {
    return param_view(m.group(group), param, flats.at(size_t(group)));
  }
};

ModelWeights allocate_weights(const Model& m, at::ScalarType dtype, const at::Device& device);
// Loads every parameter of group g from the checkpoint into flat (CPU, any float dtype).
// Errors name the checkpoint folder, the tensor and both shapes.
void load_group(const Model& m, const Checkpoint& ckpt, int group, at::Tensor flat);
ModelWeights load_weights(const Model& m, const std::string& dir, at::ScalarType dtype);
// Deterministic random weights for group g, generated from (seed, parameter id) on the CPU with
// oneTBB, independent of the order groups are initialised in: matrices and embeddings uniform
// with std 0.02 (as HF's init_std), norm weights 1, biases 0.
void init_dummy_group(const Model& m, int group, uint64_t seed, at::Tensor flat);
ModelWeights dummy_weights(const Model& m, uint64_t seed, at::ScalarType dtype);
// Named, shaped CPU views of all parameters (tied lm_head omitted, as HF saves it).
std::vector<std::pair<std::string, at::Tensor>> named_tensors(const Model& m, const ModelWeights& w);

// The plain WeightSource: views of the flat buffers, cast to the compute dtype if needed.
class FlatWeightSource : public WeightSource {
 public:
  FlatWeightSource(const Model& m, std::vector<at::Tensor> flats, at::ScalarType compute);
  void set_flat(int group, at::Tensor flat) { flats_.at(size_t(group)) = std::move(flat); }
  at::Tensor get(int group, int param) override;

 private:
  const Model& model_;
  std::vector<at::Tensor> flats_;
  at::ScalarType compute_;
};

// Runs the whole model resident: logits [B,T,V] float32.
at::Tensor forward_logits(const Model& m, WeightSource& w, const at::Tensor& input_ids,
                          const at::Tensor& attention_mask, at::ScalarType compute,
                          const at::Device& device);

}  // namespace zoff
