// validate_plan: issue-order checks of a Plan (Note [Slot events]).
#include <string>
#include <vector>

#include "offload/plan.h"
#include "zoff/error.h"

namespace zoff {

namespace {

std::string op_str(const Plan& p, size_t i) {
  const PlanOp& op = p.ops[i];
  return "op #" + std::to_string(i) + " (" + op_kind_name(op.kind) + " block " + std::to_string(op.block) +
         (op.slot >= 0 ? ", slot " + std::to_string(op.slot) : std::string()) + ")";
}

struct State {
  // Per event: the op that issued its latest record (-1: none yet in this step).
  std::vector<int> last_record;
  // Per slot: the block that was uploaded into it last (-1: none yet).
  std::vector<int> occupant;
  // Per block: op indices of its upload / compute / offload / host wait (-1: not yet).
  std::vector<int> uploaded, computed, offloaded, host_waited;
};

}  // namespace

void validate_plan(const Plan& p) {
  const PlanConfig& c = p.config;
  const int B = c.num_blocks, K = c.num_slots;
  const bool gpu = c.site == UpdateSite::Gpu;
  ZOFF_CHECK(B > 0 && K >= 2, "plan: bad shape (", B, " blocks, ", K, " slots)");
  ZOFF_CHECK(int(c.resident.size()) == B, "plan: resident mask has ", c.resident.size(), " entries for ",
             B, " blocks");
  State st;
  st.last_record.assign(size_t(3 * K), -1);
  st.occupant.assign(size_t(K), -1);
  st.uploaded.assign(size_t(B), -1);
  st.computed.assign(size_t(B), -1);
  st.offloaded.assign(size_t(B), -1);
  st.host_waited.assign(size_t(B), -1);
  int next_compute = 0;

  // The op whose record of e is the latest one issued before op i, checked against `want`.
  auto expect_wait = [&](size_t i, EventRef e, int want_op, const char* why) {
    const PlanOp& op = p.ops[i];
    bool listed = false;
    for (const EventRef& w : op.waits) listed |= w == e;
    ZOFF_CHECK(listed, "plan: ", op_str(p, i), " must wait on ", slot_event_name(e.kind), "[", e.slot,
               "] (", why, ")");
    const int got = st.last_record[size_t(event_index(e, K))];
    ZOFF_CHECK(got == want_op, "plan: ", op_str(p, i), " waits on ", slot_event_name(e.kind), "[", e.slot,
               "] whose latest record is ", got < 0 ? std::string("none") : op_str(p, size_t(got)),
               ", but it must be ", want_op < 0 ? std::string("none") : op_str(p, size_t(want_op)), " (", why, ")");
  };

  for (size_t i = 0; i < p.ops.size(); ++i) {
    const PlanOp& op = p.ops[i];
    const int b = op.block;
    ZOFF_CHECK(b >= 0 && b < B, "plan: ", op_str(p, i), " names a block out of range");
    const bool res = c.resident[size_t(b)];
    for (const EventRef& e : op.waits) {
      ZOFF_CHECK(e.slot >= 0 && e.slot < K, "plan: ", op_str(p, i), " waits on a slot out of range");
      ZOFF_CHECK(st.last_record[size_t(event_index(e, K))] >= 0, "plan: ", op_str(p, i), " waits on ",
                 slot_event_name(e.kind), "[", e.slot, "], which no earlier op records");
    }
    for (const EventRef& e : op.records)
      ZOFF_CHECK(e.slot >= 0 && e.slot < K, "plan: ", op_str(p, i), " records a slot out of range");
    if (op.kind != OpKind::WaitHostUpdate && op.kind != OpKind::Compute)
      ZOFF_CHECK(!res, "plan: ", op_str(p, i), " moves resident block ", b);
    if (op.kind != OpKind::WaitHostUpdate) {
      const StreamId want = op.kind == OpKind::Upload    ? StreamId::Upload
                            : op.kind == OpKind::Compute ? StreamId::Compute
                                                         : StreamId::Offload;
      ZOFF_CHECK(op.stream == want, "plan: ", op_str(p, i), " is on the ", stream_name(op.stream),
                 " stream, expected ", stream_name(want));
    }
    // Which records an op may issue: loaded by Upload, computed by Compute (GPU site), free by
    // Offload (GPU site) or Compute (CPU site).
    for (const EventRef& e : op.records) {
      const bool ok = (e.kind == SlotEvent::Loaded && op.kind == OpKind::Upload) ||
                      (e.kind == SlotEvent::Computed && op.kind == OpKind::Compute && gpu) ||
                      (e.kind == SlotEvent::Free && op.kind == (gpu ? OpKind::Offload : OpKind::Compute));
      ZOFF_CHECK(ok, "plan: ", op_str(p, i), " may not record ", slot_event_name(e.kind), "[", e.slot, "]");
      ZOFF_CHECK(e.slot == op.slot, "plan: ", op_str(p, i), " records an event of another slot (", e.slot, ")");
    }

    switch (op.kind) {
      case OpKind::WaitHostUpdate:
        ZOFF_CHECK(!gpu, "plan: ", op_str(p, i), ": host-update waits belong to the CPU update site only");
        ZOFF_CHECK(!res, "plan: ", op_str(p, i), ": resident blocks are updated on the device");
        ZOFF_CHECK(st.host_waited[size_t(b)] < 0, "plan: ", op_str(p, i), " repeats the host wait of block ", b);
        st.host_waited[size_t(b)] = int(i);
        break;
      case OpKind::Upload: {
        const int k = op.slot;
        ZOFF_CHECK(k >= 0 && k < K, "plan: ", op_str(p, i), " has no valid slot");
        ZOFF_CHECK(st.uploaded[size_t(b)] < 0, "plan: ", op_str(p, i), " uploads block ", b, " twice");
        if (!gpu)
          ZOFF_CHECK(st.host_waited[size_t(b)] >= 0, "plan: ", op_str(p, i),
                     " is not preceded by the wait for block ", b, "'s host update");
        const int prev = st.occupant[size_t(k)];
        if (prev >= 0) {
          const int released_by = gpu ? st.offloaded[size_t(prev)] : st.computed[size_t(prev)];
          ZOFF_CHECK(released_by >= 0, "plan: ", op_str(p, i), " overwrites slot ", k, " before block ", prev,
                     " is ", gpu ? "offloaded" : "computed");
          expect_wait(i, {SlotEvent::Free, k}, released_by, "the slot's previous block must be done with it");
        }
        st.occupant[size_t(k)] = b;
        st.uploaded[size_t(b)] = int(i);
        break;
      }
      case OpKind::Compute: {
        ZOFF_CHECK(b == next_compute, "plan: ", op_str(p, i), " computes out of order (expected block ",
                   next_compute, ")");
        ++next_compute;
        st.computed[size_t(b)] = int(i);
        if (res) {
          ZOFF_CHECK(op.slot == -1 && op.waits.empty() && op.records.empty(), "plan: ", op_str(p, i),
                     ": a resident block's compute takes no slot and no events");
          break;
        }
        const int k = op.slot;
        ZOFF_CHECK(k >= 0 && k < K, "plan: ", op_str(p, i), " has no valid slot");
        ZOFF_CHECK(st.uploaded[size_t(b)] >= 0 && st.occupant[size_t(k)] == b, "plan: ", op_str(p, i),
                   ": block ", b, " is not the block in slot ", k);
        expect_wait(i, {SlotEvent::Loaded, k}, st.uploaded[size_t(b)], "the block must be in the slot");
        bool rec = false;
        for (const EventRef& e : op.records) rec |= e.kind == (gpu ? SlotEvent::Computed : SlotEvent::Free);
        ZOFF_CHECK(rec, "plan: ", op_str(p, i), " must record ", gpu ? "computed" : "free", "[", k, "]");
        break;
      }
      case OpKind::Offload: {
        ZOFF_CHECK(gpu, "plan: ", op_str(p, i), ": nothing is written back at the CPU update site");
        const int k = op.slot;
        ZOFF_CHECK(k >= 0 && k < K, "plan: ", op_str(p, i), " has no valid slot");
        ZOFF_CHECK(st.computed[size_t(b)] >= 0 && st.occupant[size_t(k)] == b, "plan: ", op_str(p, i),
                   ": block ", b, " is not computed in slot ", k, " yet");
        ZOFF_CHECK(st.offloaded[size_t(b)] < 0, "plan: ", op_str(p, i), " offloads block ", b, " twice");
        expect_wait(i, {SlotEvent::Computed, k}, st.computed[size_t(b)], "the block must be computed");
        bool rec = false;
        for (const EventRef& e : op.records) rec |= e.kind == SlotEvent::Free;
        ZOFF_CHECK(rec, "plan: ", op_str(p, i), " must record free[", k, "]");
        st.offloaded[size_t(b)] = int(i);
        break;
      }
    }
    for (const EventRef& e : op.records) st.last_record[size_t(event_index(e, K))] = int(i);
  }

  ZOFF_CHECK(next_compute == B, "plan: only ", next_compute, " of ", B, " blocks are computed");
  for (int b = 0; b < B; ++b) {
    if (c.resident[size_t(b)]) continue;
    ZOFF_CHECK(st.uploaded[size_t(b)] >= 0, "plan: streamed block ", b, " is never uploaded");
    if (gpu) ZOFF_CHECK(st.offloaded[size_t(b)] >= 0, "plan: streamed block ", b, " is never written back");
  }
  std::vector<int> want_streamed;
  for (int b = 0; b < B; ++b)
    if (!c.resident[size_t(b)]) want_streamed.push_back(b);
  ZOFF_CHECK(p.streamed == want_streamed, "plan: the streamed-block list does not match the resident mask");
  ZOFF_CHECK(p.slot_of_block.size() == size_t(B), "plan: slot_of_block has ", p.slot_of_block.size(),
             " entries for ", B, " blocks");
  for (int b = 0; b < B; ++b) {
    const int want = c.resident[size_t(b)] ? -1 : p.ops[size_t(st.uploaded[size_t(b)])].slot;
    ZOFF_CHECK(p.slot_of_block[size_t(b)] == want, "plan: slot_of_block[", b, "] = ", p.slot_of_block[size_t(b)],
               " but the block goes through slot ", want);
  }
}

}  // namespace zoff
