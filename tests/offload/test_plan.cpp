// Plan building and validation over many (B, K, d, resident set, site) combinations, and mutations the validator must catch.
#include <gtest/gtest.h>

#include <random>

#include "offload/plan.h"
#include "offload/planner.h"
#include "zoff/error.h"

namespace zoff {
namespace {

std::vector<bool> random_mask(int B, std::mt19937& rng, int mode) {
  std::vector<bool> m(size_t(B), false);
  if (mode == 1) m.assign(size_t(B), true);
  if (mode == 2)
    for (int b = 0; b < B; ++b) m[size_t(b)] = rng() % 3 == 0;
  if (mode == 3) m = spread_resident(B, B / 2);
  return m;
}

TEST(Plan, ValidForManyCombinations) {
  std::mt19937 rng(7);
  int checked = 0;
  for (int B : {1, 2, 3, 5, 8, 13})
    for (int K : {2, 3, 4, 6})
      for (int d = 0; d < K; ++d)
        for (int mode = 0; mode < 4; ++mode)
          for (UpdateSite site : {UpdateSite::Gpu, UpdateSite::Cpu}) {
            PlanConfig c{B, K, d, random_mask(B, rng, mode), site};
            Plan p = build_plan(c);
            SCOPED_TRACE(p.to_string());
            ASSERT_NO_THROW(validate_plan(p));
            // Every block computed once in order; streamed ones uploaded once; offloads only at the GPU site.
            int computes = 0, uploads = 0, offloads = 0, host_waits = 0, next = 0;
            for (const PlanOp& op : p.ops) {
              if (op.kind == OpKind::Compute) {
                EXPECT_EQ(op.block, next++);
                ++computes;
              }
              uploads += op.kind == OpKind::Upload;
              offloads += op.kind == OpKind::Offload;
              host_waits += op.kind == OpKind::WaitHostUpdate;
            }
            const int n = int(p.streamed.size());
            EXPECT_EQ(computes, B);
            EXPECT_EQ(uploads, n);
            EXPECT_EQ(offloads, site == UpdateSite::Gpu ? n : 0);
            EXPECT_EQ(host_waits, site == UpdateSite::Cpu ? n : 0);
            ++checked;
          }
  EXPECT_EQ(checked, 6 * (2 + 3 + 4 + 6) * 4 * 2);
}

TEST(Plan, SteadyStateShape) {
  // B=6 all streamed, K=3, d=1, GPU site: upload 0 in the prologue, then (upload j+1, compute j,
  // offload j) and an epilogue with the last compute/offload.
  Plan p = build_plan({6, 3, 1, {}, UpdateSite::Gpu});
  ASSERT_EQ(p.ops.size(), size_t(18));
  EXPECT_EQ(p.ops[0].kind, OpKind::Upload);
  EXPECT_EQ(p.ops[0].phase, Phase::Prologue);
  EXPECT_EQ(p.ops[0].block, 0);
  EXPECT_TRUE(p.ops[0].waits.empty());
  // Iteration j=3: upload 4 into slot 1 waits free[1] (block 1's offload), compute 3 in slot 0.
  const PlanOp& up4 = p.ops[1 + 3 * 3];
  EXPECT_EQ(up4.kind, OpKind::Upload);
  EXPECT_EQ(up4.block, 4);
  EXPECT_EQ(up4.slot, 1);
  ASSERT_EQ(up4.waits.size(), size_t(1));
  EXPECT_EQ(up4.waits[0], (EventRef{SlotEvent::Free, 1}));
  EXPECT_EQ(up4.phase, Phase::Steady);
  const PlanOp& c3 = p.ops[2 + 3 * 3];
  EXPECT_EQ(c3.kind, OpKind::Compute);
  EXPECT_EQ(c3.block, 3);
  EXPECT_EQ(c3.slot, 0);
  EXPECT_EQ(c3.records[0], (EventRef{SlotEvent::Computed, 0}));
  EXPECT_EQ(p.ops.back().kind, OpKind::Offload);
  EXPECT_EQ(p.ops.back().phase, Phase::Epilogue);
  EXPECT_EQ(p.slot_of_block, (std::vector<int>{0, 1, 2, 0, 1, 2}));
  const std::string s = p.to_string();
  EXPECT_NE(s.find("prologue:"), std::string::npos);
  EXPECT_NE(s.find("steady:"), std::string::npos);
  EXPECT_NE(s.find("epilogue:"), std::string::npos);
  EXPECT_NE(s.find("waits free[1]"), std::string::npos);
}

TEST(Plan, CpuSiteComputeFreesSlotAndUploadsWaitForHost) {
  Plan p = build_plan({4, 2, 1, {false, true, false, false}, UpdateSite::Cpu});
  validate_plan(p);
  EXPECT_EQ(p.streamed, (std::vector<int>{0, 2, 3}));
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const PlanOp& op = p.ops[i];
    if (op.kind == OpKind::Upload) {
      ASSERT_GT(i, size_t(0));
      EXPECT_EQ(p.ops[i - 1].kind, OpKind::WaitHostUpdate);
      EXPECT_EQ(p.ops[i - 1].block, op.block);
    }
    if (op.kind == OpKind::Compute && op.slot >= 0) {
      EXPECT_EQ(op.records[0].kind, SlotEvent::Free);
    }
    if (op.kind == OpKind::Compute && op.block == 1) {
      EXPECT_EQ(op.slot, -1);
    }
  }
}

TEST(Plan, BadConfigIsInputError) {
  EXPECT_THROW(build_plan({4, 1, 0, {}, UpdateSite::Gpu}), InputError);
  EXPECT_THROW(build_plan({4, 3, 3, {}, UpdateSite::Gpu}), InputError);
  EXPECT_THROW(build_plan({4, 3, -1, {}, UpdateSite::Gpu}), InputError);
  EXPECT_THROW(build_plan({4, 3, 1, {true, false}, UpdateSite::Gpu}), InputError);
}

// Each mutation of a valid plan must be rejected.
Plan base_plan(UpdateSite site) { return build_plan({6, 2, 1, {false, false, true, false, false, false}, site}); }

size_t find_op(const Plan& p, OpKind k, int block) {
  for (size_t i = 0; i < p.ops.size(); ++i)
    if (p.ops[i].kind == k && p.ops[i].block == block) return i;
  ADD_FAILURE() << "no " << op_kind_name(k) << " of block " << block;
  return 0;
}

TEST(PlanValidator, RejectsUploadWithoutWaitingForFreeSlot) {
  Plan p = base_plan(UpdateSite::Gpu);
  p.ops[find_op(p, OpKind::Upload, 3)].waits.clear();
  EXPECT_THROW(validate_plan(p), Error);
}

TEST(PlanValidator, RejectsUploadIssuedBeforeThePreviousOccupantIsOffloaded) {
  // Move block 3's upload (slot 0, previous occupant block 0) before block 0's offload: its wait on
  // free[0] would refer to no record (or a stale one) -- the slot would be overwritten too early.
  Plan p = base_plan(UpdateSite::Gpu);
  const size_t up = find_op(p, OpKind::Upload, 3);
  PlanOp op = p.ops[up];
  p.ops.erase(p.ops.begin() + long(up));
  p.ops.insert(p.ops.begin() + long(find_op(p, OpKind::Offload, 0)), op);
  EXPECT_THROW(validate_plan(p), Error);
}

TEST(PlanValidator, RejectsStaleFreeRecord) {
  // K=2, block 2 resident: streamed blocks 0,1,3,4,5 use slots 0,1,0,1,0, so block 5 goes into
  // slot 0 after blocks 0 and 3. Issuing its upload before block 3's offload makes its wait see
  // block 0's free[0] record: the slot would be overwritten while block 3 still uses it.
  Plan p = base_plan(UpdateSite::Gpu);
  const size_t up = find_op(p, OpKind::Upload, 5);
  PlanOp op = p.ops[up];
  p.ops.erase(p.ops.begin() + long(up));
  p.ops.insert(p.ops.begin() + long(find_op(p, OpKind::Offload, 3)), op);
  try {
    validate_plan(p);
    FAIL() << "accepted:\n" << p.to_string();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("upload block 5, slot 0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("block 3"), std::string::npos) << e.what();
  }
}

TEST(PlanValidator, RejectsComputeWithoutLoadedWait) {
  Plan p = base_plan(UpdateSite::Gpu);
  p.ops[find_op(p, OpKind::Compute, 1)].waits.clear();
  EXPECT_THROW(validate_plan(p), Error);
}

TEST(PlanValidator, RejectsOffloadBeforeCompute) {
  Plan p = base_plan(UpdateSite::Gpu);
  const size_t off = find_op(p, OpKind::Offload, 1), comp = find_op(p, OpKind::Compute, 1);
  std::swap(p.ops[off], p.ops[comp]);
  EXPECT_THROW(validate_plan(p), Error);
}

TEST(PlanValidator, RejectsComputeOutOfOrder) {
  Plan p = base_plan(UpdateSite::Gpu);
  std::swap(p.ops[find_op(p, OpKind::Compute, 2)], p.ops[find_op(p, OpKind::Compute, 1)]);
  EXPECT_THROW(validate_plan(p), Error);
}

TEST(PlanValidator, RejectsMissingOffloadAtGpuSite) {
  Plan p = base_plan(UpdateSite::Gpu);
  p.ops.erase(p.ops.begin() + long(find_op(p, OpKind::Offload, 5)));
  EXPECT_THROW(validate_plan(p), Error);
}

TEST(PlanValidator, RejectsUploadBeforeHostUpdateAtCpuSite) {
  Plan p = base_plan(UpdateSite::Cpu);
  validate_plan(p);
  p.ops.erase(p.ops.begin() + long(find_op(p, OpKind::WaitHostUpdate, 4)));
  EXPECT_THROW(validate_plan(p), Error);
}

TEST(PlanValidator, RejectsMovingAResidentBlock) {
  Plan p = base_plan(UpdateSite::Gpu);
  PlanOp up{OpKind::Upload, Phase::Prologue, 2, 1, StreamId::Upload, {}, {{SlotEvent::Loaded, 1}}};
  p.ops.insert(p.ops.begin(), up);
  EXPECT_THROW(validate_plan(p), Error);
}

TEST(PlanValidator, RejectsWrongStreamAndForeignRecords) {
  Plan p = base_plan(UpdateSite::Gpu);
  p.ops[find_op(p, OpKind::Upload, 1)].stream = StreamId::Compute;
  EXPECT_THROW(validate_plan(p), Error);
  Plan q = base_plan(UpdateSite::Gpu);
  q.ops[find_op(q, OpKind::Compute, 0)].records.push_back({SlotEvent::Free, 0});
  EXPECT_THROW(validate_plan(q), Error);
}

}  // namespace
}  // namespace zoff
