// Dummy weights (Note [Dummy weights]): one value per element whatever the buffer's dtype.
#include <gtest/gtest.h>

#include "zoff/model.h"
#include "zoff/safetensors.h"
#include "zoff/weights.h"

namespace zoff {
namespace {

Model tiny(const char* name) {
  return Model(parse_hf_config(std::string(ZOFF_TEST_DATA) + "/" + name + "/model/config.json"));
}

TEST(DummyWeights, LowPrecisionBuffersHoldTheRoundedFloatValues) {
  for (const char* name : {"opt-tiny", "llama-tiny"}) {
    Model m = tiny(name);
    ModelWeights f32 = dummy_weights(m, 11, at::kFloat);
    for (at::ScalarType t : {at::kBFloat16, at::kHalf}) {
      ModelWeights low = dummy_weights(m, 11, t);
      for (int g = 0; g < m.num_groups(); ++g) {
        const at::Tensor want = f32.flats[size_t(g)].to(t);  // at::Tensor::copy_'s rounding
        EXPECT_TRUE(at::equal(low.flats[size_t(g)], want)) << name << " group " << g << " " << t;
      }
    }
  }
}

TEST(DummyWeights, SeedsDifferAndStatisticsAreAsDocumented) {
  Model m = tiny("opt-tiny");
  ModelWeights a = dummy_weights(m, 1, at::kFloat), b = dummy_weights(m, 2, at::kFloat);
  const int g = m.layer_group(0);
  EXPECT_FALSE(at::equal(a.flats[size_t(g)], b.flats[size_t(g)]));
  // Matrices: std 0.02; LayerNorm weights 1, biases 0.
  const GroupLayout& gl = m.group(g);
  for (size_t i = 0; i < gl.params.size(); ++i) {
    const ParamInfo& p = gl.params[i];
    at::Tensor v = param_view(gl, int(i), a.flats[size_t(g)]);
    if (p.kind == ParamKind::Norm) {
      const bool bias = p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0;
      EXPECT_TRUE(at::all(v == (bias ? 0.0 : 1.0)).item<bool>()) << p.name;
    } else if (p.kind == ParamKind::Bias) {
      EXPECT_TRUE(at::all(v == 0).item<bool>()) << p.name;
    } else if (p.numel > 1000) {
      EXPECT_NEAR(v.std().item<double>(), 0.02, 0.002) << p.name;
      EXPECT_LE(v.abs().max().item<double>(), 0.02 * 1.7320508 + 1e-7) << p.name;
    }
  }
}

}  // namespace
}  // namespace zoff
