// From a model and a run config to the offload planner's inputs (shared by Trainer and `zoff plan`).
#pragma once

#include "offload/planner.h"
#include "zoff/config.h"
#include "zoff/model.h"

namespace zoff {

// Number of forwards one step runs while a block is resident (MeZO 2, FZOO N+1, SubZero 2, SVRG 4).
int forwards_per_step(const OptimizerConfig& o);
// The engine's view of layer group g: its numel and row segments (fp8 scales are per row).
BlockDesc block_desc(const GroupLayout& g);
// Bytes of the groups that always stay on the device (embed, head) in the storage dtype.
int64_t resident_part_bytes(const Model& m, DType storage);
// Planner inputs for a run: block sizes, activations for batch_size x max_length, scratch,
// workspace, FLOPs (Note [Activation estimate] in run_plan.cpp).
PlannerInput planner_input(const Model& m, const RunConfig& cfg);
// Note [Auto transfer] (run_plan.cpp): what policy.transfer = "auto" becomes for cfg on a CUDA
// device (cuda) or the CPU, with the reason in *why; other formats come back unchanged.
TransferFormat auto_transfer(const RunConfig& cfg, bool cuda, bool distributed, std::string* why = nullptr);
// The offload plan for *p. Where auto picked bf16-split (auto_split) and split's plan does not fit
// the GPU memory budget, or is predicted slower than "same" there, sets p->transfer = Same, plans
// that, and puts the reason in *why (Note [Auto transfer]).
PlanReport plan_auto(const PlannerInput& in, OffloadPolicy* p, bool auto_split, std::string* why);

}  // namespace zoff
