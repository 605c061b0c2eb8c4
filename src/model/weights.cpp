// Flat per-group weight buffers: allocation, checkpoint loading, dummy init, export, plain source.
#include "zoff/weights.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>

#include "kernels/philox.h"
#include "zoff/error.h"
#include "zoff/safetensors.h"

namespace zoff {

at::Tensor param_view(const GroupLayout& g, int param, const at::Tensor& flat) {
  const ParamInfo& p = g.params.at(size_t(param));
  return flat.narrow(0, p.offset, p.numel).view(p.shape);
}

ModelWeights allocate_weights(const Model& m, at::ScalarType dtype, const at::Device& device) {
  ModelWeights w;
  for (auto& g : m.groups())
    w.flats.push_back(at::zeros({g.numel}, at::TensorOptions().dtype(dtype).device(device)));
  return w;
}

void load_group(const Model& m, const Checkpoint& ckpt, int group, at::Tensor flat) {
  const GroupLayout& g = m.group(group);
  ZOFF_CHECK(flat.device().is_cpu() && flat.numel() == g.numel, "load_group: bad buffer");
  for (size_t i = 0; i < g.params.size(); ++i) {
    const ParamInfo& p = g.params[i];
    ckpt.load_into(p.name, p.shape, flat.narrow(0, p.offset, p.numel));
  }
}

ModelWeights load_weights(const Model& m, const std::string& dir, at::ScalarType dtype) {
  Checkpoint ckpt = Checkpoint::open(dir);
  ModelWeights w = allocate_weights(m, dtype, at::kCPU);
  for (int g = 0; g < m.num_groups(); ++g) load_group(m, ckpt, g, w.flats[size_t(g)]);
  return w;
}

namespace {
// Note [Dummy weights]: a weight element is uniform(-a, a) from Philox(seed, param id, element), so
// any dtype and any group order give the same values; it is generated straight into the buffer's
// dtype (the same round-to-nearest-even cast as at::Tensor::copy_) on all cores: OPT-175B's 175 G
// elements must not take minutes, or pass through a float copy of a 7 GB layer.
template <typename T>
void fill_dummy(const GroupLayout& g, uint64_t seed, T* out) {
  // uniform(-a, a) has std a / sqrt(3); a = 0.02 * sqrt(3) gives std 0.02.
  const float a = 0.02f * 1.7320508f;
  for (auto& p : g.params) {
    T* dst = out + p.offset;
    const bool norm_bias = p.kind == ParamKind::Norm && p.name.size() > 5 &&
                           p.name.compare(p.name.size() - 5, 5, ".bias") == 0;
    if (p.kind == ParamKind::Norm || p.kind == ParamKind::Bias) {
      const T v = T(p.kind == ParamKind::Norm && !norm_bias ? 1.0f : 0.0f);
      std::fill(dst, dst + p.numel, v);
      continue;
    }
    const int64_t blocks = (p.numel + 3) / 4;
    const uint64_t pid = p.id;
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, blocks, 1 << 14), [&](auto r) {
      for (int64_t b = r.begin(); b < r.end(); ++b) {
        k::Philox4 x = k::philox_block(seed, pid, uint64_t(b));
        for (int j = 0; j < 4 && b * 4 + j < p.numel; ++j)
          dst[b * 4 + j] = T((k::u32_to_unit(x.v[j]) * 2.0f - 1.0f) * a);
      }
    });
  }
}
}  // namespace

void init_dummy_group(const Model& m, int group, uint64_t seed, at::Tensor flat) {
  const GroupLayout& g = m.group(group);
  ZOFF_CHECK(flat.device().is_cpu() && flat.is_contiguous() && flat.numel() == g.numel,
             "init_dummy_group: bad buffer");
  switch (flat.scalar_type()) {
    case at::kFloat: return fill_dummy(g, seed, flat.data_ptr<float>());
    case at::kBFloat16: return fill_dummy(g, seed, flat.data_ptr<c10::BFloat16>());
    case at::kHalf: return fill_dummy(g, seed, flat.data_ptr<c10::Half>());
    default: {
      at::Tensor f32 = at::empty({g.numel}, at::kFloat);
      fill_dummy(g, seed, f32.data_ptr<float>());
      flat.copy_(f32);
    }
  }
}

ModelWeights dummy_weights(const Model& m, uint64_t seed, at::ScalarType dtype) {
  ModelWeights w = allocate_weights(m, dtype, at::kCPU);
  for (int g = 0; g < m.num_groups(); ++g) init_dummy_group(m, g, seed, w.flats[size_t(g)]);
  return w;
}

std::vector<std::pair<std::string, at::Tensor>> named_tensors(const Model& m, const ModelWeights& w) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (int g = 0; g < m.num_groups(); ++g)
    for (size_t i = 0; i < m.group(g).params.size(); ++i)
      out.emplace_back(m.group(g).params[i].name, w.view(m, g, int(i)));
  return out;
}

FlatWeightSource::FlatWeightSource(const Model& m, std::vector<at::Tensor> flats,
                                   at::ScalarType compute)
    : model_(m), flats_(std::move(flats)), compute_(compute) {
  ZOFF_CHECK(int(flats_.size()) == m.num_groups(), "FlatWeightSource: one flat buffer per group");
}

at::Tensor FlatWeightSource::get(int group, int param) {
  const at::Tensor& flat = flats_.at(size_t(group));
  ZOFF_CHECK(flat.defined(), "weights of group ", model_.group(group).name, " are not present");
  at::Tensor v = param_view(model_.group(group), param, flat);
  return v.scalar_type() == compute_ ? v : v.to(compute_);
}

at::Tensor forward_logits(const Model& m, WeightSource& w, const at::Tensor& input_ids,
                          const at::Tensor& attention_mask, at::ScalarType compute,
                          const at::Device& device) {
  AttnContext ctx = m.make_context(attention_mask, compute, device);
  at::Tensor h = m.embed(input_ids.to(device), ctx, w);
  for (int l = 0; l < m.num_layers(); ++l) h = m.block(l, h, ctx, w);
  return m.head(h, w);
}

}  // namespace zoff
