// CUDA training: offloaded (streams, events, pinned store) equals resident on the GPU bit for bit.
#include "common/remove_tree.h"
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "zoff/replay.h"
#include "zoff/trainer.h"
#include "zoff/weights.h"

namespace zoff {
namespace {

RunConfig gpu_config(OptimizerKind kind) {
  RunConfig c;
  c.source = "gpu-test";
  c.model.checkpoint = std::string(ZOFF_TEST_DATA) + "/opt-tiny/model";
  c.model.spec = parse_hf_config(c.model.checkpoint + "/config.json");
  c.optimizer.kind = kind;
  c.optimizer.lr = 1e-3;
  c.optimizer.weight_decay = 0.01;
  c.optimizer.fzoo_n = 3;
  c.data.batch_size = 2;
  c.data.max_length = 16;
  c.train.device = "cuda";
  c.train.seed = 5;
  c.train.log_every = 0;
  char t[] = "/tmp/zoff_gpu_XXXXXX";
  c.train.output_dir = mkdtemp(t);
  return c;
}

std::vector<at::Tensor> run(const RunConfig& c, int steps) {
  Trainer t(c);
  for (int i = 0; i < steps; ++i) t.train_step();
  auto w = t.snapshot_weights();
  zoff::testing::remove_tree(c.train.output_dir);
  return w;
}

TEST(GpuTrain, OffloadedEqualsResidentOnCuda) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO}) {
    auto ref = run(gpu_config(kind), 6);
    for (UpdateSite site : {UpdateSite::Gpu, UpdateSite::Cpu, UpdateSite::Deferred})
      for (int K : {2, 3})
        for (int resident : {0, 1}) {
          RunConfig c = gpu_config(kind);
          c.policy.offload = true;
          c.policy.num_slots = K;
          c.policy.resident_blocks = resident;
          c.policy.update_site = site;
          c.train.timeline = true;
          auto w = run(c, 6);
          for (size_t g = 0; g < w.size(); ++g) {
            if (site == UpdateSite::Cpu && g >= 1 && g + 1 < w.size()) {
              // Streamed blocks were updated by the host (CPU Philox/libm): equal to a few ulp.
              EXPECT_LT((w[g] - ref[g]).abs().max().item<double>(), 1e-5) << "group " << g;
            } else {
              EXPECT_TRUE(at::equal(w[g], ref[g]))
                  << optimizer_kind_name(kind) << " site " << update_site_name(site) << " K " << K
                  << " resident " << resident << " group " << g << " max diff "
                  << (w[g] - ref[g]).abs().max().item<double>();
            }
          }
        }
  }
}

// The bf16 delta write-back on CUDA (Note [Delta write-back]) with the codes staged
// (ZOFF_DELTA_CODES=staged) and packed on the device (the default, Note [Packed codes]): the same
// bits as the resident bf16 run, with the list whole and overflowing.
TEST(GpuTrain, Bf16DeltaPackedCodesEqualResident) {
  RunConfig base = gpu_config(OptimizerKind::MeZO);
  base.policy.storage_dtype = DType::BF16;
  base.policy.compute_dtype = DType::BF16;
  const auto ref = run(base, 5);
  for (bool packed : {false, true})
    for (int64_t divisor : {int64_t(64), int64_t(1) << 20}) {
      RunConfig c = gpu_config(OptimizerKind::MeZO);
      c.policy.storage_dtype = DType::BF16;
      c.policy.compute_dtype = DType::BF16;
      c.policy.offload = true;
      c.policy.num_slots = 2;
      c.policy.resident_blocks = 0;
      c.policy.update_site = UpdateSite::Gpu;
      c.policy.write_back = WriteBack::Delta;
      c.policy.delta_list_divisor = divisor;
      if (!packed) setenv("ZOFF_DELTA_CODES", "staged", 1);
      const auto w = run(c, 5);
      unsetenv("ZOFF_DELTA_CODES");
      for (size_t g = 0; g < w.size(); ++g)
        EXPECT_TRUE(at::equal(w[g], ref[g])) << (packed ? "packed" : "staged") << " divisor " << divisor << " group "
                                             << g << " max diff " << (w[g] - ref[g]).abs().max().item<double>();
    }
}

// Split bf16 masters on CUDA (Note [Split bf16 masters]): the device decodes the planes and the
// mapped escape list, the host applies the delta to the planes (recomputing an overflowed list's
// exceptions with the CPU's arithmetic, which must equal the GPU kernel's): the same bits as the
// resident bf16 run, with weight decay, whole and overflowing lists, streamed and partly resident.
TEST(GpuTrain, SplitBf16MastersEqualResident) {
  RunConfig base = gpu_config(OptimizerKind::MeZO);
  base.policy.storage_dtype = DType::BF16;
  base.policy.compute_dtype = DType::BF16;
  const auto ref = run(base, 5);
  for (int64_t divisor : {int64_t(64), int64_t(1) << 20})
    for (int resident : {0, 1}) {
      RunConfig c = gpu_config(OptimizerKind::MeZO);
      c.policy.storage_dtype = DType::BF16;
      c.policy.compute_dtype = DType::BF16;
      c.policy.offload = true;
      c.policy.num_slots = 2;
      c.policy.resident_blocks = resident;
      c.policy.update_site = UpdateSite::Gpu;
      c.policy.transfer = TransferFormat::BF16Split;
      c.policy.delta_list_divisor = divisor;
      const auto w = run(c, 5);
      for (size_t g = 0; g < w.size(); ++g)
        EXPECT_TRUE(at::equal(w[g], ref[g])) << "split divisor " << divisor << " resident " << resident << " group "
                                             << g << " max diff " << (w[g] - ref[g]).abs().max().item<double>();
    }
}

// transfer = "auto" on CUDA (Note [Auto transfer]): a streamed bf16 MeZO run at the GPU site gets
// split masters, and trains to the resident run's bits.
TEST(GpuTrain, AutoTransferPicksSplitOnCuda) {
  RunConfig base = gpu_config(OptimizerKind::MeZO);
  base.policy.storage_dtype = DType::BF16;
  base.policy.compute_dtype = DType::BF16;
  const auto ref = run(base, 5);
  RunConfig c = base;
  char t[] = "/tmp/zoff_gpu_XXXXXX";
  c.train.output_dir = mkdtemp(t);
  c.policy.offload = true;
  c.policy.num_slots = 2;
  c.policy.resident_blocks = 0;
  c.policy.update_site = UpdateSite::Gpu;
  c.policy.transfer = TransferFormat::Auto;
  std::vector<at::Tensor> w;
  {
    Trainer tr(c);
    EXPECT_NE(tr.plan_report().find("transfer bf16-split"), std::string::npos) << tr.plan_report();
    for (int i = 0; i < 5; ++i) tr.train_step();
    w = tr.snapshot_weights();
  }
  zoff::testing::remove_tree(c.train.output_dir);
  for (size_t g = 0; g < w.size(); ++g)
    EXPECT_TRUE(at::equal(w[g], ref[g])) << "auto group " << g << " max diff " << (w[g] - ref[g]).abs().max().item<double>();
}

// Deferred site on CUDA with a bf16 master (stochastic rounding) and a host thread slowed down so
// that devices replay several updates: the masters the host rebuilt equal the resident run's.
TEST(GpuTrain, DeferredSiteBf16LaggingHostIsExact) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO}) {
    RunConfig r = gpu_config(kind);
    r.policy.storage_dtype = DType::BF16;
    auto ref = run(r, 6);
    setenv("ZOFF_DEFERRED_HOST_DELAY_MS", "40", 1);
    RunConfig c = r;
    char t[] = "/tmp/zoff_gpu_XXXXXX";
    c.train.output_dir = mkdtemp(t);
    c.policy.offload = true;
    c.policy.num_slots = 2;
    c.policy.resident_blocks = 0;
    c.policy.update_site = UpdateSite::Deferred;
    c.policy.deferred_max_lag = 3;
    auto w = run(c, 6);
    unsetenv("ZOFF_DEFERRED_HOST_DELAY_MS");
    for (size_t g = 0; g < w.size(); ++g)
      EXPECT_TRUE(at::equal(w[g], ref[g])) << optimizer_kind_name(kind) << " group " << g << " max diff "
                                           << (w[g] - ref[g]).abs().max().item<double>();
  }
}

// fp8 transfers at the GPU site on CUDA (Note [fp8 at the GPU site]): the kernel's decisions, the
// staged codes, the mapped exception list and the host apply leave the bf16 masters exactly where
// the seed log's updates put them (replayed on the CPU), with 2 and 3 slots (3: packed codes) and
// a small list that overflows into the host recompute.
TEST(GpuTrain, Fp8GpuSiteMastersReplayExactly) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO})
    for (int K : {2, 3})
      for (int64_t divisor : {int64_t(64), int64_t(1) << 20}) {
        // Note [Packed codes]: the K = 3 runs pack the codes on the device (the default), the
        // K = 2 runs keep them staged (ZOFF_DELTA_CODES=staged) so that both stay GPU-tested.
        if (K == 3) unsetenv("ZOFF_DELTA_CODES");
        else setenv("ZOFF_DELTA_CODES", "staged", 1);
        RunConfig c = gpu_config(kind);
        c.optimizer.weight_decay = 0.0;
        c.policy.storage_dtype = DType::BF16;
        c.policy.compute_dtype = DType::BF16;
        c.policy.offload = true;
        c.policy.num_slots = K;
        c.policy.resident_blocks = K == 3 ? 1 : 0;
        c.policy.update_site = UpdateSite::Gpu;
        c.policy.transfer = TransferFormat::FP8;
        c.policy.delta_list_divisor = divisor;
        std::vector<at::Tensor> w;
        int64_t exceptions = 0;
        {
          Trainer t(c);
          for (int i = 0; i < 6; ++i) {
            ASSERT_TRUE(std::isfinite(t.train_step().loss));
            const nlohmann::json s = t.engine_stats();
            if (i > 0) {
              EXPECT_EQ(s.at("write_back").get<std::string>(), "delta");
            }
          }
          w = t.snapshot_weights();  // drains the applies (Note [Applies across passes])
          exceptions = t.engine_stats().at("delta_exceptions_total").get<int64_t>();
        }
        EXPECT_GT(exceptions, 0);
        const std::string out = c.train.output_dir + "/replayed";
        ASSERT_EQ(rebuild_from_seed_log(c.train.output_dir, out), 6);
        Model m(c.model.spec);
        ModelWeights r = load_weights(m, out, at::kFloat);
        for (size_t g = 0; g < w.size(); ++g)
          EXPECT_TRUE(at::equal(w[g], r.flats[g])) << optimizer_kind_name(kind) << " K " << K << " divisor " << divisor
                                                   << " group " << g << " max diff "
                                                   << (w[g] - r.flats[g]).abs().max().item<double>();
        zoff::testing::remove_tree(c.train.output_dir);
      }
  unsetenv("ZOFF_DELTA_CODES");
}

}  // namespace
}  // namespace zoff
