// Visit engines: push a ZoStep pass through every parameter group, resident or streamed.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "offload/planner.h"
#include "zoff/config.h"
#include "zoff/model.h"
#include "zoff/optimizer.h"
#include "zoff/weights.h"
#include "zoff/zo_step.h"

namespace zoff {

// Note [Engines]
// An engine owns where the weights live and runs ZoStep passes over them:
//   ResidentEngine: every group's flat buffer on the compute device; visits in order.
//   OffloadEngine:  embed and head groups on the device, decoder blocks in a pinned BlockStore
//                   streamed through the offload Executor's slot ring (some kept resident per the
//                   planner); the pending update is applied on the device (GPU site, the block is
//                   written back) or by the host on the master before upload (CPU site).
// Both run exactly the same ZoStep code per group, so their weights agree bit for bit.
class Engine {
 public:
  virtual ~Engine() = default;
  // One pass of `step` (begin_pass already called) over all groups; returns when the device is done.
  virtual void run_pass(ZoStep& step, ZoOptimizer* opt, bool apply_pending) = 0;
  // Applies opt's pending update to every group and clears it.
  virtual void flush(ZoOptimizer& opt) = 0;
  // CPU float32 copies of every group's flat buffer (for checkpoints; flush first).
  virtual std::vector<at::Tensor> host_groups() = 0;
  // Overwrites every group from CPU flats (resume).
  virtual void load_groups(const std::vector<at::Tensor>& flats) = 0;
  virtual std::string describe() const = 0;
  // Per-step engine numbers (h2d bytes, busy fractions) for metrics; may be empty.
  virtual nlohmann::json last_pass_stats() const { return nlohmann::json::object(); }
  virtual void write_timeline(const std::string& path) const {}
  // Blocks until the host work that trails finished passes is done (Note [Applies across passes]).
  virtual void wait_background() {}
};

struct EngineOptions {
  at::Device device = at::kCPU;
  at::ScalarType storage = at::kFloat;  // master dtype
  at::ScalarType compute = at::kFloat;
  bool timeline = false;
};

// Fills group g's flat CPU buffer (storage dtype) with its initial weights: a checkpoint's
// tensors or dummy weights. Engines call it once per group, straight into the buffer the group
// will live in (the pinned master for streamed blocks), so no full extra copy of the model exists.
using GroupInit = std::function<void(int group, at::Tensor cpu_flat)>;

std::unique_ptr<Engine> make_resident_engine(const Model& m, const GroupInit& init, const EngineOptions& o);
std::unique_ptr<Engine> make_offload_engine(const Model& m, const GroupInit& init, const EngineOptions& o,
                                            const OffloadPolicy& policy, const PlanReport& plan);

}  // namespace zoff
