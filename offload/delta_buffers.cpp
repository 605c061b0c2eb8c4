// DeltaBuffers: host codes, exception lists and counts for the delta write-back (Note [Delta buffers]).
#include "offload/delta_buffers.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include <c10/core/InferenceMode.h>

#include "kernels/host/zo_host.h"
#include "offload/env_knob.h"
#include "src/optim/device_dispatch.h"
#include "zoff/error.h"
#include "zoff/log.h"

namespace zoff {

// The tuning knobs of Note [Delta buffers] are read with offload/env_knob.h.

DeltaBuffers::DeltaBuffers(StreamDevice& dev, BlockStore& store, const std::vector<int>& blocks, int num_slots,
                           int64_t list_divisor, bool pin)
    : store_(store) {
  const int B = store.num_blocks();
  fp8_ = store.fp8_exact();
  ZOFF_CHECK(store.storage_dtype() != DType::F32 && (!store.has_transfer_copy() || fp8_),
             "delta write-back needs 16-bit masters that travel as they are stored, or exponent-exact fp8 copies");
  if (fp8_) recipes_.resize(size_t(store.num_blocks()));
  split_ = store.split();
  if (split_) split_recipes_.resize(size_t(store.num_blocks()));
  static const char* const kCodeModes[] = {"staged", "mapped", "packed", nullptr};
  // Packed by default (Note [Packed codes]; measured faster at both sites, docs/results.md sessions 13-14).
  const int code_mode = env_choice("ZOFF_DELTA_CODES", kCodeModes, 2);
  staged_ = code_mode != 1;
  packed_ = code_mode == 2;
  const size_t es = size_t(entry_bytes());
  ZOFF_CHECK(list_divisor >= 1 && num_slots >= 1, "DeltaBuffers: list_divisor ", list_divisor, ", slots ", num_slots);
  cap_.assign(size_t(B), 0);
  index_.assign(size_t(B), -1);
  mapped_.resize(size_t(B));
  counts_ = HostBuffer(size_t(B) * kCountBytes, pin, "delta write-back counts");
  host_bytes_ += int64_t(counts_.bytes());
  for (int b : blocks) {
    ZOFF_CHECK(b >= 0 && b < B && index_[size_t(b)] < 0, "DeltaBuffers: bad or repeated block ", b);
    const int64_t n = store.numel(b);
    ZOFF_CHECK(n < int64_t(0xFFFFFFFFll), "delta write-back: block ", b, " has ", n, " elements (list indices are 32-bit)");
    // fp8 entries are twice the size and far rarer (Note [fp8 at the GPU site]): a quarter of the list.
    const int64_t div = fp8_ ? 4 * list_divisor : list_divisor;
    const int64_t cap = std::max<int64_t>(1, (n + div - 1) / div);
    const std::string name = "block " + std::to_string(b);
    index_[size_t(b)] = int(codes_.size());
    codes_.emplace_back(size_t(packed_ ? 8 * k::pack_code_words(n) : (n + 3) / 4), pin, (name + " delta codes").c_str());
    if (packed_) {
      bitmaps_.emplace_back(size_t(4 * std::max<int64_t>(1, k::pack_bitmap_words(n))), pin,
                            (name + " delta code bitmap").c_str());
      host_bytes_ += int64_t(bitmaps_.back().bytes());
    }
    lists_.emplace_back(size_t(cap) * es, pin, (name + " delta list").c_str());
    cap_[size_t(b)] = cap;
    host_bytes_ += int64_t(codes_.back().bytes() + lists_.back().bytes());
    Mapped& m = mapped_[size_t(b)];
    m.codes = static_cast<uint8_t*>(dev.mapped_pointer(codes_.back().data()));
    m.list = dev.mapped_pointer(lists_.back().data());
    // Split masters are no bf16 array: their list overflow goes to ZoStep's work buffer instead.
    m.master = split_ ? nullptr : static_cast<uint16_t*>(dev.mapped_pointer(store.data(b)));
    if (packed_) m.bitmap = static_cast<uint32_t*>(dev.mapped_pointer(bitmaps_.back().data()));
  }
  counters_ = at::zeros({2 * num_slots}, at::TensorOptions().dtype(at::kLong).device(dev.device()));
  if (staged_) {
    // Packed codes read whole words: the staged buffer reaches the last partial word (zero past the codes).
    for (int b : blocks) slot_stride_ = std::max<int64_t>(slot_stride_, 8 * k::pack_code_words(store.numel(b)));
    slot_stride_ = (slot_stride_ + 255) / 256 * 256;  // each slot's codes 256-byte aligned
    slot_codes_ = at::zeros({int64_t(num_slots) * slot_stride_}, at::TensorOptions().dtype(at::kByte).device(dev.device()));
    sparse_lanes_ = 32;  // device memory: a zero code needs no store at all after prepare_slot
  }
  if (packed_) {
    for (int b : blocks) pack_stride_ = std::max<int64_t>(pack_stride_, k::pack_codes_scratch_words(store.numel(b)));
    pack_stride_ = (pack_stride_ + 63) / 64 * 64;
    pack_scratch_ = at::empty({int64_t(num_slots) * pack_stride_}, at::TensorOptions().dtype(at::kInt).device(dev.device()));
  }
  list_staged_ = env_either("ZOFF_DELTA_LIST", "staged", "mapped", list_staged_);
  if (list_staged_) {  // Note [Staged exception list]
    for (int b : blocks) list_stride_ = std::max(list_stride_, cap_[size_t(b)]);
    list_stride_ = (list_stride_ + 31) / 32 * 32;  // 256-byte aligned slots
    slot_lists_ = at::empty({int64_t(num_slots) * list_stride_ * entry_bytes()},
                            at::TensorOptions().dtype(at::kByte).device(dev.device()));
  }
  if (const long t = env_int("ZOFF_DELTA_APPLY_THREADS", 1, 1024, 0)) arena_ = std::make_unique<tbb::task_arena>(int(t));
  skip_apply_ = env_either("ZOFF_DEBUG_SKIP_DELTA_APPLY", "1", "0", false);
  fp8_list_by_range_ = env_either("ZOFF_FP8_LIST", "ranges", "device", fp8_list_by_range_);
  if (skip_apply_)
    log::warn("ZOFF_DEBUG_SKIP_DELTA_APPLY=1: streamed blocks' updates are NOT applied to the host masters; "
              "the training is wrong, use it only to time the step without the host apply");
  sparse_lanes_ = int(env_int("ZOFF_DELTA_SPARSE_LANES", -1, 32, sparse_lanes_));
  note_offload_allocation();
}

k::DeltaOut DeltaBuffers::out(int b, int k) const {
  ZOFF_CHECK(b >= 0 && b < int(index_.size()) && index_[size_t(b)] >= 0, "DeltaBuffers: block ", b, " has no buffers");
  ZOFF_CHECK(k >= 0 && 2 * k < counters_.numel(), "DeltaBuffers: slot ", k);
  ZOFF_CHECK(!fp8_, "DeltaBuffers: fp8 mode hands out Fp8DeltaOut (out_fp8)");
  const Mapped& m = mapped_[size_t(b)];
  k::DeltaOut d{};
  d.codes = staged_ ? slot_codes_.data_ptr<uint8_t>() + int64_t(k) * slot_stride_ : m.codes;
  d.list = list_staged_ ? reinterpret_cast<k::DeltaEntry*>(slot_lists_.data_ptr<uint8_t>()) + int64_t(k) * list_stride_
                       : static_cast<k::DeltaEntry*>(m.list);
  d.capacity = cap_[size_t(b)];
  d.count = reinterpret_cast<unsigned long long*>(counters_.data_ptr<int64_t>() + 2 * k);
  d.stored = packed_ ? nullptr : d.count + 1;  // packed: pack_codes sets the second counter
  d.overflow = m.master;
  d.index_base = 0;
  d.sparse_lanes = sparse_lanes_;
  return d;
}

k::Fp8DeltaOut DeltaBuffers::out_fp8(int b, int k) const {
  ZOFF_CHECK(b >= 0 && b < int(index_.size()) && index_[size_t(b)] >= 0, "DeltaBuffers: block ", b, " has no buffers");
  ZOFF_CHECK(k >= 0 && 2 * k < counters_.numel(), "DeltaBuffers: slot ", k);
  ZOFF_CHECK(fp8_, "DeltaBuffers: out_fp8 outside fp8 mode");
  const Mapped& m = mapped_[size_t(b)];
  k::Fp8DeltaOut d{};
  d.codes = staged_ ? slot_codes_.data_ptr<uint8_t>() + int64_t(k) * slot_stride_ : m.codes;
  d.list = list_staged_ ? reinterpret_cast<k::Fp8Entry*>(slot_lists_.data_ptr<uint8_t>()) + int64_t(k) * list_stride_
                       : static_cast<k::Fp8Entry*>(m.list);
  d.capacity = cap_[size_t(b)];
  d.count = reinterpret_cast<unsigned long long*>(counters_.data_ptr<int64_t>() + 2 * k);
  d.index_base = 0;
  return d;
}

k::Fp8RecomputeRecipe* DeltaBuffers::recipe(int b) {
  ZOFF_CHECK(fp8_ && b >= 0 && b < int(index_.size()) && index_[size_t(b)] >= 0, "DeltaBuffers: no fp8 recipe for block ", b);
  return &recipes_[size_t(b)];
}

k::SplitRecipe* DeltaBuffers::split_recipe(int b) {
  ZOFF_CHECK(split_ && b >= 0 && b < int(index_.size()) && index_[size_t(b)] >= 0, "DeltaBuffers: no split recipe for block ", b);
  return &split_recipes_[size_t(b)];
}

void DeltaBuffers::copy_list(int k, int b) const {
  ZOFF_CHECK(list_staged_ && k >= 0 && 2 * k < counters_.numel(), "DeltaBuffers: no staged list for slot ", k);
  ZOFF_CHECK(b >= 0 && b < int(index_.size()) && index_[size_t(b)] >= 0, "DeltaBuffers: block ", b, " has no buffers");
  const uint8_t* src = slot_lists_.data_ptr<uint8_t>() + int64_t(k) * list_stride_ * entry_bytes();
  const auto* count = reinterpret_cast<const unsigned long long*>(counters_.data_ptr<int64_t>() + 2 * k);
  dispatch_copy_counted(mapped_[size_t(b)].list, src, count, cap_[size_t(b)], entry_bytes(), counters_.device());
}

const void* DeltaBuffers::device_codes(int k) const {
  ZOFF_CHECK(staged_ && k >= 0 && 2 * k < counters_.numel(), "DeltaBuffers: no staged codes for slot ", k);
  return slot_codes_.data_ptr<uint8_t>() + int64_t(k) * slot_stride_;
}

void DeltaBuffers::pack_codes(int k, int b) const {
  ZOFF_CHECK(packed_ && k >= 0 && 2 * k < counters_.numel(), "DeltaBuffers: no packed codes for slot ", k);
  ZOFF_CHECK(b >= 0 && b < int(index_.size()) && index_[size_t(b)] >= 0, "DeltaBuffers: block ", b, " has no buffers");
  const Mapped& m = mapped_[size_t(b)];
  k::PackCodesArgs a{};
  a.codes = slot_codes_.data_ptr<uint8_t>() + int64_t(k) * slot_stride_;
  a.n = store_.numel(b);
  a.bitmap = m.bitmap;
  a.packed = reinterpret_cast<uint64_t*>(m.codes);
  a.packed_count = reinterpret_cast<unsigned long long*>(counters_.data_ptr<int64_t>() + 2 * k + 1);
  a.scratch = reinterpret_cast<uint32_t*>(pack_scratch_.data_ptr<int32_t>() + int64_t(k) * pack_stride_);
  dispatch_pack_codes(a, counters_.device());
}

int64_t DeltaBuffers::d2h_code_bytes(int b) const {
  if (packed_) return 8 * stored(b) + 4 * k::pack_bitmap_words(store_.numel(b));
  return staged_ ? int64_t(code_bytes(b)) : stored(b);
}

void* DeltaBuffers::host_codes(int b) const {
  const int i = index_.at(size_t(b));
  ZOFF_CHECK(i >= 0, "DeltaBuffers: block ", b, " has no buffers");
  return codes_[size_t(i)].data();
}

size_t DeltaBuffers::code_bytes(int b) const { return size_t((store_.numel(b) + 3) / 4); }

void DeltaBuffers::prepare_slot(int k) {
  // Runs on a stream's thread (HostStreamDevice), where the caller's InferenceMode does not reach:
  // an engine built under InferenceMode (bench_precision) has inference-tensor counters.
  c10::InferenceMode guard;
  counters_.narrow(0, 2 * k, 2).zero_();
  if (staged_) slot_codes_.narrow(0, int64_t(k) * slot_stride_, slot_stride_).zero_();
}

const void* DeltaBuffers::device_count(int k) const { return counters_.data_ptr<int64_t>() + 2 * k; }

void* DeltaBuffers::host_count(int b) const {
  return static_cast<unsigned long long*>(counts_.data()) + 2 * b;
}

int64_t DeltaBuffers::stored(int b) const {
  return int64_t(static_cast<const unsigned long long*>(host_count(b))[1]);
}

int64_t DeltaBuffers::apply(int b) {
  const int i = index_.at(size_t(b));
  ZOFF_CHECK(i >= 0, "DeltaBuffers: block ", b, " has no buffers");
  const int64_t count = int64_t(*static_cast<const unsigned long long*>(host_count(b)));
  const int64_t cap = cap_[size_t(b)];
  if (fp8_) return apply_fp8(b, i, count);
  if (split_) return apply_split(b, i, count);
  k::ApplyDeltaArgs a{};
  a.master = static_cast<uint16_t*>(store_.data(b));
  a.codes = static_cast<uint8_t*>(codes_[size_t(i)].data());
  a.n = store_.numel(b);
  a.list = static_cast<const k::DeltaEntry*>(lists_[size_t(i)].data());
  a.entries = std::min(count, cap);
  a.keep_codes = staged_;  // the next Offload's D2H overwrites every code byte
  if (packed_) a.bitmap = static_cast<const uint32_t*>(bitmaps_[size_t(i)].data()), a.packed_count = stored(b);
  if (skip_apply_) {
    if (!staged_) std::memset(a.codes, 0, code_bytes(b));  // mapped codes must be zero at rest
  } else if (arena_) arena_->execute([&] { k::apply_delta_host(a); });
  else k::apply_delta_host(a);
  exceptions_ += count;
  overflowed_ += std::max<int64_t>(0, count - cap);
  return count;
}

int64_t DeltaBuffers::apply_split(int b, int i, int64_t count) {
  const int64_t cap = cap_[size_t(b)];
  if (skip_apply_) {
    if (!staged_) std::memset(codes_[size_t(i)].data(), 0, code_bytes(b));  // mapped codes must be zero at rest
    return count;
  }
  k::ApplySplitDeltaArgs a{};
  a.planes = store_.split_planes(b);
  a.escapes = store_.split_escapes(b);
  a.codes = static_cast<uint8_t*>(codes_[size_t(i)].data());
  a.keep_codes = staged_;
  if (packed_) a.bitmap = static_cast<const uint32_t*>(bitmaps_[size_t(i)].data()), a.packed_count = stored(b);
  a.list = static_cast<const k::DeltaEntry*>(lists_[size_t(i)].data());
  a.count = count;
  a.capacity = cap;
  a.recipe = &split_recipes_[size_t(b)];
  a.scratch = &split_scratch_;
  k::ApplySplitResult r;
  if (arena_) arena_->execute([&] { r = k::apply_split_delta_host(a); });
  else r = k::apply_split_delta_host(a);
  exceptions_ += count;
  overflowed_ += std::max<int64_t>(0, count - cap);
  reencoded_ += r.reencoded ? 1 : 0;
  return count;
}

int64_t DeltaBuffers::apply_fp8(int b, int i, int64_t count) {
  const int64_t cap = cap_[size_t(b)];
  if (skip_apply_) return count;
  const std::vector<int64_t>& rows = store_.row_starts(b);
  const k::Fp8Recompute rc = recipes_[size_t(b)].view();
  k::ApplyFp8DeltaArgs a{};
  a.master = static_cast<uint16_t*>(store_.data(b));
  a.codes = static_cast<const uint8_t*>(codes_[size_t(i)].data());
  a.n = store_.numel(b);
  a.list = static_cast<const k::Fp8Entry*>(lists_[size_t(i)].data());
  a.count = count;
  a.capacity = cap;
  a.recompute = &rc;
  a.list_by_range = fp8_list_by_range_;
  a.scratch = &fp8_scratch_;
  if (packed_) a.bitmap = static_cast<const uint32_t*>(bitmaps_[size_t(i)].data()), a.packed_count = stored(b);
  const std::vector<k::Fp8RowSegment>& segs = store_.row_segments(b);
  a.copy = k::Fp8Copy{static_cast<uint8_t*>(store_.transfer_data(b)), store_.transfer_scales(b), rows.data(),
                      int64_t(rows.size()) - 1, segs.data(), int(segs.size())};
  k::ApplyFp8Result r;
  if (arena_) arena_->execute([&] { r = k::apply_fp8_delta_host(a); });
  else r = k::apply_fp8_delta_host(a);
  exceptions_ += count;
  overflowed_ += std::max<int64_t>(0, count - cap);
  rescaled_rows_ += r.rescaled_rows;
  return count;
}

}  // namespace zoff
