// kernels/host (SIMD + oneTBB) against kernels/ref bit for bit, on every instruction set this CPU has.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/host/zo_host.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

// Scalar always (the portable build of the same tile driver), plus every SIMD path the CPU runs.
std::vector<HostIsa> isas() {
  std::vector<HostIsa> v{HostIsa::Scalar};
  for (HostIsa i : {HostIsa::Avx2, HostIsa::Avx512})
    if (host_isa_supported(i)) v.push_back(i);
  return v;
}

constexpr uint8_t kPoison = 0xA5;
constexpr int64_t kGuard = 64;  // poisoned bytes on each side of every output

// Values stored as `e`: mostly N(0, 1), with zeros of both signs, subnormals, values near the f16
// and f32 limits, infinities and NaNs sprinkled in.
std::vector<uint8_t> values(Elem e, int64_t n, uint32_t seed, bool specials = true) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const float inf = std::numeric_limits<float>::infinity();
  const float special[] = {0.0f, -0.0f, 1e-40f, -3e-39f, 65500.0f, -65519.0f, 3e38f, inf, -inf,
                           std::numeric_limits<float>::quiet_NaN(), 6e-8f, -2e-5f, 448.0f, 1e-3f};
  const int es = elem_size(e);
  std::vector<uint8_t> buf(size_t(n * es));
  for (int64_t i = 0; i < n; ++i) {
    float f = nd(rng);
    if (specials && rng() % 61 == 0) f = special[rng() % (sizeof special / sizeof special[0])];
    const uint32_t b = e == Elem::F32    ? f32_bits(f)
                       : e == Elem::F16  ? ref::float_to_f16_rne(f)
                       : e == Elem::BF16 ? ref::float_to_bf16_rne(f)
                                         : ref::float_to_e4m3_rne(f * 50.0f);
    std::memcpy(buf.data() + i * es, &b, size_t(es));
  }
  return buf;
}

// A buffer holding `data` at byte offset kGuard + shift * elem size, poison around it.
struct Guarded {
  std::vector<uint8_t> bytes;
  size_t off;
  Guarded(const std::vector<uint8_t>& data, int es, int shift)
      : bytes(data.size() + size_t(2 * kGuard + shift * es), kPoison), off(size_t(kGuard + shift * es)) {
    for (size_t i = 0; i < data.size(); ++i) bytes[off + i] = data[i];
  }
  void* p() { return bytes.data() + off; }
};

// First differing byte of two same-sized buffers, or -1.
int64_t first_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return 0;
  if (std::memcmp(a.data(), b.data(), a.size()) == 0) return -1;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return int64_t(i);
  return -1;
}

std::vector<ZTerm> terms_of(int n, uint64_t base) {
  // Ordinary step sizes, both signed zeros, and one coefficient large enough to overflow 16-bit.
  const float c[] = {1e-3f, -2.5e-3f, 0.0f, 0.37f, -0.0f, 3e4f, -7e-6f, 1.0f, -1e-4f};
  std::vector<ZTerm> t;
  for (int k = 0; k < n; ++k) t.push_back({step_seed(base, 5, uint64_t(k)), c[k % 9] * (1.0f + 0.01f * float(k))});
  return t;
}

const char* name(Elem e) { return e == Elem::F32 ? "f32" : e == Elem::F16 ? "f16" : e == Elem::BF16 ? "bf16" : "fp8"; }

const uint64_t kPid = param_id("model.decoder.layers.3.fc1.weight");

void check_update(HostIsa isa, Elem e, Dist d, int nterms, float decay, uint64_t sr, int64_t first, int64_t n, int shift) {
  SCOPED_TRACE(testing::Message() << host_isa_name(isa) << " " << name(e) << " dist " << int(d) << " nterms " << nterms
                                  << " decay " << decay << " sr " << sr << " first " << first << " n " << n
                                  << " shift " << shift);
  const std::vector<uint8_t> init = values(e, n, uint32_t(n * 31 + nterms));
  const std::vector<ZTerm> terms = terms_of(nterms, 11);
  Guarded want(init, elem_size(e), shift), got(init, elem_size(e), shift);
  UpdateArgs a{want.p(), e, n, kPid, d, terms.data(), nterms, decay, sr};
  a.first = first;
  ref::zo_update(a);
  a.theta = got.p();
  zo_update_host(a, isa);
  ASSERT_EQ(first_diff(want.bytes, got.bytes), -1);
}

TEST(ZoUpdateHost, MatchesRefForEveryVariant) {
  for (HostIsa isa : isas())
    for (int64_t n : {1, 7, 4097})
      for (Elem e : {Elem::F32, Elem::F16, Elem::BF16})
        for (Dist d : {Dist::Gaussian, Dist::Rademacher})
          for (uint64_t sr : {uint64_t(0), uint64_t(99)})
            for (int nterms : {0, 1, 8, 9, 17})
              for (float decay : {0.0f, 0.01f})
                for (int64_t first : {int64_t(0), int64_t(1029)}) check_update(isa, e, d, nterms, decay, sr, first, n, 1);
}

TEST(ZoUpdateHost, MatchesRefOnAMillionAndThree) {
  for (HostIsa isa : isas())
    for (Elem e : {Elem::F32, Elem::F16, Elem::BF16})
      for (Dist d : {Dist::Gaussian, Dist::Rademacher})
        for (uint64_t sr : {uint64_t(0), uint64_t(5)}) {
          if (e == Elem::F32 && sr) continue;
          check_update(isa, e, d, 2, 0.001f, sr, 77, 1000003, 3);
        }
}

TEST(ZoUpdateHost, MatchesRefOnTenMillionAndThree) {
  const HostIsa isa = isas().back();
  check_update(isa, Elem::F32, Dist::Gaussian, 1, 0.0f, 0, 0, 10000003, 0);
}

// Element indices where the Philox counter's low word wraps inside a SIMD batch (Gaussian blocks at
// 2^34, SR blocks at 2^35, Rademacher blocks at 2^39), and every pointer shift modulo 64 bytes.
TEST(ZoUpdateHost, CounterCarriesAndMisalignedStarts) {
  for (HostIsa isa : isas()) {
    for (int64_t first : {(int64_t(1) << 34) - 333, (int64_t(1) << 35) - 333, (int64_t(1) << 39) - 4000})
      for (Dist d : {Dist::Gaussian, Dist::Rademacher}) check_update(isa, Elem::BF16, d, 3, 0.0f, 42, first, 5000, 0);
    for (int shift = 0; shift < 16; ++shift) {
      check_update(isa, Elem::F32, Dist::Gaussian, 1, 0.0f, 0, shift * 3, 2500, shift);
      check_update(isa, Elem::F16, Dist::Rademacher, 2, 0.0f, 8, shift * 5, 2500, shift);
    }
  }
}

void check_perturb(HostIsa isa, Elem out, Elem src, Dist d, int nterms, bool mirror, int64_t first, int64_t n,
                   int64_t row_len) {
  SCOPED_TRACE(testing::Message() << host_isa_name(isa) << " out " << name(out) << " src " << name(src) << " dist "
                                  << int(d) << " nterms " << nterms << " mirror " << mirror << " first " << first
                                  << " n " << n << " row_len " << row_len);
  const std::vector<uint8_t> s = values(src, n, uint32_t(n + 3 * nterms));
  std::vector<float> scales(size_t(n / row_len + 1));
  for (size_t r = 0; r < scales.size(); ++r) scales[r] = 0.01f * float(r % 7 + 1);
  const std::vector<ZTerm> terms = terms_of(nterms, 23);
  const std::vector<uint8_t> blank(size_t(n * elem_size(out)), kPoison);
  Guarded want(blank, elem_size(out), 1), want2(blank, elem_size(out), 1);
  Guarded got(blank, elem_size(out), 1), got2(blank, elem_size(out), 1);
  PerturbArgs a{want.p(), out, s.data(), src, scales.data(), row_len, n, kPid, d, terms.data(), nterms};
  a.first = first;
  a.out2 = mirror ? want2.p() : nullptr;
  ref::zo_perturb(a);
  a.out = got.p();
  a.out2 = mirror ? got2.p() : nullptr;
  zo_perturb_host(a, isa);
  ASSERT_EQ(first_diff(want.bytes, got.bytes), -1);
  ASSERT_EQ(first_diff(want2.bytes, got2.bytes), -1);
}

TEST(ZoPerturbHost, MatchesRefForEveryDtypePairAndMirror) {
  for (HostIsa isa : isas())
    for (int64_t n : {1, 7, 4097})
      for (Elem out : {Elem::F32, Elem::F16, Elem::BF16})
        for (Elem src : {Elem::F32, Elem::F16, Elem::BF16, Elem::F8E4M3})
          for (Dist d : {Dist::Gaussian, Dist::Rademacher})
            for (int nterms : {0, 1, 9})
              for (bool mirror : {false, true}) check_perturb(isa, out, src, d, nterms, mirror, 5, n, 3);
}

TEST(ZoPerturbHost, MatchesRefOnAMillionAndThree) {
  for (HostIsa isa : isas()) {
    check_perturb(isa, Elem::BF16, Elem::F32, Dist::Gaussian, 2, true, 0, 1000003, 4096);
    check_perturb(isa, Elem::F16, Elem::F8E4M3, Dist::Rademacher, 1, false, 1000, 1000003, 1000);
    check_perturb(isa, Elem::F32, Elem::BF16, Dist::Gaussian, 0, false, 3, 1000003, 7);
  }
}

void check_pack(HostIsa isa, Elem e, int64_t rows, int64_t cols, int shift) {
  SCOPED_TRACE(testing::Message() << host_isa_name(isa) << " " << name(e) << " rows " << rows << " cols " << cols
                                  << " shift " << shift);
  std::vector<uint8_t> src = values(e, rows * cols, uint32_t(rows * 7 + cols));
  if (rows > 2) std::memset(src.data() + cols * elem_size(e), 0, size_t(cols * elem_size(e)));  // an all-zero row
  Guarded in(src, elem_size(e), shift);
  const std::vector<uint8_t> blank(size_t(rows * cols), kPoison), blank_s(size_t(rows * 4), kPoison);
  Guarded want(blank, 1, shift), got(blank, 1, shift), want_s(blank_s, 4, 0), got_s(blank_s, 4, 0);
  PackFp8Args a{in.p(), e, rows, cols, static_cast<uint8_t*>(want.p()), static_cast<float*>(want_s.p())};
  ref::pack_fp8_rows(a);
  a.dst = static_cast<uint8_t*>(got.p());
  a.scales = static_cast<float*>(got_s.p());
  pack_fp8_rows_host(a, isa);
  ASSERT_EQ(first_diff(want_s.bytes, got_s.bytes), -1);
  ASSERT_EQ(first_diff(want.bytes, got.bytes), -1);
}

TEST(PackFp8Host, MatchesRef) {
  for (HostIsa isa : isas())
    for (Elem e : {Elem::F32, Elem::F16, Elem::BF16}) {
      for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {5, 4097}, {4, 31}, {2, 0}})
        for (int shift : {0, 1, 3}) check_pack(isa, e, rows, cols, shift);
      check_pack(isa, e, 250, 4003, 1);  // 10^6 + 750 elements
    }
}

// Every e4m3 rounding case: all 2^32 would be slow, so every f32 exponent with many mantissas.
TEST(PackFp8Host, EveryExponentRoundsLikeRef) {
  std::vector<float> v;
  std::mt19937 rng(3);
  for (uint32_t ex = 0; ex < 256; ++ex)
    for (int k = 0; k < 64; ++k) v.push_back(bits_f32((ex << 23) | (rng() & 0x7FFFFFu) | (k & 1 ? 0x80000000u : 0)));
  // One row per exponent: the row max sets a scale, the rest fall in every range below it.
  std::vector<uint8_t> src(v.size() * 4);
  std::memcpy(src.data(), v.data(), src.size());
  for (HostIsa isa : isas()) {
    std::vector<uint8_t> want(v.size()), got(v.size());
    std::vector<float> ws(256), gs(256);
    ref::pack_fp8_rows({src.data(), Elem::F32, 256, 64, want.data(), ws.data()});
    pack_fp8_rows_host({src.data(), Elem::F32, 256, 64, got.data(), gs.data()}, isa);
    EXPECT_EQ(first_diff(want, got), -1) << host_isa_name(isa);
    EXPECT_EQ(std::memcmp(ws.data(), gs.data(), 256 * 4), 0) << host_isa_name(isa);
    // One row for all of them: scale from the largest finite value, so tiny ones hit subnormal codes.
    ref::pack_fp8_rows({src.data(), Elem::F32, 1, int64_t(v.size()), want.data(), ws.data()});
    pack_fp8_rows_host({src.data(), Elem::F32, 1, int64_t(v.size()), got.data(), gs.data()}, isa);
    EXPECT_EQ(first_diff(want, got), -1) << host_isa_name(isa);
  }
}

TEST(FillZHost, MatchesRef) {
  for (HostIsa isa : isas())
    for (Dist d : {Dist::Gaussian, Dist::Rademacher})
      for (int64_t n : {1, 7, 4097, 1000003}) {
        std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), -7.0f);
        ref::fill_z(want.data(), n, kPid, 1234, d);
        fill_z_host(got.data(), n, kPid, 1234, d, isa);
        ASSERT_EQ(std::memcmp(want.data(), got.data(), size_t(n) * 4), 0) << host_isa_name(isa) << " n " << n;
      }
}

TEST(HostKernels, RejectBadArgumentsLikeRef) {
  float x[4] = {};
  ZTerm t{1, 1.0f};
  for (HostIsa isa : isas()) {
    EXPECT_THROW(zo_update_host({x, Elem::F32, 4, 0, Dist::Gaussian, &t, -1, 0.0f, 0}, isa), zoff::Error);
    EXPECT_THROW(zo_update_host({x, Elem::F8E4M3, 4, 0, Dist::Gaussian, &t, 1, 0.0f, 0}, isa), zoff::Error);
    EXPECT_THROW(zo_perturb_host({x, Elem::F32, x, Elem::F8E4M3, nullptr, 4, 4, 0, Dist::Gaussian, &t, 1}, isa),
                 zoff::Error);
    EXPECT_THROW(pack_fp8_rows_host({x, Elem::F8E4M3, 1, 4, nullptr, x}, isa), zoff::Error);
    EXPECT_THROW(fill_z_host(nullptr, 4, 0, 0, Dist::Gaussian, isa), zoff::Error);
  }
  EXPECT_TRUE(host_isa_supported(HostIsa::Scalar));
  EXPECT_TRUE(host_isa_supported(host_isa_auto()));
  EXPECT_NE(host_isa_auto(), HostIsa::Auto);
}

}  // namespace
}  // namespace zoff::k
