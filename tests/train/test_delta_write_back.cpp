// Delta write-back (Note [Delta write-back]) leaves the masters bit-identical to resident training.
#include "common/remove_tree.h"
#include "common/tiny_run.h"
#include "common/train_expect.h"
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "zoff/error.h"
#include "zoff/trainer.h"

namespace zoff {
namespace {

RunConfig bf16_config(OptimizerKind kind, double lr) {
  RunConfig c = testing::tiny_cpu_run("test", "zoff_delta_", 6);
  testing::small_optimizer(c, kind, lr);
  c.optimizer.weight_decay = kind == OptimizerKind::SVRG ? 0.0 : 0.01;
  c.optimizer.subzero_rank = 4;
  c.optimizer.subzero_period = 3;
  c.policy.storage_dtype = DType::BF16;
  c.policy.compute_dtype = DType::F32;
  c.train.seed = 7;
  return c;
}

struct Result {
  std::vector<at::Tensor> weights;
  std::vector<nlohmann::json> stats;  // engine stats after each step
};

Result run(RunConfig c, int steps) {
  Result r;
  {
    Trainer t(c);
    for (int i = 0; i < steps; ++i) {
      t.train_step();
      r.stats.push_back(t.engine_stats());
    }
    r.weights = t.snapshot_weights();
  }
  zoff::testing::remove_tree(c.train.output_dir);
  return r;
}

RunConfig streamed(RunConfig c, WriteBack wb, int slots) {
  c.policy.offload = true;
  c.policy.num_slots = slots;
  c.policy.prefetch_depth = 1;
  c.policy.resident_blocks = 0;
  c.policy.update_site = UpdateSite::Gpu;
  c.policy.write_back = wb;
  return c;
}

void expect_identical(const Result& a, const Result& b, const std::string& what) {
  testing::expect_same_weights(a.weights, b.weights, what);
}

int64_t total_exceptions(const Result& r) {
  int64_t n = 0;
  for (auto& s : r.stats)
    if (s.contains("delta_exceptions")) n += s.at("delta_exceptions").get<int64_t>();
  return n;
}

// Every optimizer, at a large and a MeZO-sized learning rate, 2 and 3 slots: the delta and dense
// write-backs and resident training end with the same bits. MeZO/FZOO/SVRG really travel as
// deltas (and the large rate has exceptions); SubZero's low-rank updates fall back to dense.
TEST(DeltaWriteBack, Bf16MastersMatchResidentAndDense) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO, OptimizerKind::SVRG, OptimizerKind::SubZero})
    for (double lr : {1e-3, 1e-6}) {
      const std::string what = std::string(optimizer_kind_name(kind)) + " lr " + std::to_string(lr);
      const Result ref = run(bf16_config(kind, lr), 6);
      const Result dense = run(streamed(bf16_config(kind, lr), WriteBack::Dense, 2), 6);
      expect_identical(dense, ref, what + " dense");
      for (int K : {2, 3}) {
        const Result delta = run(streamed(bf16_config(kind, lr), WriteBack::Auto, K), 6);
        expect_identical(delta, ref, what + " delta K " + std::to_string(K));
        const std::string mode = delta.stats.back().at("write_back").get<std::string>();
        if (kind == OptimizerKind::SubZero) {
          EXPECT_EQ(mode, "dense") << what;
          continue;
        }
        // Note [Delta fallback]: after a pass with more than 10% exceptions the next passes go
        // back dense; at a MeZO-sized rate that never happens.
        const int64_t numel = dense.stats.back().at("d2h_bytes").get<int64_t>() / 2;
        const bool heavy = delta.stats[1].at("delta_exceptions").get<int64_t>() * 10 > numel;
        EXPECT_EQ(delta.stats[1].at("write_back").get<std::string>(), "delta") << what;
        EXPECT_EQ(delta.stats[2].at("write_back").get<std::string>(), heavy ? "dense" : "delta") << what;
        if (lr < 1e-4) {
          EXPECT_FALSE(heavy) << what;
        }
        // Step 0 has no pending update: nothing goes back.
        EXPECT_EQ(delta.stats.front().at("write_back").get<std::string>(), "none") << what;
        EXPECT_EQ(delta.stats.front().at("d2h_bytes").get<int64_t>(), 0) << what;
        if (lr > 1e-4) {
          EXPECT_GT(total_exceptions(delta), 0) << what << ": no exception path exercised";
        }
        // At a MeZO-sized rate the delta is a fraction of the block (codes: a quarter byte per
        // element of the two-byte master, plus few exceptions).
        const int64_t dense_d2h = dense.stats.back().at("d2h_bytes").get<int64_t>();
        if (lr < 1e-4) {
          EXPECT_LT(delta.stats.back().at("d2h_bytes").get<int64_t>(), dense_d2h / 2) << what;
        }
      }
    }
}

// Sets an environment knob for the scope (unset after).
struct EnvKnob {
  const char* name;
  EnvKnob(const char* n, const char* value) : name(n) { setenv(name, value, 1); }
  ~EnvKnob() { unsetenv(name); }
};

// A bad value of a write-back knob is an error naming the knob, not a silent default.
void expect_knob_rejected(const char* name, const char* bad) {
  const EnvKnob knob(name, bad);
  try {
    run(streamed(bf16_config(OptimizerKind::MeZO, 1e-3), WriteBack::Delta, 2), 2);
    ADD_FAILURE() << name << "=" << bad << " accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

// Note [Staged codes]: the codes staged in device memory (ZOFF_DELTA_CODES=staged), stored straight
// into the mapped host codes (=mapped, sparse stores) or packed (the default) leave the same bits.
TEST(DeltaWriteBack, MappedAndStagedCodesAgree) {
  const Result ref = run(bf16_config(OptimizerKind::MeZO, 1e-3), 5);
  {
    const EnvKnob knob("ZOFF_DELTA_CODES", "staged");
    const Result staged = run(streamed(bf16_config(OptimizerKind::MeZO, 1e-3), WriteBack::Delta, 2), 5);
    expect_identical(staged, ref, "staged codes");
  }
  {
    const EnvKnob knob("ZOFF_DELTA_CODES", "mapped");
    const Result mapped = run(streamed(bf16_config(OptimizerKind::MeZO, 1e-3), WriteBack::Delta, 3), 5);
    expect_identical(mapped, ref, "mapped codes");
    EXPECT_GT(total_exceptions(mapped), 0);
  }
  {  // Note [Packed codes] (kernels/delta.h): the default
    const Result packed = run(streamed(bf16_config(OptimizerKind::MeZO, 1e-3), WriteBack::Delta, 3), 5);
    expect_identical(packed, ref, "packed codes");
    EXPECT_GT(total_exceptions(packed), 0);
  }
  expect_knob_rejected("ZOFF_DELTA_CODES", "mapd");
}

// Note [Staged exception list]: ZOFF_DELTA_LIST=staged (device list, counted copy to the host
// list) leaves the same bits, with and without overflow.
TEST(DeltaWriteBack, StagedListAgrees) {
  const Result ref = run(bf16_config(OptimizerKind::MeZO, 1e-3), 5);
  {
    const EnvKnob knob("ZOFF_DELTA_LIST", "staged");
    const Result staged = run(streamed(bf16_config(OptimizerKind::MeZO, 1e-3), WriteBack::Delta, 2), 5);
    expect_identical(staged, ref, "staged list");
    EXPECT_GT(total_exceptions(staged), 0);
    RunConfig c = streamed(bf16_config(OptimizerKind::MeZO, 1e-3), WriteBack::Delta, 3);
    c.policy.delta_list_divisor = 1 << 20;
    expect_identical(run(c, 5), ref, "staged list, overflowing");
  }
  expect_knob_rejected("ZOFF_DELTA_LIST", "device");
}

// ZOFF_DELTA_APPLY_THREADS (the apply's thread count) changes nothing in the result.
TEST(DeltaWriteBack, ApplyThreadsKnob) {
  const Result ref = run(bf16_config(OptimizerKind::MeZO, 1e-3), 5);
  {
    const EnvKnob knob("ZOFF_DELTA_APPLY_THREADS", "1");
    expect_identical(run(streamed(bf16_config(OptimizerKind::MeZO, 1e-3), WriteBack::Delta, 2), 5), ref,
                     "one apply thread");
  }
  expect_knob_rejected("ZOFF_DELTA_APPLY_THREADS", "0");
  expect_knob_rejected("ZOFF_DELTA_APPLY_THREADS", "4x");
}

// Note [Applies across passes]: ZOFF_DELTA_APPLY_LAG=1 lets the bf16 delta's applies trail into the
// next pass too (slowed here, so they do): the same bits as resident training, for every optimizer.
// The delay must outlast what the step does after its pass (head, loss, stats) even on a loaded
// machine: at 20 ms, FZOO's steps under `ctest -j2` on the 2-core dev machine read their stats
// after the last apply had finished (session 15).
TEST(DeltaWriteBack, LaggedAppliesKnob) {
  for (OptimizerKind kind : {OptimizerKind::MeZO, OptimizerKind::FZOO, OptimizerKind::SVRG}) {
    const Result ref = run(bf16_config(kind, 1e-3), 5);
    const EnvKnob lag("ZOFF_DELTA_APPLY_LAG", "1");
    const EnvKnob slow("ZOFF_DEBUG_DELTA_APPLY_DELAY_MS", "150");
    const Result r = run(streamed(bf16_config(kind, 1e-3), WriteBack::Delta, 2), 5);
    expect_identical(r, ref, std::string(optimizer_kind_name(kind)) + " lagged applies");
    bool lagged = false;
    for (auto& s : r.stats) lagged |= s.value("delta_applies_lag", false) && s.value("delta_applies_pending", false);
    EXPECT_TRUE(lagged) << optimizer_kind_name(kind) << ": no pass ended with its applies pending";
  }
  expect_knob_rejected("ZOFF_DELTA_APPLY_LAG", "yes");
  expect_knob_rejected("ZOFF_DEBUG_DELTA_APPLY_DELAY_MS", "-5");
  expect_knob_rejected("ZOFF_DEBUG_DELTA_APPLY_FAIL_AT", "x");
}

// The measurement knob ZOFF_DEBUG_SKIP_DELTA_APPLY=1 really leaves the masters stale (it is not a
// no-op, so timings taken with it measure a step without the host apply).
TEST(DeltaWriteBack, SkipApplyKnob) {
  const Result ref = run(bf16_config(OptimizerKind::MeZO, 1e-3), 5);
  {
    const EnvKnob knob("ZOFF_DEBUG_SKIP_DELTA_APPLY", "1");
    const Result skipped = run(streamed(bf16_config(OptimizerKind::MeZO, 1e-3), WriteBack::Delta, 2), 5);
    bool same = skipped.weights.size() == ref.weights.size();
    for (size_t i = 0; same && i < ref.weights.size(); ++i) same = at::equal(skipped.weights[i], ref.weights[i]);
    EXPECT_FALSE(same) << "skipping the apply must leave the masters stale";
  }
  expect_knob_rejected("ZOFF_DEBUG_SKIP_DELTA_APPLY", "yes");
}

// A list of one entry per block: nearly every exception overflows into the master directly.
TEST(DeltaWriteBack, OverflowingListsStillExact) {
  const Result ref = run(bf16_config(OptimizerKind::MeZO, 1e-3), 5);
  RunConfig c = streamed(bf16_config(OptimizerKind::MeZO, 1e-3), WriteBack::Delta, 2);
  c.policy.delta_list_divisor = 1 << 20;
  const Result r = run(c, 5);
  expect_identical(r, ref, "overflowing lists");
  EXPECT_GT(total_exceptions(r), 5);
}

// More terms than one kernel pass takes (FZOO with 10 directions): those passes go back dense.
TEST(DeltaWriteBack, ManyTermUpdatesFallBackToDense) {
  RunConfig base = bf16_config(OptimizerKind::FZOO, 1e-3);
  base.optimizer.fzoo_n = 10;
  const Result ref = run(base, 4);
  RunConfig c = streamed(base, WriteBack::Delta, 2);
  const Result r = run(c, 4);
  expect_identical(r, ref, "fzoo n 10");
  EXPECT_EQ(r.stats.back().at("write_back").get<std::string>(), "dense");
}

}  // namespace
}  // namespace zoff
