// Plan: the explicit, inspectable list of ops (upload, compute, offload) one offloaded step issues.
#pragma once

#include <string>
#include <vector>

#include "offload/stream_device.h"
#include "zoff/policy.h"

namespace zoff {

enum class OpKind : uint8_t { WaitHostUpdate, Upload, Compute, Offload };
enum class Phase : uint8_t { Prologue, Steady, Epilogue };
// The three events of each slot k (Note [Slot events]).
enum class SlotEvent : uint8_t { Loaded, Computed, Free };
const char* op_kind_name(OpKind k);
const char* phase_name(Phase p);
const char* slot_event_name(SlotEvent e);

struct EventRef {
  SlotEvent kind;
  int slot;
  bool operator==(const EventRef& o) const { return kind == o.kind && slot == o.slot; }
};

// One op, in issue order. slot is -1 for a resident block's Compute. WaitHostUpdate runs on the
// issuing host thread (stream is meaningless for it); the others run on `stream`, first waiting
// for every event in `waits`, then recording every event in `records`.
struct PlanOp {
  OpKind kind;
  Phase phase;
  int block;
  int slot;
  StreamId stream;
  std::vector<EventRef> waits;
  std::vector<EventRef> records;
};

struct PlanConfig {
  int num_blocks = 0;
  int num_slots = 3;       // K >= 2
  int prefetch_depth = 1;  // d, 0 <= d < K: streamed blocks uploaded ahead of the one computing
  std::vector<bool> resident;  // num_blocks entries, or empty = no block resident
  UpdateSite site = UpdateSite::Gpu;
};
PlanConfig plan_config(const OffloadPolicy& p, int num_blocks, std::vector<bool> resident);

// Note [Slot events]
// Slot k has three events: loaded[k] (Upload recorded it: the block is in the slot),
// computed[k] (Compute recorded it: the slot may be written back) and free[k] (the slot may be
// overwritten: recorded by Offload at the GPU site, by Compute itself at the CPU site).
//   Upload   (upload stream):  [wait free[k] if k was used earlier in the step]  H2D  record loaded[k]
//   Compute  (compute stream): wait loaded[k]  run block  record computed[k] (GPU) | free[k] (CPU)
//   Offload  (offload stream): wait computed[k]  D2H  record free[k]            (GPU site only)
// Streamed block j (counting streamed blocks only, in block order) uses slot j mod K. Each wait
// refers to the latest record issued before it, so issue order is part of correctness: the
// validator checks it.
//
// Note [Plan phases]
// Prologue: WaitHostUpdate (CPU site) + Upload of streamed blocks 0..d-1, and any resident
// blocks computed before the first streamed one. Steady state, for streamed block j while
// j + d < n: Upload j+d, Compute j, Offload j -- on the device Upload j+d overlaps Compute j,
// which overlaps Offload j-1. Epilogue: the last d streamed blocks' Compute/Offload, and
// resident blocks after them. Resident blocks are computed in block order between streamed
// ones, with no events. Upload j+d is issued before Compute j (Note [Issue order]).
//
// Note [Issue order]
// Within an iteration the plan issues Upload j+d before Compute j. On CUDA the compute callback
// runs on the issuing thread; if it ever blocks (reads a loss, syncs), the next upload is already
// queued and the link stays busy. The price: at the CPU site, WaitHostUpdate j+d (a host wait)
// comes before Compute j is issued, which costs overlap only when the host update is the
// bottleneck anyway. A step begins with every slot free: the executor synchronises at the end
// of each step, so the first use of a slot in a step waits on nothing.
struct Plan {
  PlanConfig config;
  std::vector<PlanOp> ops;
  std::vector<int> streamed;       // streamed blocks in block order
  std::vector<int> slot_of_block;  // -1 for resident blocks
  std::string to_string() const;
};

// Builds the plan; InputError naming the policy field on a bad K, d or resident mask.
Plan build_plan(const PlanConfig& cfg);
// Checks issue-order correctness (throws zoff::Error naming the first bad op):
// every wait refers to an event recorded earlier, and the latest such record is the one the op
// depends on (Compute b sees Upload b's loaded[k]; Offload b sees Compute b's computed[k]; an
// Upload into a slot used earlier in the step sees the previous occupant's free[k]), so no slot is
// read before it is loaded or overwritten before it is free; every block is computed once, in
// order; streamed blocks are uploaded (and at the GPU site offloaded) once, resident ones never;
// at the CPU site each upload follows its WaitHostUpdate.
void validate_plan(const Plan& plan);
// Index of an event among the plan's 3K slot events.
inline int event_index(EventRef e, int num_slots) { return int(e.kind) * num_slots + e.slot; }

}  // namespace zoff
