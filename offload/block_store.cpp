// BlockStore: host masters and transfer copies (Note [Block store]).
#include "offload/block_store.h"

#include <cstring>
#include <string>

#include "kernels/fp8_site.h"
#include "kernels/host/zo_host.h"
#include "kernels/zo_kernels.h"
#include "offload/aten_dtype.h"
#include "zoff/error.h"

namespace zoff {

BlockStoreOptions block_store_options(const OffloadPolicy& p) {
  BlockStoreOptions o;
  o.storage_dtype = p.storage_dtype;
  o.transfer = p.transfer;
  o.pin_memory = p.pin_memory;
  o.fp8_exact = p.offload && p.transfer == TransferFormat::FP8 && p.update_site == UpdateSite::Gpu;
  return o;
}

BlockStore::BlockStore(std::vector<BlockDesc> blocks, BlockStoreOptions opts)
    : blocks_(std::move(blocks)), opts_(opts) {
  ZOFF_CHECK(!blocks_.empty(), "BlockStore: no blocks");
  ZOFF_CHECK(!opts_.fp8_exact || (opts_.transfer == TransferFormat::FP8 && opts_.storage_dtype == DType::BF16),
             "BlockStore: exponent-exact fp8 copies need fp8 transfers of bf16 masters");
  const int n = num_blocks();
  row_starts_.resize(size_t(n));
  row_segments_.resize(size_t(n));
  layouts_.reserve(size_t(n));
  bool copies = false;
  for (int b = 0; b < n; ++b) {
    check_block_desc(blocks_[size_t(b)], b);
    layouts_.push_back(transfer_layout(blocks_[size_t(b)], opts_.storage_dtype, opts_.transfer));
    copies = layouts_.back().separate_copy;
    if (layouts_.back().dtype == DType::F8_E4M3) {
      const BlockDesc& d = blocks_[size_t(b)];
      std::vector<int64_t>& rs = row_starts_[size_t(b)];
      int64_t off = 0;
      for (const RowSegment& s : d.segments.empty() ? std::vector<RowSegment>{{1, d.numel}} : d.segments)
        for (int64_t r = 0; r < s.rows; ++r, off += s.cols) rs.push_back(off);
      rs.push_back(off);
      row_segments_[size_t(b)] = k::fp8_row_segments(rs.data(), int64_t(rs.size()) - 1);
    }
  }
  // Note [Host memory check]: anonymous pages are only claimed when touched, so a store larger than
  // the machine would not fail in mmap but be killed by the OOM killer halfway through setup.
  int64_t need = 0;
  for (int b = 0; b < n; ++b)
    need += bytes(b) + (copies ? layouts_[size_t(b)].total_bytes : 0) +
            (split() ? k::split_escape_capacity(numel(b)) * int64_t(sizeof(k::SplitEscape)) : 0);
  const int64_t avail = host_memory_available();
  ZOFF_INPUT_CHECK(avail < 0 || need <= avail, "the offloaded blocks need ", need / 1000000, " MB of host memory (",
                   n, " blocks: ", dtype_name(opts_.storage_dtype), " masters",
                   copies ? std::string(" + ") + dtype_name(transfer_dtype()) + " transfer copies" : std::string(),
                   ") but only ", avail / 1000000, " MB are available (MemAvailable in /proc/meminfo); "
                   "lower policy.storage_dtype, or set policy.transfer_dtype = \"same\" to drop the copies");
  const at::TensorOptions master_opts =
      at::TensorOptions().dtype(offload_scalar_type(opts_.storage_dtype)).device(at::kCPU);
  const at::TensorOptions transfer_opts =
      at::TensorOptions().dtype(offload_scalar_type(transfer_dtype())).device(at::kCPU);
  // One block after another: each HostBuffer already faults its pages in on all cores. Mapping
  // and pinning the blocks concurrently was measured slower (OPT-175B on the x4 host: 81 s for
  // the 324 GiB store and 28 s for the weights, against 88 s for both done serially).
  masters_.reserve(size_t(n));
  master_views_.reserve(size_t(n));
  for (int b = 0; b < n; ++b) {
    const std::string what = "block " + std::to_string(b) + " master";
    masters_.emplace_back(size_t(bytes(b)), opts_.pin_memory, what.c_str());
    ++allocations_;
    // A zero-filled split buffer decodes to zeros, like a zero-filled bf16 one.
    master_views_.push_back(split() ? at::Tensor() : at::from_blob(masters_.back().data(), {numel(b)}, master_opts));
    if (split()) {
      const int64_t cap = k::split_escape_capacity(numel(b));
      escape_bufs_.emplace_back(size_t(cap) * sizeof(k::SplitEscape), opts_.pin_memory,
                                ("block " + std::to_string(b) + " split escapes").c_str());
      ++allocations_;
      escapes_.push_back(k::SplitEscapes{static_cast<k::SplitEscape*>(escape_bufs_.back().data()), 0, cap});
    }
  }
  if (copies) {
    copies_.reserve(size_t(n));
    for (int b = 0; b < n; ++b) {
      const std::string what = "block " + std::to_string(b) + " transfer copy";
      copies_.emplace_back(size_t(layouts_[size_t(b)].total_bytes), opts_.pin_memory, what.c_str());
      ++allocations_;
      transfer_views_.push_back(at::from_blob(copies_.back().data(), {numel(b)}, transfer_opts));
    }
  }
}

int BlockStore::check(int b) const {
  ZOFF_CHECK(b >= 0 && b < int(blocks_.size()), "BlockStore: block ", b, " out of range [0, ",
             blocks_.size(), ")");
  return b;
}

DType BlockStore::transfer_dtype() const { return zoff::transfer_dtype(opts_.storage_dtype, opts_.transfer); }

int64_t BlockStore::bytes(int b) const {
  return split() ? k::split_bytes(numel(b)) : numel(b) * dtype_size(opts_.storage_dtype);
}

const at::Tensor& BlockStore::view(int b) const {
  ZOFF_CHECK(!split(), "BlockStore: block ", b, " is stored split (Note [Split bf16 masters]): it has no bf16 view; "
             "use read_block / write_block");
  return master_views_[check(b)];
}

k::SplitPlanes BlockStore::split_planes(int b) const {
  ZOFF_CHECK(split(), "BlockStore: split_planes of a store that is not split");
  return k::split_planes(masters_[check(b)].data(), numel(b));
}

k::SplitEscapes* BlockStore::split_escapes(int b) {
  ZOFF_CHECK(split(), "BlockStore: split_escapes of a store that is not split");
  return &escapes_[size_t(check(b))];
}

void BlockStore::read_block(int b, at::Tensor out) const {
  ZOFF_CHECK(out.device().is_cpu() && out.is_contiguous() && out.numel() == numel(b), "BlockStore::read_block: block ",
             b, " needs a contiguous CPU tensor of ", numel(b), " elements");
  if (!split()) {
    out.view({-1}).copy_(master_views_[size_t(b)]);
    return;
  }
  const k::SplitEscapes& e = escapes_[size_t(b)];
  if (out.scalar_type() == at::kBFloat16) {
    k::ref::split16_decode(split_planes(b), e.e, e.count, static_cast<uint16_t*>(out.data_ptr()));
    return;
  }
  at::Tensor tmp = at::empty({numel(b)}, at::TensorOptions().dtype(at::kBFloat16));
  k::ref::split16_decode(split_planes(b), e.e, e.count, static_cast<uint16_t*>(tmp.data_ptr()));
  out.view({-1}).copy_(tmp);
}

void BlockStore::write_block(int b, const at::Tensor& in) {
  ZOFF_CHECK(in.device().is_cpu() && in.numel() == numel(b), "BlockStore::write_block: block ", b, " needs a CPU tensor of ",
             numel(b), " elements, got ", in.numel());
  if (!split()) {
    master_views_[size_t(b)].copy_(in.reshape({-1}));
    refresh_transfer_copy(b);
    return;
  }
  const at::Tensor src = in.reshape({-1}).to(at::kBFloat16).contiguous();
  const uint16_t* bits = static_cast<const uint16_t*>(src.data_ptr());
  k::SplitEscapes& e = escapes_[size_t(b)];
  // Encoded in place: a block that does not fit is an error the run cannot go on from anyway.
  const bool ok = k::ref::split16_encode(bits, split_planes(b), &e);
  ZOFF_INPUT_CHECK(ok, "block ", b, ": ", e.count, " of its ", numel(b), " values cannot be stored split (negative "
                   "zeros, or values 2^-12 or more below the largest of their ", k::kSplitGroup,
                   "-element group), more than its escape capacity ", e.capacity,
                   " (Note [Split bf16] in kernels/split16.h); use policy.transfer = \"same\" for these weights");
}

int64_t BlockStore::max_transfer_bytes() const {
  int64_t m = 0;
  for (const TransferLayout& l : layouts_) m = std::max(m, l.total_bytes);
  return m;
}

void* BlockStore::transfer_data(int b) const {
  return copies_.empty() ? masters_[check(b)].data() : copies_[check(b)].data();
}

const at::Tensor& BlockStore::transfer_view(int b) const {
  return copies_.empty() ? master_views_[check(b)] : transfer_views_[check(b)];
}

float* BlockStore::transfer_scales(int b) const {
  const TransferLayout& l = layouts_[check(b)];
  if (l.dtype != DType::F8_E4M3) return nullptr;
  return reinterpret_cast<float*>(static_cast<char*>(copies_[size_t(b)].data()) + l.scales_offset);
}

void BlockStore::refresh_transfer_copy(int b) {
  if (copies_.empty()) return;
  const TransferLayout& l = layouts_[check(b)];
  const BlockDesc& d = blocks_[size_t(b)];
  const k::Elem src_elem = offload_elem(opts_.storage_dtype);
  const char* src = static_cast<const char*>(masters_[size_t(b)].data());
  if (l.dtype != DType::F8_E4M3) {
    // A perturbation with no terms is a plain round-to-nearest-even cast (kernels/zo_kernels.h).
    k::PerturbArgs a{};
    a.out = copies_[size_t(b)].data();
    a.out_elem = offload_elem(l.dtype);
    a.src = src;
    a.src_elem = src_elem;
    a.row_scales = nullptr;
    a.row_len = d.numel;
    a.n = d.numel;
    a.pid = 0;
    a.dist = k::Dist::Gaussian;
    a.terms = nullptr;
    a.nterms = 0;
    k::zo_perturb_host(a);
    return;
  }
  uint8_t* dst = static_cast<uint8_t*>(copies_[size_t(b)].data());
  float* scales = transfer_scales(b);
  const int64_t esize = dtype_size(opts_.storage_dtype);
  std::vector<RowSegment> one;
  const std::vector<RowSegment>& segs = d.segments.empty() ? (one = {{1, d.numel}}) : d.segments;
  int64_t off = 0, row = 0;
  for (const RowSegment& s : segs) {
    if (opts_.fp8_exact) {
      k::ref::pack_fp8_exact(static_cast<const uint16_t*>(static_cast<const void*>(src)) + off, s.rows, s.cols, dst + off,
                             scales + row);
      off += s.rows * s.cols;
      row += s.rows;
      continue;
    }
    k::PackFp8Args a{};
    a.src = src + off * esize;
    a.src_elem = src_elem;
    a.rows = s.rows;
    a.cols = s.cols;
    a.dst = dst + off;
    a.scales = scales + row;
    k::pack_fp8_rows_host(a);
    off += s.rows * s.cols;
    row += s.rows;
  }
}

bool BlockStore::all_pinned() const {
  for (const HostBuffer& h : masters_)
    if (!h.pinned()) return false;
  for (const HostBuffer& h : copies_)
    if (!h.pinned()) return false;
  return true;
}

int64_t BlockStore::host_bytes() const {
  int64_t s = 0;
  for (const HostBuffer& h : masters_) s += int64_t(h.bytes());
  for (const HostBuffer& h : copies_) s += int64_t(h.bytes());
  return s;
}

}  // namespace zoff
