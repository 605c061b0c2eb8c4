// BlockStore (buffers, views, transfer copies), transfer layouts, SlotRing and ResidentBlocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/zo_kernels.h"
#include "offload/block_store.h"
#include "offload/host_memory.h"
#include "offload/host_stream_device.h"
#include "offload/resident_blocks.h"
#include "offload/slot_ring.h"
#include "offload_test_util.h"
#include "zoff/error.h"

namespace zoff {
namespace {

TEST(TransferLayout, BytesPerFormat) {
  BlockDesc d;
  d.numel = 1000;
  d.segments = {{10, 90}, {1, 100}};
  check_block_desc(d, 0);
  EXPECT_EQ(total_rows(d), 11);
  TransferLayout same = transfer_layout(d, DType::F32, TransferFormat::Same);
  EXPECT_EQ(same.total_bytes, 4000);
  EXPECT_FALSE(same.separate_copy);
  TransferLayout bf = transfer_layout(d, DType::F32, TransferFormat::BF16);
  EXPECT_EQ(bf.total_bytes, 2000);
  EXPECT_TRUE(bf.separate_copy);
  EXPECT_FALSE(transfer_layout(d, DType::BF16, TransferFormat::BF16).separate_copy);
  TransferLayout f8 = transfer_layout(d, DType::BF16, TransferFormat::FP8);
  EXPECT_EQ(f8.scales_offset, 1008);  // 1000 rounded up to 16
  EXPECT_EQ(f8.rows, 11);
  EXPECT_EQ(f8.total_bytes, 1008 + 44);
  BlockDesc bad = d;
  bad.segments = {{10, 90}};
  EXPECT_THROW(check_block_desc(bad, 3), Error);
  bad.numel = 0;
  EXPECT_THROW(check_block_desc(bad, 3), Error);
}

TEST(HostBuffer, ZeroFilledPageAlignedAndMovable) {
  // Note [Pinning at scale]: every method hands out zeros, since the engine writes weights straight
  // in. CPU builds fall back to pageable memory for the pinned methods.
  for (HostAlloc how : {HostAlloc::Pageable, HostAlloc::Register, HostAlloc::CudaAlloc})
    for (size_t bytes : {size_t(1), size_t(4097), (size_t(5) << 20) + 3}) {
      HostBuffer h(bytes, how, "test buffer");
      ASSERT_NE(h.data(), nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(h.data()) % 4096, 0u);
      const unsigned char* c = static_cast<const unsigned char*>(h.data());
      size_t nonzero = 0;
      for (size_t i = 0; i < bytes; ++i) nonzero += c[i] != 0;
      EXPECT_EQ(nonzero, 0u) << bytes;
      std::memset(h.data(), 0xab, bytes);
      HostBuffer moved = std::move(h);
      EXPECT_EQ(h.data(), nullptr);
      EXPECT_EQ(static_cast<const unsigned char*>(moved.data())[bytes - 1], 0xab);
      EXPECT_EQ(moved.bytes(), bytes);
    }
  EXPECT_THROW(HostBuffer(0, HostAlloc::Pageable, "empty"), Error);
}

TEST(BlockStore, MoreThanTheMachineHasIsAnInputErrorBeforeAnyAllocation) {
  // Note [Host memory check]: 2 x 10^13 bf16 elements (40 TB) with an fp8 copy.
  ASSERT_GT(host_memory_available(), 0);
  std::vector<BlockDesc> blocks(2);
  for (BlockDesc& d : blocks) {
    d.numel = 10'000'000'000'000;
    d.segments = {{100'000, 100'000'000}};
  }
  const int64_t before = offload_allocations();
  try {
    BlockStore s(blocks, {DType::BF16, TransferFormat::FP8, true});
    FAIL() << "no error";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("MemAvailable"), std::string::npos) << m;
    EXPECT_NE(m.find("policy.transfer_dtype"), std::string::npos) << m;
    EXPECT_NE(m.find("F8_E4M3 transfer copies"), std::string::npos) << m;
  }
  EXPECT_EQ(offload_allocations(), before);
}

TEST(BlockStore, AllocatesOnceWithViews) {
  const int64_t before = offload_allocations();
  BlockStore s(test::make_blocks(4), {DType::F32, TransferFormat::Same, true});
  EXPECT_EQ(offload_allocations() - before, 4);
  EXPECT_EQ(s.allocation_count(), 4);
  EXPECT_FALSE(s.has_transfer_copy());
#ifndef ZOFF_WITH_CUDA
  EXPECT_FALSE(s.all_pinned());  // CPU builds: plain aligned memory
#endif
  for (int b = 0; b < 4; ++b) {
    // Page-aligned when pageable; cudaHostAlloc only promises 256-byte (seen: 512) alignment,
    // which is what 16-byte vector loads and DMA need.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data(b)) % (s.all_pinned() ? 256 : 4096), 0u);
    EXPECT_EQ(s.view(b).numel(), s.numel(b));
    EXPECT_EQ(s.view(b).scalar_type(), at::kFloat);
    EXPECT_EQ(s.view(b).data_ptr(), s.data(b));
    EXPECT_EQ(s.transfer_data(b), s.data(b));
    EXPECT_EQ(s.bytes(b), s.numel(b) * 4);
    EXPECT_EQ(s.transfer_bytes(b), s.bytes(b));
  }
  int64_t want = 0;
  for (int b = 0; b < 4; ++b) want += (s.bytes(b) + 4095) / 4096 * 4096;
  EXPECT_LE(s.host_bytes(), want);
  EXPECT_THROW(s.data(4), Error);
}

TEST(BlockStore, Bf16AndF16CopiesAreRoundToNearestCasts) {
  for (TransferFormat f : {TransferFormat::BF16, TransferFormat::F16}) {
    const int64_t before = offload_allocations();
    BlockStore s(test::make_blocks(3), {DType::F32, f, false});
    EXPECT_EQ(offload_allocations() - before, 6);
    EXPECT_TRUE(s.has_transfer_copy());
    test::fill_initial(s);
    for (int b = 0; b < 3; ++b) {
      s.view(b).mul_(1.0f / 3.0f);  // values that need rounding
      s.refresh_transfer_copy(b);
      const at::ScalarType st = f == TransferFormat::BF16 ? at::kBFloat16 : at::kHalf;
      at::Tensor want = s.view(b).to(st).contiguous();
      EXPECT_EQ(s.transfer_view(b).scalar_type(), st);
      EXPECT_EQ(s.transfer_bytes(b), s.numel(b) * 2);
      EXPECT_EQ(std::memcmp(s.transfer_data(b), want.data_ptr(), size_t(s.numel(b)) * 2), 0) << "block " << b;
    }
  }
}

TEST(BlockStore, Fp8CopyIsRowPackedWithScalesAfterPayload) {
  BlockStore s(test::make_blocks(2), {DType::F32, TransferFormat::FP8, false});
  test::fill_initial(s);
  for (int b = 0; b < 2; ++b) {
    s.view(b).sub_(float(b * 4096) + 20.f);  // mixed signs
    s.refresh_transfer_copy(b);
    const BlockDesc& d = s.desc(b);
    const TransferLayout& l = s.layout(b);
    EXPECT_EQ(l.total_bytes, (d.numel + 15) / 16 * 16 + total_rows(d) * 4);
    EXPECT_EQ(reinterpret_cast<char*>(s.transfer_scales(b)) - static_cast<char*>(s.transfer_data(b)), l.scales_offset);
    // Same bytes and scales as packing each segment directly.
    std::vector<uint8_t> q(size_t(d.numel));
    std::vector<float> sc(size_t(total_rows(d)));
    int64_t off = 0, row = 0;
    const float* x = static_cast<const float*>(s.data(b));
    for (const RowSegment& seg : d.segments) {
      k::PackFp8Args a{x + off, k::Elem::F32, seg.rows, seg.cols, q.data() + off, sc.data() + row};
      k::ref::pack_fp8_rows(a);
      off += seg.rows * seg.cols;
      row += seg.rows;
    }
    EXPECT_EQ(std::memcmp(q.data(), s.transfer_data(b), q.size()), 0);
    EXPECT_EQ(std::memcmp(sc.data(), s.transfer_scales(b), sc.size() * 4), 0);
    // And dequantises to within e4m3's precision (3 mantissa bits) of the master.
    const uint8_t* qq = static_cast<const uint8_t*>(s.transfer_data(b));
    off = 0;
    row = 0;
    int64_t far = 0;
    for (const RowSegment& seg : d.segments)
      for (int64_t r = 0; r < seg.rows; ++r, ++row)
        for (int64_t c = 0; c < seg.cols; ++c, ++off) {
          const float deq = k::ref::e4m3_to_float(qq[off]) * s.transfer_scales(b)[row];
          far += std::fabs(deq - x[off]) > std::fabs(x[off]) / 16.f + s.transfer_scales(b)[row] / 256.f;
        }
    EXPECT_EQ(far, 0);
  }
}

TEST(SlotRing, OneArenaOfAlignedSlots) {
  HostStreamDevice dev;
  const int64_t before = offload_allocations();
  SlotRing ring(dev, 3, 1000);
  EXPECT_EQ(offload_allocations() - before, 1);
  EXPECT_EQ(ring.stride(), 1024);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(reinterpret_cast<uintptr_t>(ring.data(k)) % 256, reinterpret_cast<uintptr_t>(ring.data(0)) % 256);
  EXPECT_EQ(static_cast<char*>(ring.data(2)) - static_cast<char*>(ring.data(0)), 2048);
  at::Tensor v = ring.view(1, DType::BF16, 500);
  EXPECT_EQ(v.scalar_type(), at::kBFloat16);
  EXPECT_EQ(v.data_ptr(), ring.data(1));
  EXPECT_THROW(ring.view(1, DType::F32, 251), Error);
  EXPECT_THROW(ring.data(3), Error);
  EXPECT_THROW(SlotRing(dev, 1, 100), Error);
}

TEST(ResidentBlocks, LoadAndStoreRoundTrip) {
  HostStreamDevice dev;
  BlockStore s(test::make_blocks(4), {DType::F32, TransferFormat::Same, false});
  test::fill_initial(s);
  const int64_t before = offload_allocations();
  ResidentBlocks r(dev, s, {true, false, true, false});
  EXPECT_EQ(offload_allocations() - before, 1);
  EXPECT_EQ(r.count(), 2);
  EXPECT_THROW(r.buffer(1), Error);
  r.load_from_host();
  EXPECT_NE(r.buffer(2).data_ptr(), s.data(2));
  EXPECT_TRUE(at::equal(r.buffer(2), s.view(2)));
  r.buffer(0).add_(2.0);
  r.store_to_host();
  EXPECT_EQ(test::mismatches(s, 0, 2.f), 0);
  EXPECT_EQ(test::mismatches(s, 2, 0.f), 0);
  EXPECT_THROW(ResidentBlocks(dev, s, {true}), Error);
}

}  // namespace
}  // namespace zoff
