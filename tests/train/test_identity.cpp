// Offloaded training (any slots, resident set, update site) equals resident training bit for bit.
#include "common/remove_tree.h"
#include <gtest/gtest.h>
#include <torch/version.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "zoff/error.h"
#include "zoff/trainer.h"

namespace zoff {
namespace {

std::string tmpdir() {
  char t[] = "/tmp/zoff_train_XXXXXX";
  return mkdtemp(t);
}

RunConfig base_config(const std::string& fixture, OptimizerKind kind) {
  RunConfig c;
  c.source = "test";
  c.model.checkpoint = std::string(ZOFF_TEST_DATA) + "/" + fixture + "/model";
  c.model.spec = parse_hf_config(c.model.checkpoint + "/config.json");
  c.optimizer.kind = kind;
  c.optimizer.lr = 1e-3;
  c.optimizer.eps = 1e-3;
  c.optimizer.weight_decay = kind == OptimizerKind::SVRG ? 0.0 : 0.01;
  c.optimizer.fzoo_n = 3;
  c.optimizer.subzero_rank = 4;
  c.optimizer.subzero_period = 3;  // resample inside the run
  c.optimizer.svrg_q = 3;
  c.optimizer.svrg_lr_full = 1e-3;
  c.optimizer.svrg_lr_inner = 1e-3;
  c.data.batch_size = 2;
  c.data.max_length = 16;
  c.train.steps = 7;
  c.train.seed = 42;
  c.train.device = "cpu";
  c.train.log_every = 0;
  c.train.output_dir = tmpdir();
  return c;
}

std::vector<at::Tensor> run(RunConfig c, int steps) {
  Trainer t(c);
  for (int i = 0; i < steps; ++i) t.train_step();
  auto w = t.snapshot_weights();
  zoff::testing::remove_tree(c.train.output_dir);
  return w;
}

void expect_identical(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t g = 0; g < a.size(); ++g)
    EXPECT_TRUE(at::equal(a[g], b[g])) << what << ": group " << g << " differs, max |diff| "
                                       << (a[g] - b[g]).abs().max().item<double>();
}

struct Case {
  const char* fixture;
  OptimizerKind kind;
};

class Identity : public ::testing::TestWithParam<Case> {};

TEST_P(Identity, OffloadedEqualsResident) {
  const Case cs = GetParam();
  RunConfig ref = base_config(cs.fixture, cs.kind);
  auto w_ref = run(ref, 7);
  // The run moved the weights (no silent no-op).
  RunConfig c0 = base_config(cs.fixture, cs.kind);
  auto w0 = run(c0, 0);
  double moved = 0;
  for (size_t g = 0; g < w0.size(); ++g) moved += (w_ref[g] - w0[g]).abs().sum().item<double>();
  EXPECT_GT(moved, 0);
  const int L = int(ref.model.spec.num_layers);
  for (UpdateSite site : {UpdateSite::Gpu, UpdateSite::Cpu, UpdateSite::Deferred})
    for (int K : {2, 3})
      for (int resident : {0, 1, L}) {
        if (site == UpdateSite::Deferred && cs.kind == OptimizerKind::SubZero) continue;  // rejected
        RunConfig c = base_config(cs.fixture, cs.kind);
        c.policy.offload = true;
        c.policy.num_slots = K;
        c.policy.prefetch_depth = 1;
        c.policy.resident_blocks = resident;
        c.policy.update_site = site;
        auto w = run(c, 7);
        expect_identical(w, w_ref, std::string(cs.fixture) + " site " + update_site_name(site) + " K " +
                                       std::to_string(K) + " resident " + std::to_string(resident));
      }
}

INSTANTIATE_TEST_SUITE_P(
    All, Identity,
    ::testing::Values(Case{"opt-tiny", OptimizerKind::MeZO}, Case{"opt-tiny", OptimizerKind::FZOO},
                      Case{"opt-tiny", OptimizerKind::SubZero}, Case{"opt-tiny", OptimizerKind::SVRG},
                      Case{"llama-tiny", OptimizerKind::MeZO}, Case{"llama-tiny", OptimizerKind::FZOO},
                      Case{"llama-tiny", OptimizerKind::SubZero}, Case{"llama-tiny", OptimizerKind::SVRG}));

TEST(Determinism, SameSeedSameBitsAndResumeIsExact) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO, OptimizerKind::SubZero, OptimizerKind::SVRG}) {
    RunConfig c = base_config("opt-tiny", kind);
    c.train.steps = 20;
    auto a = run(c, 20);
    auto b = run(base_config("opt-tiny", kind), 20);
    expect_identical(a, b, "run to run");
    // Stop at 10, checkpoint, resume in a fresh trainer, continue to 20.
    RunConfig c1 = base_config("opt-tiny", kind);
    c1.train.steps = 20;
    std::string ck;
    {
      Trainer t(c1);
      for (int i = 0; i < 10; ++i) t.train_step();
      ck = c1.train.output_dir + "/ck10";
      t.save_checkpoint(ck);
    }
    RunConfig c2 = base_config("opt-tiny", kind);
    c2.train.steps = 20;
    Trainer t2(c2);
    t2.resume_from(ck);
    EXPECT_EQ(t2.step(), 10);
    for (int i = 10; i < 20; ++i) t2.train_step();
    expect_identical(t2.snapshot_weights(), a, std::string("resume ") + optimizer_kind_name(kind));
    zoff::testing::remove_tree(c1.train.output_dir);
    zoff::testing::remove_tree(c2.train.output_dir);
  }
}

#if TORCH_VERSION_MAJOR < 2
// LibTorch 1.x cannot run fp16 on the CPU: the Trainer says which key, before any forward.
TEST(TrainerErrors, Fp16ComputeOnCpuNamesTheKey) {
  RunConfig c = base_config("opt-tiny", OptimizerKind::MeZO);
  c.policy.compute_dtype = DType::F16;
  try {
    Trainer t(c);
    ADD_FAILURE() << "fp16 compute on the CPU was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("policy.compute_dtype"), std::string::npos) << e.what();
  }
  zoff::testing::remove_tree(c.train.output_dir);
}
#endif

// The deferred site with a host thread slowed down (test hook ZOFF_DEFERRED_HOST_DELAY_MS), so
// masters lag by several updates and devices replay more than one: still bit for bit, for fp32
// and for a bf16 master with stochastic rounding, at max_lag 1 (uploads wait) and 4.
TEST(Deferred, LaggingHostStillBitIdentical) {
  for (DType storage : {DType::F32, DType::BF16})
    for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO, OptimizerKind::SVRG}) {
      auto cfg = [&] {
        RunConfig c = base_config("opt-tiny", kind);
        c.policy.storage_dtype = storage;
        c.policy.compute_dtype = DType::F32;
        return c;
      };
      auto w_ref = run(cfg(), 7);
      for (int lag : {1, 4}) {
        setenv("ZOFF_DEFERRED_HOST_DELAY_MS", "80", 1);
        RunConfig c = cfg();
        c.policy.offload = true;
        c.policy.num_slots = 2;
        c.policy.resident_blocks = 0;
        c.policy.update_site = UpdateSite::Deferred;
        c.policy.deferred_max_lag = lag;
        Trainer t(c);
        for (int i = 0; i < 7; ++i) t.train_step();
        const nlohmann::json st = t.engine_stats();
        auto w = t.snapshot_weights();
        unsetenv("ZOFF_DEFERRED_HOST_DELAY_MS");
        zoff::testing::remove_tree(c.train.output_dir);
        expect_identical(w, w_ref, std::string("deferred ") + dtype_name(storage) + " " + optimizer_kind_name(kind) +
                                       " max_lag " + std::to_string(lag));
        EXPECT_LE(st.at("deferred_max_lag").get<int>(), lag);
        if (lag > 1) {
          EXPECT_GT(st.at("deferred_max_lag").get<int>(), 1) << "the slowed host never lagged";
        }
      }
    }
}

}  // namespace
}  // namespace zoff

namespace zoff {
namespace {

// fp8 transfers (bf16 master, CPU update site): forwards see the dequantised weights, so losses
// track the bf16 run closely but not bit for bit; the run must work for every optimizer.
TEST(Fp8Transfer, TracksTheBf16RunForEveryOptimizer) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO, OptimizerKind::SubZero, OptimizerKind::SVRG}) {
    auto losses = [&](bool fp8) {
      RunConfig c = base_config("opt-tiny", kind);
      c.policy.storage_dtype = DType::BF16;
      c.policy.compute_dtype = DType::F32;
      c.policy.offload = true;
      c.policy.resident_blocks = 0;
      c.policy.update_site = UpdateSite::Cpu;
      c.policy.transfer = fp8 ? TransferFormat::FP8 : TransferFormat::Same;
      Trainer t(c);
      std::vector<double> out;
      for (int i = 0; i < 5; ++i) out.push_back(t.train_step().loss);
      zoff::testing::remove_tree(c.train.output_dir);
      return out;
    };
    auto a = losses(false), b = losses(true);
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(std::isfinite(b[i]));
      EXPECT_NEAR(b[i], a[i], 0.02 * std::fabs(a[i])) << optimizer_kind_name(kind) << " step " << i;
      EXPECT_NE(b[i], a[i]) << "fp8 forward identical to bf16: was fp8 used?";
    }
  }
}

}  // namespace
}  // namespace zoff
