// fp8 at the GPU site on the CPU: exponent-exact packing, the update's decisions, and update + apply against zo_update.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/fp8_site.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

uint16_t bf16(float f) { return f32_to_bf16_bits_rne(f); }
float f(uint16_t h) { return bf16_bits_to_f32(h); }

TEST(Fp8Site, ExactPackKeepsTheBinade) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> ex(-12, 8);
  int rounded_down = 0;
  for (int it = 0; it < 200000; ++it) {
    const float v = std::ldexp(mant(rng), ex(rng)) * (it % 2 ? -1.0f : 1.0f);
    if (std::fabs(v) >= 512.0f) continue;
    const uint8_t q = e4m3_exact_bits(v);
    const float d = e4m3_bits_to_f32(q);
    ASSERT_EQ(std::signbit(d), std::signbit(v)) << v;
    if (std::fabs(v) >= 0.015625f) {  // normal: same binade, error <= 2^-4 relative
      int ev, ed;
      std::frexp(v, &ev);
      std::frexp(d, &ed);
      ASSERT_EQ(ev, ed) << "v " << v << " q " << int(q);
      // 2^-4 relative up to 448 (what packing produces); above, only the saturated top binade
      ASSERT_LE(std::fabs(d - v), std::ldexp(std::fabs(v), std::fabs(v) <= 448.0f ? -4 : -3) * 1.0001f) << v;
      if (q != f32_to_e4m3_bits_rne(v)) {
        ++rounded_down;  // only where round-to-nearest would leave the binade (or saturate)
        const uint8_t rne = f32_to_e4m3_bits_rne(v);
        ASSERT_TRUE(((rne >> 3) & 15) != ((q >> 3) & 15) || std::fabs(v) > 448.0f) << v;
      }
    } else {
      ASSERT_EQ((q >> 3) & 15, 0) << "a subnormal-range value must stay subnormal: " << v;
    }
  }
  EXPECT_GT(rounded_down, 0);
  EXPECT_EQ(e4m3_exact_bits(600.0f) & 0x7F, 0x7F);
  EXPECT_EQ(e4m3_exact_bits(-511.0f), 0xFE);  // 448, top binade keeps mantissa 110
  // Scales: powers of two with amax / scale in (224, 448].
  for (float amax : {1e-3f, 0.02f, 0.5f, 448.0f, 449.0f, 3.0e5f}) {
    const int k = fp8_exact_scale_exp(amax);
    EXPECT_LE(std::ldexp(double(amax), -k), 448.0);
    EXPECT_GT(std::ldexp(double(amax), -k), 224.0);
  }
}

// Every decision the GPU makes is the one stochastic rounding makes with theta in hand.
// fp8_site_code as first written, with early returns: the oracle for the select form.
uint32_t fp8_site_code_branching(uint32_t q, int k, float acc, uint32_t r16) {
  const uint32_t au = f32_bits(acc);
  if ((au & 0x7FFFFFFFu) == 0) return kDeltaSame;
  const uint32_t E = (q >> 3) & 15u, M = q & 7u;
  if (E == 0 || (q & 0x7Fu) == 0x7Fu) return kDeltaException;
  const int e = int(E) - 7 + k;
  if (e < -100 || e > 100 || (au & 0x7F800000u) == 0x7F800000u) return kDeltaException;
  const float t = mul_rn(bits_f32(au & 0x7FFFFFFFu), pow2f(23 - e));
  if (!(t < 65535.5f)) return kDeltaException;
  const uint32_t m = uint32_t(rintf(t));
  if (((au ^ (q << 24)) & 0x80000000u) == 0) return r16 < m ? kDeltaUp : kDeltaSame;
  const bool dn = m > 0 && r16 >= 65536u - m;
  if (M != 0) return dn ? kDeltaDown : kDeltaSame;
  const float t2 = mul_rn(t, 2.0f);
  if (!(t2 < 65535.5f)) return kDeltaException;
  const uint32_t m2 = uint32_t(rintf(t2));
  const bool df = m2 > 0 && r16 >= 65536u - m2;
  return dn == df ? (dn ? kDeltaDown : kDeltaSame) : kDeltaException;
}

TEST(Fp8Site, SelectCodeEqualsBranchingCode) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<uint32_t> u32;
  std::uniform_int_distribution<int> kd(-140, 140);
  std::uniform_real_distribution<float> lg(-12.0f, 4.0f);
  const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-45f, -1e-45f, 65535.5f, 1.0f};
  int64_t seen[4] = {0, 0, 0, 0};
  for (int it = 0; it < 3000000; ++it) {
    const uint32_t q = u32(rng) & 0xFFu, r16 = it % 11 == 0 ? (it % 2 ? 0u : 65535u) : u32(rng) & 0xFFFFu;
    const int k = it % 3 == 0 ? kd(rng) : int((q >> 3) & 15u) % 4 - 20;
    float acc = (u32(rng) & 1 ? 1.0f : -1.0f) * std::pow(10.0f, lg(rng));
    if (it % 97 == 0) acc = specials[(it / 97) % 9];
    if (it % 5 == 0) acc = std::ldexp(std::round(std::ldexp(std::fabs(acc), 10)) + 0.5f, -10) * (acc < 0 ? -1.0f : 1.0f);
    const uint32_t want = fp8_site_code_branching(q, k, acc, r16), got = fp8_site_code(q, k, acc, r16);
    ASSERT_EQ(got, want) << "q " << q << " k " << k << " acc " << acc << " r16 " << r16;
    ++seen[want];
  }
  for (int c = 0; c < 4; ++c) EXPECT_GT(seen[c], 10000) << "code " << c << " barely exercised";
}

TEST(Fp8Site, CodesAgreeWithStochasticRounding) {
  std::mt19937 rng(2);
  std::uniform_int_distribution<uint32_t> u16(0, 65535), mbits(0, 127), bias(110, 128);
  std::uniform_int_distribution<int> qexp(-6, 8);
  std::uniform_real_distribution<float> lg(-6.0f, 0.3f);
  int64_t decided = 0, exceptions = 0, changed = 0;
  for (int it = 0; it < 2000000; ++it) {
    // theta: random sign and exponent; mantissa often 0 or 127 (the binade edges)
    const uint32_t m = it % 5 == 0 ? 0u : it % 7 == 0 ? 127u : mbits(rng);
    const uint16_t th = uint16_t(((it & 1) << 15) | (bias(rng) << 7) | m);
    const float ulp = std::ldexp(1.0f, int((th >> 7) & 0xFF) - 127 - 7);
    const float acc = (it % 3 ? 1.0f : -1.0f) * ulp * std::pow(10.0f, lg(rng));
    const int k = int((th >> 7) & 0xFF) - 127 - qexp(rng);  // scale 2^k: theta / 2^k normal in e4m3
    const uint8_t q = e4m3_exact_bits(f(th) * std::ldexp(1.0f, -k));
    const uint32_t r16 = u16(rng);
    const uint32_t c = fp8_site_code(q, k, acc, r16);
    const uint16_t want = f32_to_bf16_bits_sr(f(th) + acc, r16);
    if (c == kDeltaException) {
      ++exceptions;
      continue;
    }
    ++decided;
    changed += want != th;
    ASSERT_EQ(c, delta_code(th, want)) << "theta " << std::hex << th << std::dec << " acc " << acc << " k " << k
                                       << " r16 " << r16;
  }
  EXPECT_GT(changed, decided / 20);
  EXPECT_LT(exceptions, decided / 5) << "the GPU should decide most elements";
}

struct Param {
  int64_t offset, rows, cols;
  uint64_t pid;
  int64_t numel() const { return rows * cols; }
};

// A block of parameters at 8-aligned offsets with padding runs, as the offload engine lays them out.
struct Block {
  std::vector<Param> params;
  int64_t n = 0;
  std::vector<int64_t> row_start;
  std::vector<int64_t> param_row0;
  Block() {
    const int64_t shapes[][2] = {{7, 13}, {1, 33}, {64, 48}, {1, 1}, {5, 96}, {1, 4097}};
    uint64_t pid = 11;
    for (auto& s : shapes) {
      if (n > 0 && n % 8) {  // padding run: a row of its own
        row_start.push_back(n);
        n = (n + 7) / 8 * 8;
      }
      params.push_back({n, s[0], s[1], pid++});
      param_row0.push_back(int64_t(row_start.size()));
      for (int64_t r = 0; r < s[0]; ++r) row_start.push_back(n + r * s[1]);
      n += s[0] * s[1];
    }
    row_start.push_back(n);
  }
  // Rows of `cols` elements (the last one shorter) and no parameters: for the apply alone.
  Block(int64_t total, int64_t cols) : n(total) {
    for (int64_t i = 0; i < n; i += cols) row_start.push_back(i);
    row_start.push_back(n);
  }
  int64_t rows() const { return int64_t(row_start.size()) - 1; }
};

void pack_block(const Block& b, const std::vector<uint16_t>& master, std::vector<uint8_t>& q, std::vector<float>& sc) {
  q.assign(size_t(b.n), 0);
  sc.assign(size_t(b.rows()), 1.0f);
  for (int64_t r = 0; r < b.rows(); ++r)
    ref::pack_fp8_exact(master.data() + b.row_start[size_t(r)], 1, b.row_start[size_t(r) + 1] - b.row_start[size_t(r)],
                        q.data() + b.row_start[size_t(r)], sc.data() + r);
}

void check_copy(const Block& b, const std::vector<uint16_t>& master, const std::vector<uint8_t>& q,
                const std::vector<float>& sc) {
  for (int64_t r = 0; r < b.rows(); ++r) {
    const float s = sc[size_t(r)];
    ASSERT_EQ(f32_bits(s) & 0x807FFFFFu, 0u) << "row scale must be a power of two";
    for (int64_t i = b.row_start[size_t(r)]; i < b.row_start[size_t(r) + 1]; ++i)
      ASSERT_EQ(q[size_t(i)], e4m3_exact_bits(f(master[size_t(i)]) / s)) << "element " << i;
  }
}

struct Case {
  Dist dist;
  int nterms;
  float lr;          // coefficient scale
  int64_t capacity;  // list entries (0: everything recomputed)
};

void run_case(const Case& cs) {
  Block b;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<uint16_t> master(size_t(b.n), 0);
  for (const Param& p : b.params)
    for (int64_t i = 0; i < p.numel(); ++i) {
      float v = nd(rng);
      if (i % 97 == 5) v = 0.0f;
      if (i % 89 == 3) v *= 1e-5f;  // subnormal in fp8
      master[size_t(p.offset + i)] = bf16(v);
    }
  std::vector<uint8_t> q;
  std::vector<float> sc;
  pack_block(b, master, q, sc);
  const std::vector<uint8_t> q0 = q;
  std::vector<ZTerm> terms;
  for (int t = 0; t < cs.nterms; ++t) terms.push_back(ZTerm{1000u + uint64_t(t), cs.lr * (t % 2 ? -0.7f : 1.0f)});
  const uint64_t sr_seed = 0x5151;
  std::vector<uint8_t> codes(size_t((b.n + 3) / 4 + 8), 0);
  std::vector<Fp8Entry> list(size_t(std::max<int64_t>(cs.capacity, 1)));
  unsigned long long count = 0;
  std::vector<uint16_t> w(size_t(b.n), 0);
  std::vector<Fp8RecomputeParam> rp;
  for (size_t pi = 0; pi < b.params.size(); ++pi) {
    const Param& p = b.params[pi];
    Fp8UpdateArgs a{};
    a.q = q.data() + p.offset;
    a.row_scales = sc.data() + b.param_row0[pi];
    a.row_len = p.cols;
    a.w = w.data() + p.offset;
    a.w_elem = Elem::BF16;
    a.n = p.numel();
    a.pid = p.pid;
    a.dist = cs.dist;
    a.terms = terms.data();
    a.nterms = cs.nterms;
    a.sr_seed = sr_seed;
    a.delta = Fp8DeltaOut{codes.data() + p.offset / 4, list.data(), cs.capacity, &count, p.offset};
    ref::zo_update_fp8(a);
    rp.push_back({p.offset, p.numel(), p.pid});
  }
  // Expected: zo_update on the bf16 master itself.
  std::vector<uint16_t> want = master;
  for (const Param& p : b.params) {
    UpdateArgs u{};
    u.theta = want.data() + p.offset;
    u.elem = Elem::BF16;
    u.n = p.numel();
    u.pid = p.pid;
    u.dist = cs.dist;
    u.terms = terms.data();
    u.nterms = cs.nterms;
    u.decay = 0.0f;
    u.sr_seed = sr_seed;
    ref::zo_update(u);
  }
  // w = dequant(q) + acc, element by element for a sample.
  for (const Param& p : b.params)
    for (int64_t i = 0; i < p.numel(); i += 37) {
      float acc = -0.0f;
      for (auto& t : terms) {
        const float z = cs.dist == Dist::Gaussian ? gaussian_at(t.seed, p.pid, uint64_t(i)) : rademacher_at(t.seed, p.pid, uint64_t(i));
        acc = add_rn(acc, mul_rn(t.coeff, z));
      }
      int64_t row = 0;
      while (b.row_start[size_t(row) + 1] <= p.offset + i) ++row;
      const float dq = mul_rn(e4m3_bits_to_f32(q0[size_t(p.offset + i)]), sc[size_t(row)]);
      ASSERT_EQ(w[size_t(p.offset + i)], f32_to_bf16_bits_rne(add_rn(dq, acc))) << "w at " << p.offset + i;
    }
  const Fp8Recompute rec{rp.data(), int(rp.size()), cs.dist, terms.data(), cs.nterms, sr_seed};
  ApplyFp8DeltaArgs ap{};
  ap.master = master.data();
  ap.codes = codes.data();
  ap.n = b.n;
  ap.list = list.data();
  ap.count = int64_t(count);
  ap.capacity = cs.capacity;
  ap.recompute = &rec;
  const std::vector<Fp8RowSegment> segs = fp8_row_segments(b.row_start.data(), b.rows());
  ap.copy = Fp8Copy{q.data(), sc.data(), b.row_start.data(), b.rows()};
  if (cs.nterms != 1) ap.copy.segs = segs.data(), ap.copy.nsegs = int(segs.size());  // both row lookups
  // The same apply from packed codes (Note [Packed codes]), on copies: the same master and copy.
  std::vector<uint16_t> pm = master;
  std::vector<uint8_t> pq = q;
  std::vector<float> psc = sc;
  {
    std::vector<uint32_t> bitmap(size_t(pack_bitmap_words(b.n)));
    std::vector<uint64_t> packed(size_t(pack_code_words(b.n)));
    unsigned long long packed_count = 0;
    ref::pack_codes({codes.data(), b.n, bitmap.data(), packed.data(), &packed_count, nullptr});
    ApplyFp8DeltaArgs pa = ap;
    pa.master = pm.data();
    pa.copy.q = pq.data();
    pa.copy.scales = psc.data();
    pa.codes = reinterpret_cast<const uint8_t*>(packed.data());
    pa.bitmap = bitmap.data();
    pa.packed_count = int64_t(packed_count);
    apply_fp8_delta_host(pa);
  }
  const ApplyFp8Result res = apply_fp8_delta_host(ap);
  EXPECT_EQ(pm, master) << "packed codes";
  EXPECT_EQ(pq, q) << "packed codes";
  EXPECT_EQ(psc, sc) << "packed codes";
  int64_t changed = 0;
  for (int64_t i = 0; i < b.n; ++i) {
    ASSERT_EQ(master[size_t(i)], want[size_t(i)]) << "element " << i << " (" << res.exceptions << " exceptions)";
    changed += codes[size_t(i / 4)] >> (2 * (i % 4)) & 3 ? 1 : 0;
  }
  EXPECT_GT(res.exceptions, 0) << "the case should exercise exceptions";
  EXPECT_GT(changed, b.n / 200);
  if (cs.capacity == 0) {
    EXPECT_EQ(res.recomputed, res.exceptions);
  }
  check_copy(b, master, q, sc);
  int64_t qchanged = 0;
  for (int64_t i = 0; i < b.n; ++i) qchanged += q[size_t(i)] != q0[size_t(i)];
  EXPECT_GT(qchanged, 0);
}

TEST(Fp8Site, UpdateThenApplyEqualsZoUpdateGaussian) { run_case({Dist::Gaussian, 1, 2e-6f, 1 << 16}); }
TEST(Fp8Site, UpdateThenApplyEqualsZoUpdateThreeTerms) { run_case({Dist::Gaussian, 3, 1e-5f, 1 << 16}); }
TEST(Fp8Site, UpdateThenApplyEqualsZoUpdateRademacher) { run_case({Dist::Rademacher, 2, 5e-6f, 1 << 16}); }
TEST(Fp8Site, ListOverflowRecomputesFromSeeds) { run_case({Dist::Gaussian, 1, 2e-6f, 0}); }
TEST(Fp8Site, PartialListOverflowRecomputes) { run_case({Dist::Gaussian, 1, 2e-6f, 3}); }

// Apply arguments for one exception at element i (code 3, an entry with acc and r16 = 0).
struct OneEntry {
  std::vector<uint8_t> codes;
  std::vector<Fp8Entry> list;
  ApplyFp8DeltaArgs ap{};
  OneEntry(const Block& b, std::vector<uint16_t>& master, std::vector<uint8_t>& q, std::vector<float>& sc, int64_t i,
           float acc)
      : codes(size_t((b.n + 3) / 4), 0), list{Fp8Entry{uint32_t(i), 0u, acc, 0u}} {
    codes[size_t(i / 4)] = uint8_t(kDeltaException << (2 * (i % 4)));
    ap.master = master.data();
    ap.codes = codes.data();
    ap.n = b.n;
    ap.list = list.data();
    ap.count = 1;
    ap.capacity = 1;
    ap.copy = Fp8Copy{q.data(), sc.data(), b.row_start.data(), b.rows()};
  }
};

// Row segments: runs of equal-length rows; every element maps to the row row_start says.
TEST(Fp8Site, RowSegmentsDescribeTheRows) {
  Block b;
  const std::vector<Fp8RowSegment> segs = fp8_row_segments(b.row_start.data(), b.rows());
  EXPECT_LT(segs.size(), size_t(b.rows()));
  for (int64_t r = 0; r < b.rows(); ++r)
    for (int64_t i = b.row_start[size_t(r)]; i < b.row_start[size_t(r) + 1]; ++i) {
      size_t j = segs.size() - 1;
      while (j > 0 && segs[j].offset > i) --j;
      ASSERT_EQ(segs[j].row0 + (i - segs[j].offset) / segs[j].cols, r) << "element " << i;
    }
}

// An element that outgrows its row's range gets the row a new scale and a fresh pack.
TEST(Fp8Site, OutgrownRowIsRescaled) {
  Block b;
  std::vector<uint16_t> master(size_t(b.n), 0);
  for (int64_t i = 0; i < b.n; ++i) master[size_t(i)] = bf16(0.01f * float((i % 13) - 6));
  std::vector<uint8_t> q;
  std::vector<float> sc;
  pack_block(b, master, q, sc);
  const int64_t r = 3, i = b.row_start[size_t(r)] + 1;
  const float old_scale = sc[size_t(r)];
  OneEntry one(b, master, q, sc, i, std::copysign(600.0f, f(master[size_t(i)])) * old_scale);
  std::vector<uint8_t>& codes = one.codes;
  ApplyFp8DeltaArgs& ap = one.ap;
  const uint16_t before = master[size_t(i)];
  const ApplyFp8Result res = apply_fp8_delta_host(ap);
  EXPECT_NE(master[size_t(i)], before);
  EXPECT_EQ(res.rescaled_rows, 1);
  EXPECT_GT(sc[size_t(r)], old_scale);
  check_copy(b, master, q, sc);
  // A list entry naming an element without code 3 is refused.
  codes.assign(codes.size(), 0);
  EXPECT_THROW(apply_fp8_delta_host(ap), Error);
  // Overflow without recompute information is refused.
  ap.count = 2;
  EXPECT_THROW(apply_fp8_delta_host(ap), Error);
}

// An all-zero row (a zero-initialised bias) is packed with scale 2^-126, so its first nonzero value
// outgrows the row and re-packs it with a scale that represents it (not fp8 zero under scale 1).
TEST(Fp8Site, ZeroRowIsRescaledByItsFirstValue) {
  Block b;
  std::vector<uint16_t> master(size_t(b.n), 0);
  std::vector<uint8_t> q;
  std::vector<float> sc;
  pack_block(b, master, q, sc);
  const int64_t r = 3, i = b.row_start[size_t(r)] + 2;
  EXPECT_EQ(sc[size_t(r)], std::ldexp(1.0f, -126));
  OneEntry one(b, master, q, sc, i, 1e-4f);
  EXPECT_EQ(apply_fp8_delta_host(one.ap).rescaled_rows, 1);
  EXPECT_GT(f(master[size_t(i)]), 0.0f);
  EXPECT_NE(q[size_t(i)], 0) << "the new value must be represented in fp8";
  EXPECT_NEAR(e4m3_bits_to_f32(q[size_t(i)]) * sc[size_t(r)], f(master[size_t(i)]), f(master[size_t(i)]) / 16);
  check_copy(b, master, q, sc);
}

// Every word path this CPU has (AVX-512, AVX2), with the list by word range or in its own order,
// and with packed codes (Note [Packed codes]), leaves the same master and fp8 copy as the portable
// path by range: 600,037 elements (many compaction passes and TBB ranges, a ragged tail), 20% up, 20% down,
// 1% exceptions from a list, some elements small enough to be fp8 subnormal.
TEST(Fp8Site, WordPathsAgree) {
  Block b(600037, 1000);
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::uniform_int_distribution<int> pick(0, 99);
  std::vector<uint16_t> m0(size_t(b.n), 0);
  for (int64_t i = 0; i < b.n; ++i) m0[size_t(i)] = bf16(i % 50 == 0 ? nd(rng) * 1e-4f : nd(rng));
  std::vector<uint8_t> codes(size_t((b.n + 3) / 4), 0);
  std::vector<Fp8Entry> list;
  for (int64_t i = 0; i < b.n; ++i) {
    const int x = pick(rng);
    const uint32_t c = x < 20 ? kDeltaUp : x < 40 ? kDeltaDown : x < 41 ? kDeltaException : 0u;
    if (f(m0[size_t(i)]) == 0.0f || c == 0) continue;
    codes[size_t(i / 4)] |= uint8_t(c << (2 * (i % 4)));
    if (c == kDeltaException) list.push_back({uint32_t(i), uint32_t(rng() & 0xFFFFu), nd(rng) * 0.01f, 0u});
  }
  std::shuffle(list.begin(), list.end(), rng);
  std::vector<uint8_t> q0;
  std::vector<float> s0;
  pack_block(b, m0, q0, s0);
  std::vector<uint8_t> dense = codes;
  dense.resize(size_t(8 * pack_code_words(b.n)), 0);  // pack_codes reads whole words
  std::vector<uint32_t> bitmap(size_t(pack_bitmap_words(b.n)));
  std::vector<uint64_t> packed(size_t(pack_code_words(b.n)));
  unsigned long long packed_count = 0;
  ref::pack_codes({dense.data(), b.n, bitmap.data(), packed.data(), &packed_count, nullptr});
  ASSERT_GT(packed_count, 0u);
  std::vector<uint16_t> want;
  std::vector<uint8_t> want_q;
  std::vector<float> want_s;
  int tried = 0;
  Fp8ApplyScratch scratch;  // reused by the AVX2 and AVX-512 runs, made per call by the others
  for (int variant = 0; variant < 12; ++variant) {
    const Fp8WordPath path = Fp8WordPath(variant % 4 == 0 ? 1 : variant % 4 == 1 ? 2 : variant % 4 == 2 ? 3 : 0);
    const bool by_range = variant < 4 || variant >= 8;  // else the list in its own order (Note [Exceptions by range])
    const bool pack = variant >= 8;
    if (!fp8_word_path_supported(path)) continue;
    std::vector<uint16_t> m = m0;
    std::vector<uint8_t> q = q0;
    std::vector<float> sc = s0;
    ApplyFp8DeltaArgs ap{};
    ap.master = m.data();
    ap.codes = codes.data();
    ap.n = b.n;
    ap.list = list.data();
    ap.count = ap.capacity = int64_t(list.size());
    ap.copy = Fp8Copy{q.data(), sc.data(), b.row_start.data(), b.rows()};
    ap.path = path;
    ap.list_by_range = by_range;
    ap.scratch = path == Fp8WordPath::Avx2 || path == Fp8WordPath::Avx512 ? &scratch : nullptr;
    if (pack) {
      ap.codes = reinterpret_cast<const uint8_t*>(packed.data());
      ap.bitmap = bitmap.data();
      ap.packed_count = int64_t(packed_count);
    }
    apply_fp8_delta_host(ap);
    if (variant == 0) {
      want = m, want_q = q, want_s = sc;
      check_copy(b, m, q, sc);
      EXPECT_NE(m, m0);
    } else {
      const std::string what = "path " + std::to_string(int(path)) + (by_range ? " by range" : " list order") +
                               (pack ? ", packed codes" : "");
      EXPECT_EQ(m, want) << what;
      EXPECT_EQ(q, want_q) << what;
      EXPECT_EQ(sc, want_s) << what;
    }
    ++tried;
  }
  EXPECT_GE(tried, 6);
#if defined(__x86_64__)
  if (!fp8_word_path_supported(Fp8WordPath::Avx512)) {  // a path the CPU lacks is refused
    EXPECT_THROW(fp8_word_path(Fp8WordPath::Avx512), Error);
  }
#endif
}

}  // namespace
}  // namespace zoff::k
