// Parity of zoff's OPT / Llama / Qwen2 forward with transformers on the fixture checkpoints.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include "zoff/model.h"
#include "zoff/safetensors.h"
#include "zoff/weights.h"

namespace zoff {
namespace {

std::string fixture(const std::string& name) { return std::string(ZOFF_TEST_DATA) + "/" + name; }

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).norm().item<double>() /
         b.to(at::kDouble).norm().item<double>();
}

class Parity : public ::testing::TestWithParam<const char*> {};

TEST_P(Parity, LogitsAndLossMatchTransformers) {
  c10::InferenceMode guard;
  const std::string dir = fixture(GetParam());
  Model m(parse_hf_config(dir + "/model/config.json"));
  ModelWeights w = load_weights(m, dir + "/model", at::kFloat);
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  auto get = [&](const std::string& n) {
    const TensorInfo* t = ref->find(n);
    EXPECT_NE(t, nullptr) << n;
    return at::from_blob(const_cast<void*>(ref->data(*t)), t->shape,
                         at::TensorOptions().dtype(to_scalar_type(t->dtype))).clone();
  };
  at::Tensor ids = get("input_ids"), mask = get("attention_mask");
  FlatWeightSource src(m, w.flats, at::kFloat);
  at::Tensor logits = forward_logits(m, src, ids, mask, at::kFloat, at::kCPU);
  at::Tensor ref_logits = get("logits");
  ASSERT_EQ(logits.sizes(), ref_logits.sizes());
  double e = rel_err(logits, ref_logits);
  EXPECT_LT(e, 1e-4) << GetParam() << " logits relative error " << e;
  double loss = causal_lm_loss(logits, labels_from_inputs(ids, mask)).item<double>();
  double ref_loss = get("loss").item<double>();
  std::printf("[parity] %-22s logits rel err %.3g, loss %.8f vs %.8f\n", GetParam(), e, loss, ref_loss);
  EXPECT_NEAR(loss, ref_loss, 1e-5) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity,
                         ::testing::Values("opt-tiny", "opt-tiny-postln-proj", "llama-tiny",
                                           "qwen2-tiny"));

}  // namespace
}  // namespace zoff
