// Rebuilding a run's weights from its base checkpoint and seed log (no weights stored per step).
#pragma once

#include <cstdint>
#include <string>

namespace zoff {

// Note [Seed log replay]
// Every finished step appends {step, terms [[seed, coeff, basis]], decay, lr} to
// run_dir/seed_log.jsonl. Starting from the run's base weights (its checkpoint, or dummy weights
// from the same seed) and applying each logged update to every parameter group with the same
// Directions and kernels the trainer used reproduces the trained weights bit for bit (the update
// is a pure function of the logged scalars, the seeds and the weights). Only steps <= up_to are
// applied (-1: all). Writes an HF checkpoint with config.json into out_dir; returns steps applied.
int64_t rebuild_from_seed_log(const std::string& run_dir, const std::string& out_dir, int64_t up_to = -1);

}  // namespace zoff
