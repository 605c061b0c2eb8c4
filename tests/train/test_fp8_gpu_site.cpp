// fp8 transfers at the GPU update site (Note [fp8 at the GPU site]): masters exact, forwards close to bf16, bad configs refused.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "common/remove_tree.h"
#include "common/tiny_run.h"
#include "common/train_expect.h"
#include "zoff/error.h"
#include "zoff/replay.h"
#include "zoff/trainer.h"
#include "zoff/weights.h"

namespace zoff {
namespace {

RunConfig fp8_config(OptimizerKind kind, double lr, bool fp8 = true) {
  RunConfig c = testing::tiny_cpu_run("test", "zoff_fp8site_", 6);
  testing::small_optimizer(c, kind, lr);
  c.optimizer.weight_decay = 0.0;
  c.policy.storage_dtype = DType::BF16;
  c.policy.compute_dtype = DType::F32;
  c.policy.offload = true;
  c.policy.num_slots = 2;
  c.policy.prefetch_depth = 1;
  c.policy.resident_blocks = 0;
  c.policy.update_site = UpdateSite::Gpu;
  c.policy.transfer = fp8 ? TransferFormat::FP8 : TransferFormat::Same;
  c.policy.write_back = WriteBack::Delta;
  c.train.seed = 7;
  return c;
}

// The masters end exactly where the seed log's updates (zo_update with stochastic rounding on
// the bf16 master) put them: the GPU's decisions from the fp8 copy, the exception list and the
// host apply lose nothing. At lr 1e-3 many elements are exceptions; at 1e-6 few change at all.
TEST(Fp8GpuSite, MastersReplayExactlyFromTheSeedLog) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO, OptimizerKind::SVRG})
    for (double lr : {1e-3, 1e-5}) {
      const std::string what = std::string(optimizer_kind_name(kind)) + " lr " + std::to_string(lr);
      RunConfig c = fp8_config(kind, lr);
      std::vector<at::Tensor> trained;
      int64_t exceptions = 0;
      std::string mode;
      {
        Trainer tr(c);
        for (int i = 0; i < 6; ++i) {
          EXPECT_TRUE(std::isfinite(tr.train_step().loss)) << what;
          if (i > 0) mode = tr.engine_stats().at("write_back").get<std::string>();
        }
        trained = tr.snapshot_weights();  // drains the applies (Note [Applies across passes])
        const nlohmann::json s = tr.engine_stats();
        exceptions = s.at("delta_exceptions_total").get<int64_t>();
        EXPECT_GT(s.at("delta_apply_busy_ms").get<double>(), 0.0) << what << ": the applies were not timed";
        EXPECT_FALSE(s.at("delta_applies_pending").get<bool>()) << what;
      }
      EXPECT_EQ(mode, "delta") << what;
      if (lr > 1e-4) {
        EXPECT_GT(exceptions, 0) << what << ": no exception exercised";
      }
      const std::string out = c.train.output_dir + "/replayed";
      ASSERT_EQ(rebuild_from_seed_log(c.train.output_dir, out), 6) << what;
      Model m(c.model.spec);
      ModelWeights r = load_weights(m, out, at::kFloat);
      for (size_t g = 0; g < trained.size(); ++g)
        EXPECT_TRUE(at::equal(trained[g], r.flats[g])) << what << " group " << g << " max |diff| "
                                                       << (trained[g] - r.flats[g]).abs().max().item<double>();
      zoff::testing::remove_tree(c.train.output_dir);
    }
}

// The list overflowing (a tiny capacity) makes the host recompute exceptions from seeds: same bits.
TEST(Fp8GpuSite, OverflowingListsStillExact) {
  auto weights = [](int64_t divisor) {
    RunConfig c = fp8_config(OptimizerKind::MeZO, 1e-3);
    c.policy.delta_list_divisor = divisor;
    std::vector<at::Tensor> w;
    {
      Trainer tr(c);
      for (int i = 0; i < 4; ++i) tr.train_step();
      if (divisor > 1000) {
        EXPECT_GT(tr.engine_stats().at("delta_overflowed").get<int64_t>(), 0);
      }
      w = tr.snapshot_weights();
    }
    zoff::testing::remove_tree(c.train.output_dir);
    return w;
  };
  const auto a = weights(1), b = weights(100000);
  for (size_t g = 0; g < a.size(); ++g) EXPECT_TRUE(at::equal(a[g], b[g])) << "group " << g;
}

// Note [Packed codes] (kernels/delta.h): ZOFF_DELTA_CODES=packed (the Offload op packs the staged
// codes into the host codes and a bitmap) leaves the same bits as the dense staged codes, with
// the list whole and overflowing, and moves fewer code bytes where few words change.
TEST(Fp8GpuSite, PackedCodesLeaveTheSameBits) {
  for (double lr : {1e-3, 1e-6})
    for (int64_t divisor : {int64_t(64), int64_t(1) << 20}) {
      const std::string what = "lr " + std::to_string(lr) + " divisor " + std::to_string(divisor);
      auto run = [&](bool packed, int64_t* code_bytes) {
        setenv("ZOFF_DELTA_CODES", packed ? "packed" : "staged", 1);  // packed is the default
        RunConfig c = fp8_config(OptimizerKind::MeZO, lr);
        c.policy.delta_list_divisor = divisor;
        std::vector<at::Tensor> w;
        try {
          Trainer tr(c);
          for (int i = 0; i < 4; ++i) tr.train_step();
          *code_bytes = tr.engine_stats().at("delta_code_bytes").get<int64_t>();
          w = tr.snapshot_weights();
        } catch (...) {
          unsetenv("ZOFF_DELTA_CODES");
          throw;
        }
        unsetenv("ZOFF_DELTA_CODES");
        zoff::testing::remove_tree(c.train.output_dir);
        return w;
      };
      int64_t dense_bytes = 0, packed_bytes = 0;
      const auto a = run(false, &dense_bytes), b = run(true, &packed_bytes);
      ASSERT_EQ(a.size(), b.size());
      for (size_t g = 0; g < a.size(); ++g) EXPECT_TRUE(at::equal(a[g], b[g])) << what << " group " << g;
      EXPECT_GT(dense_bytes, 0) << what;
      if (lr < 1e-4) {  // ~45% of the words change here (stochastic rounding of tiny updates)
        EXPECT_LT(packed_bytes, dense_bytes * 3 / 4) << what;
      }
    }
}

// Note [Applies across passes]: with each block's apply slowed down, passes end with applies still
// running, the next pass's uploads wait at the gate, and the weights are the same bits as without
// the delay (and as the seed log's replay).
TEST(Fp8GpuSite, LaggingAppliesKeepTheWeightsExact) {
  auto run = [](int delay_ms, bool* lagged, bool* gated) {
    if (delay_ms > 0) setenv("ZOFF_DEBUG_DELTA_APPLY_DELAY_MS", std::to_string(delay_ms).c_str(), 1);
    RunConfig c = fp8_config(OptimizerKind::MeZO, 1e-3);
    std::vector<at::Tensor> w;
    {
      Trainer tr(c);
      for (int i = 0; i < 5; ++i) {
        tr.train_step();
        const nlohmann::json s = tr.engine_stats();
        EXPECT_TRUE(s.at("delta_applies_lag").get<bool>());
        *lagged |= s.at("delta_applies_pending").get<bool>();
        *gated |= s.at("delta_apply_wait_ms").get<double>() > 0.5 * delay_ms;
      }
      w = tr.snapshot_weights();
      if (delay_ms > 0) {
        const std::string out = c.train.output_dir + "/replayed";
        EXPECT_EQ(rebuild_from_seed_log(c.train.output_dir, out), 5);
        Model m(c.model.spec);
        ModelWeights r = load_weights(m, out, at::kFloat);
        for (size_t g = 0; g < w.size(); ++g) EXPECT_TRUE(at::equal(w[g], r.flats[g])) << "replay, group " << g;
      }
    }
    unsetenv("ZOFF_DEBUG_DELTA_APPLY_DELAY_MS");
    zoff::testing::remove_tree(c.train.output_dir);
    return w;
  };
  bool lagged = false, gated = false, unused = false;
  const auto slow = run(60, &lagged, &gated);
  const auto fast = run(0, &unused, &unused);
  EXPECT_TRUE(lagged) << "no pass ended with its applies still running";
  EXPECT_TRUE(gated) << "no upload waited for an earlier pass's apply";
  ASSERT_EQ(slow.size(), fast.size());
  for (size_t g = 0; g < slow.size(); ++g) EXPECT_TRUE(at::equal(slow[g], fast[g])) << "group " << g;
}

// An apply that fails while trailing a pass surfaces as an error of a later step (at the upload gate)
// or of the drain, names the block, and nothing hangs: neither the next steps nor the destructor.
TEST(Fp8GpuSite, FailingApplySurfacesAsAnError) {
  setenv("ZOFF_DEBUG_DELTA_APPLY_FAIL_AT", "4", 1);  // opt-tiny streams 3 blocks: pass 2's second block
  RunConfig c = fp8_config(OptimizerKind::MeZO, 1e-3);
  std::string what;
  {
    Trainer tr(c);
    try {
      for (int i = 0; i < 6; ++i) tr.train_step();
      tr.snapshot_weights();
    } catch (const Error& e) {
      what = e.what();
    }
    if (!what.empty()) {  // the trainer stays failed: later steps rethrow instead of training on
      EXPECT_THROW(tr.train_step(), Error);
    }
  }
  unsetenv("ZOFF_DEBUG_DELTA_APPLY_FAIL_AT");
  zoff::testing::remove_tree(c.train.output_dir);
  EXPECT_NE(what.find("delta apply of block"), std::string::npos) << "no error, or another one: " << what;
}

// Forwards see the fp8 weights plus the update: losses stay close to the bf16 run's.
TEST(Fp8GpuSite, LossesTrackTheBf16Run) {
  auto losses = [](bool fp8) {
    RunConfig c = fp8_config(OptimizerKind::MeZO, 1e-4, fp8);
    std::vector<double> out;
    {
      Trainer t(c);
      for (int i = 0; i < 5; ++i) out.push_back(t.train_step().loss);
    }
    zoff::testing::remove_tree(c.train.output_dir);
    return out;
  };
  const auto a = losses(false), b = losses(true);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(b[i], a[i], 0.02 * std::fabs(a[i])) << "step " << i;
    EXPECT_NE(b[i], a[i]) << "fp8 forward identical to bf16: was fp8 used?";
  }
}

// What the GPU cannot decide from an fp8 copy is refused up front, naming the key.
TEST(Fp8GpuSite, UnsupportedCombinationsNameTheKey) {
  const auto expect_error = testing::expect_config_error;
  RunConfig wd = fp8_config(OptimizerKind::MeZO, 1e-3);
  wd.optimizer.weight_decay = 0.01;
  expect_error(wd, "weight_decay");
  RunConfig dense = fp8_config(OptimizerKind::MeZO, 1e-3);
  dense.policy.write_back = WriteBack::Dense;
  expect_error(dense, "write_back");
  RunConfig f16 = fp8_config(OptimizerKind::MeZO, 1e-3);
  f16.policy.storage_dtype = DType::F16;
  f16.policy.write_back = WriteBack::Auto;
  expect_error(f16, "update_site");
}

}  // namespace
}  // namespace zoff
