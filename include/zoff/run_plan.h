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

}  // namespace zoff
