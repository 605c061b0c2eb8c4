// GPU model checks: fixture parity in fp32 on CUDA, and OPT-1.3B shapes in bf16 vs fp32 on the CPU.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include "zoff/model.h"
#include "zoff/safetensors.h"
#include "zoff/weights.h"

namespace zoff {
namespace {

at::Tensor read(const SafetensorsFile& f, const std::string& n) {
  const TensorInfo* t = f.find(n);
  return at::from_blob(const_cast<void*>(f.data(*t)), t->shape, at::TensorOptions().dtype(to_scalar_type(t->dtype))).clone();
}

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
  return (x - y).norm().item<double>() / y.norm().item<double>();
}

class GpuParity : public ::testing::TestWithParam<const char*> {};

TEST_P(GpuParity, Fp32OnCudaMatchesTransformers) {
  c10::InferenceMode guard;
  const std::string dir = std::string(ZOFF_TEST_DATA) + "/" + GetParam();
  Model m(parse_hf_config(dir + "/model/config.json"));
  ModelWeights w = load_weights(m, dir + "/model", at::kFloat);
  std::vector<at::Tensor> dev;
  for (auto& f : w.flats) dev.push_back(f.to(at::kCUDA));
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  at::Tensor ids = read(*ref, "input_ids"), mask = read(*ref, "attention_mask");
  FlatWeightSource src(m, dev, at::kFloat);
  at::Tensor logits = forward_logits(m, src, ids, mask, at::kFloat, at::Device(at::kCUDA));
  ASSERT_TRUE(logits.is_cuda());
  double e = rel_err(logits, read(*ref, "logits"));
  double loss = causal_lm_loss(logits, labels_from_inputs(ids.to(at::kCUDA), mask.to(at::kCUDA))).item<double>();
  std::printf("[gpu-parity] %-22s logits rel err %.3g, loss %.8f vs %.8f\n", GetParam(), e, loss,
              read(*ref, "loss").item<double>());
  EXPECT_LT(e, 1e-4);
  EXPECT_NEAR(loss, read(*ref, "loss").item<double>(), 1e-5);
}

// Note [Attention path]: a batch without padding takes SDPA's is_causal (flash) path; it must
// give the explicit-mask path's logits up to rounding, in fp32 and bf16.
TEST_P(GpuParity, CausalPathMatchesExplicitMask) {
  c10::InferenceMode guard;
  const std::string dir = std::string(ZOFF_TEST_DATA) + "/" + GetParam();
  Model m(parse_hf_config(dir + "/model/config.json"));
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    ModelWeights w = load_weights(m, dir + "/model", dt);
    std::vector<at::Tensor> dev;
    for (auto& f : w.flats) dev.push_back(f.to(at::kCUDA));
    FlatWeightSource src(m, dev, dt);
    at::Tensor ids = at::randint(0, m.spec().vocab_size, {2, 37}, at::TensorOptions().dtype(at::kLong));
    at::Tensor mask = at::ones({2, 37}, at::TensorOptions().dtype(at::kLong));
    const at::Device cuda(at::kCUDA);
    AttnContext fast = m.make_context(mask, dt, cuda);
    ASSERT_TRUE(fast.causal_only);
    AttnContext slow = fast;
    slow.causal_only = false;
    auto run = [&](const AttnContext& ctx) {
      at::Tensor h = m.embed(ids.to(cuda), ctx, src);
      for (int l = 0; l < m.num_layers(); ++l) h = m.block(l, h, ctx, src);
      return m.head(h, src).to(at::kFloat);
    };
    const double e = rel_err(run(fast), run(slow));
    EXPECT_LT(e, dt == at::kFloat ? 1e-5 : 2e-2) << GetParam() << " dtype " << c10::toString(dt);
    // A padded batch keeps the explicit mask (and a mask already on the device is not read).
    mask[1][0] = 0;
    EXPECT_FALSE(m.make_context(mask, dt, cuda).causal_only);
    EXPECT_FALSE(m.make_context(at::ones({2, 37}, at::TensorOptions().dtype(at::kLong).device(cuda)), dt, cuda).causal_only);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuParity,
                         ::testing::Values("opt-tiny", "opt-tiny-postln-proj", "llama-tiny", "qwen2-tiny"));

TEST(GpuOpt13B, Bf16OnCudaAgreesWithFp32OnCpu) {
  c10::InferenceMode guard;
  ModelSpec s;
  s.arch = Arch::OPT;
  s.vocab_size = 50272;
  s.hidden_size = 2048;
  s.num_layers = 24;
  s.num_heads = 32;
  s.num_kv_heads = 32;
  s.head_dim = 64;
  s.ffn_dim = 8192;
  s.max_positions = 2048;
  s.word_embed_proj_dim = 2048;
  s.pad_token_id = 1;
  Model m(s);
  ModelWeights w = dummy_weights(m, 1234, at::kFloat);
  at::manual_seed(0);
  at::Tensor ids = at::randint(3, 50272, {2, 64}, at::kLong);
  at::Tensor mask = at::ones({2, 64}, at::kLong);
  mask.narrow(1, 50, 14)[1].fill_(0);
  FlatWeightSource cpu_src(m, w.flats, at::kFloat);
  at::Tensor ref = forward_logits(m, cpu_src, ids, mask, at::kFloat, at::kCPU);
  std::vector<at::Tensor> dev;
  for (auto& f : w.flats) dev.push_back(f.to(at::kCUDA, at::kBFloat16));
  FlatWeightSource gpu_src(m, dev, at::kBFloat16);
  at::Tensor got = forward_logits(m, gpu_src, ids, mask, at::kBFloat16, at::Device(at::kCUDA));
  double e = rel_err(got, ref);
  std::printf("[gpu-opt-1.3b] bf16 CUDA vs fp32 CPU logits rel err %.4g\n", e);
  EXPECT_LT(e, 2e-2);
}

}  // namespace
}  // namespace zoff
