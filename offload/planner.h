// Offload planner: which blocks stay resident within the GPU budget, and what a step will cost.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "offload/transfer_layout.h"
#include "zoff/policy.h"

namespace zoff {

// Everything the planner needs besides the policy. Bandwidths in GB/s (1e9 bytes/s) and GEMM
// throughput in TFLOP/s, as measured on the H100 machine (shared design sketch) by default.
struct PlannerInput {
  std::vector<BlockDesc> blocks;                  // the streamable blocks, in forward order
  int64_t resident_part_bytes = 0;                // embeddings, head, final norm: always on the GPU
  int64_t activation_bytes_per_perturbation = 0;  // one activation set per perturbation
  int num_perturbations = 2;                      // 2 for MeZO, N+1 for FZOO, ...
  int64_t scratch_bytes = 0;                      // perturbation scratch (largest matrix)
  int64_t workspace_bytes = 0;                    // cuBLAS workspace, allocator slack
  int64_t context_bytes = 0;                      // CUDA context (Note [CUDA context]); 0 on the CPU
  double flops_per_step = 0;                      // all forwards of one step
  double h2d_gbps = 54.7;
  double d2h_gbps = 55.1;
  double both_gbps = 91.8;  // H2D + D2H together when both directions run at once
  double gemm_tflops = 776;
  // Host-side updates (CPU and deferred sites; Note [Host update cost] in src/train/run_plan.cpp).
  int host_cores = 0;          // cores that run them; 0 = no host term
  double host_update_ns = 0;   // core-ns per element to apply one step's pending update
  double host_pack_ns = 0;     // core-ns per element to refresh the transfer copy (CPU site only)
};

struct MemoryComponent {
  std::string name;
  int64_t bytes = 0;
};

struct PlanReport {
  int num_blocks = 0;
  std::vector<bool> resident;  // chosen resident set
  int resident_count = 0;
  int num_slots = 0;  // 0 when nothing is streamed
  int64_t slot_bytes = 0;
  UpdateSite site = UpdateSite::Gpu;
  TransferFormat transfer = TransferFormat::Same;
  std::vector<MemoryComponent> gpu;  // every GPU component, resident blocks last
  int64_t gpu_total = 0;
  int64_t gpu_budget = 0;  // 0 = none
  int64_t host_bytes = 0;  // masters + transfer copies
  int64_t h2d_bytes_per_step = 0;
  int64_t d2h_bytes_per_step = 0;
  double transfer_seconds = 0;
  double compute_seconds = 0;
  double host_seconds = 0;  // host-side updates of the streamed blocks (CPU / deferred site)
  int host_cores = 0;
  double step_seconds = 0;  // max(transfer, compute, host): the steady-state bound
  std::string to_string() const;
};

// Note [Planner]
// GPU memory = slots (K x the largest block in the transfer format, each rounded up to 256 B)
//            + resident parts + activations x perturbations + scratch + workspace
//            + resident blocks (storage dtype).
// offload = false: every block resident, no slots; over budget is an InputError.
// offload = true: if every block fits without slots it keeps them all; otherwise
// resident_blocks >= 0 is taken as given (checked against the budget), else the greedy count is
// the largest R whose spread placement fits next to the fixed parts (no budget: R = 0).
// Too small a budget even for R = 0 is an InputError listing each component.
// Transfer time: H2D bytes / h2d_gbps, with the GPU site max(H2D/h2d, D2H/d2h, (H2D+D2H)/both);
// compute time: flops / gemm_tflops; at the CPU and deferred sites, and for fp8 at the GPU site
// (the host applies the device's delta), host time: streamed elements x (host_update_ns [+
// host_pack_ns at the CPU site]) / host_cores, since the host thread's work on a block runs
// alongside the uploads; predicted step = max of the three (pipeline fill ignored).
//
// Note [Which blocks stay resident]
// R resident blocks are spread evenly over the B blocks, first and last included
// (round(i (B-1)/(R-1))): block 0 resident hides the prologue upload, the last block hides the
// epilogue write-back, and the gaps between resident blocks let the upload stream run ahead
// instead of idling through a long run of resident computes.
std::vector<bool> spread_resident(int num_blocks, int count);
PlanReport plan_offload(const PlannerInput& in, const OffloadPolicy& policy);

}  // namespace zoff
