// Planner: resident-set choice, GPU/host bytes and step-time predictions against hand-computed numbers.
#include <gtest/gtest.h>

#include "offload/planner.h"
#include "zoff/error.h"

namespace zoff {
namespace {

std::vector<BlockDesc> uniform(int n, int64_t numel, std::vector<RowSegment> segs = {}) {
  return std::vector<BlockDesc>(size_t(n), BlockDesc{numel, segs});
}

PlannerInput base_input() {
  PlannerInput in;
  in.blocks = uniform(4, 1000000);  // 4e6 bytes each in f32
  in.resident_part_bytes = 1000000;
  in.activation_bytes_per_perturbation = 500000;
  in.num_perturbations = 2;
  in.scratch_bytes = 500000;
  in.workspace_bytes = 500000;  // common parts: 3e6
  in.flops_per_step = 1e9;
  return in;
}

OffloadPolicy streamed_policy(int64_t budget) {
  OffloadPolicy p;
  p.name = "test";
  p.offload = true;
  p.num_slots = 2;  // 2 x 4e6 = 8e6 (4e6 is a multiple of 256)
  p.gpu_memory_budget = budget;
  return p;
}

TEST(Planner, SpreadResident) {
  EXPECT_EQ(spread_resident(8, 3), (std::vector<bool>{true, false, false, false, true, false, false, true}));
  EXPECT_EQ(spread_resident(5, 1), (std::vector<bool>{true, false, false, false, false}));
  EXPECT_EQ(spread_resident(3, 3), (std::vector<bool>{true, true, true}));
  EXPECT_EQ(spread_resident(3, 0), (std::vector<bool>{false, false, false}));
  for (int B = 1; B < 20; ++B)
    for (int R = 0; R <= B; ++R) {
      std::vector<bool> m = spread_resident(B, R);
      EXPECT_EQ(std::count(m.begin(), m.end(), true), R) << B << " " << R;
    }
}

TEST(Planner, GreedyResidentCountWithinBudget) {
  // fixed = slots 8e6 + common 3e6 = 11e6; all resident would need 3e6 + 16e6 = 19e6 > 18e6;
  // 18e6 - 11e6 = 7e6 leaves room for one 4e6 block.
  PlanReport r = plan_offload(base_input(), streamed_policy(18000000));
  EXPECT_EQ(r.resident_count, 1);
  EXPECT_EQ(r.resident, (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(r.num_slots, 2);
  EXPECT_EQ(r.slot_bytes, 4000000);
  EXPECT_EQ(r.gpu_total, 15000000);
  EXPECT_EQ(r.host_bytes, 16000000);
  EXPECT_EQ(r.h2d_bytes_per_step, 12000000);
  EXPECT_EQ(r.d2h_bytes_per_step, 12000000);
  // Both directions at once: (12e6 + 12e6) / 91.8e9 beats 12e6 / 54.7e9 and 12e6 / 55.1e9.
  EXPECT_NEAR(r.transfer_seconds, 24e6 / 91.8e9, 1e-12);
  EXPECT_NEAR(r.compute_seconds, 1e9 / 776e12, 1e-15);
  EXPECT_DOUBLE_EQ(r.step_seconds, r.transfer_seconds);
  int64_t sum = 0;
  for (const MemoryComponent& m : r.gpu) sum += m.bytes;
  EXPECT_EQ(sum, r.gpu_total);
  const std::string s = r.to_string();
  for (const char* want : {"slots (2 x", "resident blocks (1)", "activations (2 x", "total", "predicted step",
                           "transfer-bound"})
    EXPECT_NE(s.find(want), std::string::npos) << want << " missing in\n" << s;
}

TEST(Planner, HostUpdatesBoundTheCpuSite) {
  // 4 streamed blocks of 1e6 elements, (2.7 + 1.0) core-ns each on 2 cores: 1.85 ms, above the
  // transfer time 16e6 / 54.7e9 = 0.29 ms. The GPU site has no host term; the deferred site no pack.
  PlannerInput in = base_input();
  in.host_cores = 2;
  in.host_update_ns = 2.7;
  in.host_pack_ns = 1.0;
  OffloadPolicy p = streamed_policy(0);
  p.update_site = UpdateSite::Cpu;
  PlanReport r = plan_offload(in, p);
  EXPECT_EQ(r.resident_count, 0);
  EXPECT_NEAR(r.host_seconds, 4e6 * 3.7e-9 / 2, 1e-12);
  EXPECT_DOUBLE_EQ(r.step_seconds, r.host_seconds);
  const std::string s = r.to_string();
  EXPECT_NE(s.find("host updates 0.007 s on 2 cores"), std::string::npos) << s;
  EXPECT_NE(s.find("(host-bound)"), std::string::npos) << s;
  p.update_site = UpdateSite::Deferred;
  EXPECT_NEAR(plan_offload(in, p).host_seconds, 4e6 * 2.7e-9 / 2, 1e-12);
  p.update_site = UpdateSite::Gpu;
  r = plan_offload(in, p);
  EXPECT_EQ(r.host_seconds, 0.0);
  EXPECT_EQ(r.to_string().find("host updates"), std::string::npos);
}

TEST(Planner, EverythingResidentWhenItFits) {
  PlanReport r = plan_offload(base_input(), streamed_policy(19000000));  // exactly 3e6 + 16e6
  EXPECT_EQ(r.resident_count, 4);
  EXPECT_EQ(r.num_slots, 0);
  EXPECT_EQ(r.gpu_total, 19000000);
  EXPECT_EQ(r.h2d_bytes_per_step, 0);
  EXPECT_EQ(r.transfer_seconds, 0.0);
  EXPECT_DOUBLE_EQ(r.step_seconds, r.compute_seconds);
}

TEST(Planner, NoBudgetStreamsEverything) {
  PlanReport r = plan_offload(base_input(), streamed_policy(0));
  EXPECT_EQ(r.resident_count, 0);
  EXPECT_EQ(r.gpu_total, 11000000);
  EXPECT_EQ(r.h2d_bytes_per_step, 16000000);
}

TEST(Planner, RefusesTooSmallBudgetListingComponents) {
  try {
    plan_offload(base_input(), streamed_policy(10000000));  // fixed parts alone are 11e6
    FAIL() << "accepted";
  } catch (const InputError& e) {
    const std::string m = e.what();
    for (const char* want : {"gpu_memory_budget", "slots (2 x", "resident parts", "activations", "perturbation scratch",
                             "workspace", "total"})
      EXPECT_NE(m.find(want), std::string::npos) << want << " missing in: " << m;
  }
}

TEST(Planner, FixedResidentCountIsChecked) {
  OffloadPolicy p = streamed_policy(18000000);
  p.resident_blocks = 2;  // 11e6 + 8e6 > 18e6
  EXPECT_THROW(plan_offload(base_input(), p), InputError);
  p.resident_blocks = 1;
  EXPECT_EQ(plan_offload(base_input(), p).resident_count, 1);
  p.resident_blocks = 5;
  EXPECT_THROW(plan_offload(base_input(), p), InputError);
}

TEST(Planner, CpuSiteFp8) {
  // bf16 masters of 1000 x 1000; fp8 transfer = 1e6 bytes + 1000 scales x 4 = 1,004,000 bytes.
  PlannerInput in = base_input();
  in.blocks = uniform(4, 1000000, {{1000, 1000}});
  OffloadPolicy p = streamed_policy(0);
  p.storage_dtype = DType::BF16;
  p.compute_dtype = DType::BF16;
  p.transfer = TransferFormat::FP8;
  p.update_site = UpdateSite::Cpu;
  p.num_slots = 3;
  PlanReport r = plan_offload(in, p);
  EXPECT_EQ(r.slot_bytes, 1004000);
  // slots 3 x 1,004,032 (256-aligned) + common 3e6; fp8 is dequantised per matrix into the
  // perturbation scratch, so there is no block-sized unpack buffer.
  EXPECT_EQ(r.gpu_total, 3 * 1004032 + 3000000);
  EXPECT_EQ(r.h2d_bytes_per_step, 4 * 1004000);
  EXPECT_EQ(r.d2h_bytes_per_step, 0);
  EXPECT_EQ(r.host_bytes, 4 * 2000000 + 4 * 1004000);
  EXPECT_NEAR(r.transfer_seconds, 4016000 / 54.7e9, 1e-12);
}

TEST(Planner, ComputeBound) {
  PlannerInput in = base_input();
  in.flops_per_step = 1e15;
  PlanReport r = plan_offload(in, streamed_policy(0));
  EXPECT_NEAR(r.step_seconds, 1e15 / 776e12, 1e-9);
  EXPECT_NE(r.to_string().find("compute-bound"), std::string::npos);
}

TEST(Planner, BadPoliciesAreInputErrors) {
  OffloadPolicy p = streamed_policy(0);
  p.transfer = TransferFormat::BF16;  // f32 storage, GPU site: bf16 would be written back
  EXPECT_THROW(plan_offload(base_input(), p), InputError);
  p = streamed_policy(0);
  p.num_slots = 1;
  EXPECT_THROW(plan_offload(base_input(), p), InputError);
  p = streamed_policy(0);
  p.prefetch_depth = 2;
  EXPECT_THROW(plan_offload(base_input(), p), InputError);
  OffloadPolicy resident;
  resident.gpu_memory_budget = 18000000;  // offload = false: all 4 blocks need 19e6
  EXPECT_THROW(plan_offload(base_input(), resident), InputError);
  resident.gpu_memory_budget = 0;
  PlanReport r = plan_offload(base_input(), resident);
  EXPECT_EQ(r.resident_count, 4);
  EXPECT_EQ(r.gpu_total, 19000000);
}

}  // namespace
}  // namespace zoff
