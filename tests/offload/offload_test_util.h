// Shared helpers for the offload tests: block shapes, initial values, a store+ring+resident rig.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "offload/block_store.h"
#include "offload/executor.h"
#include "offload/plan.h"
#include "offload/resident_blocks.h"
#include "offload/slot_ring.h"

namespace zoff::test {

// B blocks of different sizes (so slots are reused by blocks of other sizes), 2-3 row segments each.
inline std::vector<BlockDesc> make_blocks(int B, int64_t base = 96) {
  std::vector<BlockDesc> v;
  for (int b = 0; b < B; ++b) {
    const int64_t cols = 16 + 8 * (b % 3);
    const int64_t rows = base / 16 + b;
    BlockDesc d;
    d.segments = {{rows, cols}, {1, cols}, {2, 24}};
    d.numel = rows * cols + cols + 48;
    v.push_back(d);
  }
  return v;
}

// Exactly representable in f32 for every value the tests reach (integers + quarters below 2^20).
inline float initial_value(int b, int64_t i) { return float(b * 4096) + float(i % 4096) * 0.25f; }

inline void fill_initial(BlockStore& s) {
  for (int b = 0; b < s.num_blocks(); ++b) {
    float* p = static_cast<float*>(s.data(b));
    for (int64_t i = 0; i < s.numel(b); ++i) p[i] = initial_value(b, i);
  }
}

// Number of elements of block b whose master differs from initial + delta (bit-exact compare).
inline int64_t mismatches(const BlockStore& s, int b, float delta) {
  const float* p = static_cast<const float*>(s.data(b));
  int64_t bad = 0;
  for (int64_t i = 0; i < s.numel(b); ++i) bad += p[i] != initial_value(b, i) + delta;
  return bad;
}

struct Rig {
  std::unique_ptr<BlockStore> store;
  std::unique_ptr<SlotRing> ring;
  std::unique_ptr<ResidentBlocks> resident;
  std::unique_ptr<Executor> exec;
  Plan plan;

  Rig(StreamDevice& dev, const PlanConfig& cfg, BlockStoreOptions opts, ExecutorOptions eo = {},
      int64_t base = 96) {
    store = std::make_unique<BlockStore>(make_blocks(cfg.num_blocks, base), opts);
    plan = build_plan(cfg);
    if (!plan.streamed.empty()) ring = std::make_unique<SlotRing>(dev, cfg.num_slots, store->max_transfer_bytes());
    resident = std::make_unique<ResidentBlocks>(dev, *store, plan.config.resident);
    exec = std::make_unique<Executor>(dev, *store, ring.get(), resident.get(), eo);
  }
};

}  // namespace zoff::test
