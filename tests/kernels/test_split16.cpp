// Split bf16 on the CPU: encode/decode round trips, and apply_split_delta_host against ref::apply_delta and zo_update.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/delta.h"
#include "kernels/ref/scalar.h"
#include "kernels/split16.h"
#include "kernels/zo_kernels.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

constexpr uint8_t kPoison = 0xA5;
constexpr int64_t kGuard = 64;  // poisoned bytes after the planes, entries after the list

uint32_t nibble_at(const SplitPlanes& p, int64_t i) { return (p.nib[i >> 1] >> (4 * (i & 1))) & 15u; }

// One split block: its planes buffer and escape list, both followed by poisoned guards.
struct Split {
  int64_t n;
  std::vector<uint8_t> buf;
  std::vector<SplitEscape> list;
  SplitPlanes p;
  SplitEscapes esc;
  Split(int64_t n_, int64_t capacity)
      : n(n_), buf(size_t(split_bytes(n_) + kGuard), kPoison), list(size_t(capacity + kGuard)) {
    std::memset(static_cast<void*>(list.data()), kPoison, list.size() * sizeof(SplitEscape));
    p = split_planes(buf.data(), n);
    esc = SplitEscapes{list.data(), 0, capacity};
  }
  bool encode(const std::vector<uint16_t>& v) { return ref::split16_encode(v.data(), p, &esc); }
  std::vector<uint16_t> decode() const {
    std::vector<uint16_t> out(static_cast<size_t>(n));
    ref::split16_decode(p, esc.e, esc.count, out.data());
    return out;
  }
  bool guards_intact() const {
    const uint8_t* l = reinterpret_cast<const uint8_t*>(list.data() + esc.capacity);
    return std::all_of(buf.end() - kGuard, buf.end(), [](uint8_t b) { return b == kPoison; }) &&
           std::all_of(l, l + kGuard * sizeof(SplitEscape), [](uint8_t b) { return b == kPoison; });
  }
};

// The block says exactly `values` under its bases: lo bytes, nibbles, and the escape list (sorted,
// nothing else listed) are what the format prescribes for them; bases are 7-bit.
void expect_canonical(const Split& b, const std::vector<uint16_t>& values) {
  std::vector<SplitEscape> want;
  int64_t bad = 0;
  for (int64_t i = 0; i < b.n; ++i) {
    const uint32_t hi = values[size_t(i)] >> 8, base = b.p.base[i / kSplitGroup], v = split_nibble(hi, base);
    if ((nibble_at(b.p, i) != v || b.p.lo[i] != (values[size_t(i)] & 0xFF) || base > 127) && bad++ < 5)
      ADD_FAILURE() << "element " << i << " bits " << values[size_t(i)] << " base " << base << " nibble "
                    << nibble_at(b.p, i) << " want " << v;
    if (v == kSplitEscapeNibble) want.push_back({uint32_t(i), hi});
  }
  ASSERT_EQ(int64_t(want.size()), b.esc.count);
  for (size_t s = 0; s < want.size(); ++s) {
    ASSERT_EQ(b.esc.e[s].index, want[s].index) << "escape " << s;
    ASSERT_EQ(b.esc.e[s].hi, want[s].hi) << "escape " << s;
  }
  EXPECT_TRUE(b.guards_intact());
}

// Round trip with the planes checked against the format (bases: each group's largest 7-bit high).
void round_trip(const std::vector<uint16_t>& v, const char* what) {
  SCOPED_TRACE(what);
  const int64_t n = int64_t(v.size());
  Split b(n, n);
  ASSERT_TRUE(b.encode(v));
  for (int64_t g = 0; g < split_groups(n); ++g) {
    uint32_t base = 0;
    for (int64_t i = g * kSplitGroup; i < std::min(n, (g + 1) * kSplitGroup); ++i) base = std::max(base, (v[size_t(i)] >> 8) & 0x7Fu);
    ASSERT_EQ(b.p.base[g], base) << "group " << g;
  }
  expect_canonical(b, v);
  EXPECT_EQ(b.decode(), v);
}

uint16_t bf16(float f) { return ref::float_to_bf16_rne(f); }

TEST(SplitFormat, EveryNibbleSaysItsHighByte) {
  for (uint32_t base = 0; base < 128; ++base)
    for (uint32_t hi = 0; hi < 256; ++hi) {
      const uint32_t v = split_nibble(hi, base);
      ASSERT_LT(v, 16u);
      if (v != kSplitEscapeNibble) {
        ASSERT_EQ(split_hi(v, base), hi) << "hi " << hi << " base " << base;
      }
      const uint32_t h7 = hi & 0x7F;  // what may escape: outside [base - 6, base], and not hi == 0
      ASSERT_EQ(v == kSplitEscapeNibble, hi != 0 && (h7 > base || base - h7 > 6)) << "hi " << hi << " base " << base;
    }
}

TEST(SplitEncode, RoundTripsAllBitPatterns) {
  std::vector<uint16_t> all(65536);
  for (uint32_t x = 0; x < 65536; ++x) all[x] = uint16_t(x);
  round_trip(all, "in order (a group shares its high byte)");
  std::mt19937 rng(1);
  std::vector<uint16_t> shuffled = all;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  round_trip(shuffled, "shuffled (many escapes)");
  // Every pattern beside a base setter: group g's first element has high 7 bits g % 128, and its
  // other 255 elements are patterns within a few binades of it (or anything, every 8th group).
  std::vector<uint16_t> mixed;
  std::vector<uint32_t> left(all.begin(), all.end());
  for (int64_t g = 0; !left.empty(); ++g) {
    const uint32_t b = uint32_t(g % 128);
    mixed.push_back(uint16_t((rng() & 0x8000u) | (b << 8) | (rng() & 0xFF)));
    for (int k = 1; k < kSplitGroup && !left.empty(); ++k) {
      size_t j = rng() % left.size();
      for (int tries = 0; g % 8 != 0 && tries < 16 && ((left[j] >> 8) & 0x7F) > b; ++tries) j = rng() % left.size();
      mixed.push_back(uint16_t(left[j]));
      left[j] = left.back();
      left.pop_back();
    }
  }
  round_trip(mixed, "beside base setters");
}

TEST(SplitEncode, GaussianWeightsRarelyEscape) {
  for (float sd : {0.02f, 1.0f, 3e-5f}) {
    std::mt19937 rng(uint32_t(sd * 1e6f));
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<uint16_t> v(1000003);
    for (uint16_t& x : v) x = bf16(nd(rng));
    Split b(int64_t(v.size()), int64_t(v.size()));
    ASSERT_TRUE(b.encode(v));
    EXPECT_LT(double(b.esc.count), 1e-3 * double(v.size())) << "sd " << sd;
    EXPECT_EQ(b.decode(), v) << "sd " << sd;
    EXPECT_LE(b.esc.count, split_escape_capacity(int64_t(v.size())));
  }
}

TEST(SplitEncode, ZerosTinyAndNegativeTinyValues) {
  const float special[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 9.2e-41f, -1e-45f, 1e-38f, -1.2e-38f, 3e-30f, -3e-30f,
                           1.0f, -1.0f, 0.03f, -0.03f, std::numeric_limits<float>::infinity()};
  std::mt19937 rng(7);
  std::vector<uint16_t> v;
  for (int g = 0; g < 64; ++g)  // each group: a random subset of the specials, in random order
    for (int k = 0; k < kSplitGroup; ++k) v.push_back(bf16(special[rng() % (g % 15 + 1)]));
  round_trip(v, "mixed");
  round_trip(std::vector<uint16_t>(300, 0x8000), "negative zeros");
  round_trip(std::vector<uint16_t>(300, 0x8001), "negative subnormals");
  round_trip(std::vector<uint16_t>(300, 0), "zeros");
}

TEST(SplitEncode, OddSizes) {
  for (int64_t n : {0, 1, 2, 3, 7, 9, 255, 256, 257, 511, 4097, 65537}) {
    std::mt19937 rng{uint32_t(n)};
    std::vector<uint16_t> v(static_cast<size_t>(n));
    for (uint16_t& x : v) x = rng() % 5 == 0 ? uint16_t(rng()) : bf16(std::ldexp(float(int(rng() % 2001) - 1000), -12));
    round_trip(v, ("n " + std::to_string(n)).c_str());
  }
}

TEST(SplitEncode, FailsPastCapacity) {
  std::vector<uint16_t> v(1000, bf16(1.0f));
  for (int k = 0; k < 10; ++k) v[size_t(97 * k)] = bf16(1e-6f);  // 10 escapes
  Split small(1000, 9), exact(1000, 10);
  EXPECT_FALSE(small.encode(v));
  EXPECT_EQ(small.esc.count, 10);
  EXPECT_TRUE(exact.encode(v));
  EXPECT_EQ(exact.esc.count, 10);
  EXPECT_EQ(exact.decode(), v);
  EXPECT_TRUE(small.guards_intact());
}

// ---- apply ------------------------------------------------------------------------------------

enum class Codes { Dense, Keep, Packed };

// Masters that exercise every path: per group a center high byte c, most elements' high 7 bits in
// [c - 6, c] (nibbles), some further below (escapes), +-0, subnormal, infinity and NaN high bytes,
// both signs; lo bytes 0xFF and 0x00 often (carries and borrows).
std::vector<uint16_t> apply_masters(int64_t n, uint32_t seed) {
  static const uint32_t kOdd[] = {0x00, 0x80, 0x7F, 0xFF, 0x01, 0x81};
  std::mt19937 rng(seed);
  std::vector<uint16_t> v(static_cast<size_t>(n));
  uint32_t c = 0x3C;
  for (int64_t i = 0; i < n; ++i) {
    if (i % kSplitGroup == 0) c = 0x30 + rng() % 16;
    const uint32_t s = rng() % 3 == 0 ? 0x80u : 0u, r = rng() % 16;
    const uint32_t hi = r < 12 ? s | (c - rng() % 7) : r < 14 ? s | ((c - 7 - rng() % 30) & 0x7F)
                        : r == 14 ? kOdd[rng() % 6] : s | (c + 1);
    const uint32_t q = rng() % 4, lo = q == 0 ? 0xFF : q == 1 ? 0x00 : rng() & 0xFF;
    v[size_t(i)] = uint16_t(hi << 8 | lo);
  }
  return v;
}

// Packed codes (Note [Packed codes]) of dense codes: bitmap and packed words; returns their count.
int64_t pack(const std::vector<uint8_t>& codes, int64_t n, std::vector<uint32_t>& bitmap, std::vector<uint64_t>& packed) {
  const int64_t W = pack_code_words(n);
  std::vector<uint8_t> full(size_t(8 * W), 0);
  std::copy(codes.begin(), codes.begin() + std::ptrdiff_t((n + 3) / 4), full.begin());
  bitmap.assign(size_t(pack_bitmap_words(n)), 0);
  packed.assign(size_t(W) + 1, 0);
  unsigned long long cnt = 0;
  ref::pack_codes({full.data(), n, bitmap.data(), packed.data(), &cnt, nullptr});
  return int64_t(cnt);
}

ApplySplitDeltaArgs args(Split& b, uint8_t* codes, const std::vector<DeltaEntry>& list, int64_t count, int64_t capacity) {
  ApplySplitDeltaArgs a{};
  a.planes = b.p;
  a.escapes = &b.esc;
  a.codes = codes;
  a.list = list.data();
  a.count = count;
  a.capacity = capacity;
  a.recipe = nullptr;
  return a;
}

// Encodes `master` (escape room esc_capacity), applies codes and list in `mode`, and checks the
// block against ref::apply_delta on the bf16 master, the codes afterwards, and the guards.
ApplySplitResult apply_checked_on(HostIsa isa, const std::vector<uint16_t>& master, const std::vector<uint8_t>& codes,
                                  const std::vector<DeltaEntry>& list, Codes mode, int64_t esc_capacity,
                                  SplitApplyScratch* scratch) {
  SCOPED_TRACE(host_isa_name(isa));
  const int64_t n = int64_t(master.size());
  std::vector<uint16_t> want = master;
  std::vector<uint8_t> rc = codes;
  ref::apply_delta({want.data(), rc.data(), n, list.data(), int64_t(list.size())});
  Split b(n, esc_capacity);
  EXPECT_TRUE(b.encode(master));
  const std::vector<uint8_t> encoded = b.buf;
  std::vector<uint8_t> dense(codes);  // (n + 3) / 4 bytes, then guards
  dense.resize(codes.size() + kGuard, kPoison);
  std::vector<uint32_t> bitmap;
  std::vector<uint64_t> packed;
  ApplySplitDeltaArgs a = args(b, dense.data(), list, int64_t(list.size()), int64_t(list.size()));
  a.keep_codes = mode == Codes::Keep;
  a.scratch = scratch;
  if (mode == Codes::Packed) {
    a.packed_count = pack(codes, n, bitmap, packed);
    a.codes = reinterpret_cast<uint8_t*>(packed.data());
    a.bitmap = bitmap.data();
  }
  const std::vector<uint64_t> packed0 = packed;
  const ApplySplitResult r = apply_split_delta_host(a, isa);
  const std::vector<uint16_t> got = b.decode();
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i)
    if (got[size_t(i)] != want[size_t(i)] && bad++ < 5)
      ADD_FAILURE() << "element " << i << ": " << got[size_t(i)] << ", want " << want[size_t(i)] << " (was "
                    << master[size_t(i)] << ")";
  EXPECT_EQ(bad, 0);
  expect_canonical(b, want);
  const int64_t pad[][2] = {{n, split_nib_offset(n)},  // plane padding: never written
                            {split_nib_offset(n) + (n + 1) / 2, split_base_offset(n)},
                            {split_base_offset(n) + split_groups(n), split_bytes(n)}};
  for (const auto& r : pad)
    for (int64_t j = r[0]; j < r[1]; ++j)
      if (b.buf[size_t(j)] != encoded[size_t(j)]) {
        ADD_FAILURE() << "padding byte " << j << " written";
        break;
      }
  for (size_t j = 0; j < dense.size(); ++j) {
    const uint8_t w = j >= codes.size() ? kPoison : mode == Codes::Dense ? 0 : codes[j];
    if (dense[j] != w) {
      ADD_FAILURE() << "code byte " << j << " is " << int(dense[j]) << ", want " << int(w);
      break;
    }
  }
  EXPECT_EQ(packed, packed0);
  return r;
}

// The apply's paths (Note [Split apply lanes]): element by element, and the AVX2 words where the
// CPU has them.
std::vector<HostIsa> apply_isas() {
  std::vector<HostIsa> v{HostIsa::Scalar};
  if (host_isa_supported(HostIsa::Avx2)) v.push_back(HostIsa::Avx2);
  return v;
}

// apply_checked_on for every path; they must also agree on what they report.
ApplySplitResult apply_checked(const std::vector<uint16_t>& master, const std::vector<uint8_t>& codes,
                               const std::vector<DeltaEntry>& list, Codes mode, int64_t esc_capacity,
                               SplitApplyScratch* scratch = nullptr) {
  const std::vector<HostIsa> isas = apply_isas();
  const ApplySplitResult r = apply_checked_on(isas[0], master, codes, list, mode, esc_capacity, scratch);
  for (size_t k = 1; k < isas.size(); ++k) {
    const ApplySplitResult q = apply_checked_on(isas[k], master, codes, list, mode, esc_capacity, scratch);
    EXPECT_EQ(q.exceptions, r.exceptions);
    EXPECT_EQ(q.recomputed, r.recomputed);
    EXPECT_EQ(q.escapes_added, r.escapes_added);
    EXPECT_EQ(q.escapes_removed, r.escapes_removed);
    EXPECT_EQ(q.reencoded, r.reencoded);
  }
  return r;
}

uint32_t code_at(const std::vector<uint8_t>& codes, int64_t i) { return (codes[size_t(i / 4)] >> (2 * (i % 4))) & 3u; }

TEST(ApplySplit, MatchesApplyDeltaOnRandomCodes) {
  SplitApplyScratch scratch;
  for (int64_t n : {1, 2, 31, 33, 257, 4097, 65536 + 7, 300001})
    for (Codes mode : {Codes::Dense, Codes::Keep, Codes::Packed}) {
      SCOPED_TRACE(testing::Message() << "n " << n << " mode " << int(mode));
      std::mt19937 rng(uint32_t(n) + 3 * uint32_t(mode));
      const std::vector<uint16_t> master = apply_masters(n, uint32_t(n));
      std::vector<uint8_t> codes(size_t((n + 3) / 4), 0);
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t r = rng() % 20, c = r < 12 ? 0 : r < 15 ? 1 : r < 18 ? 2 : 3;
        codes[size_t(i / 4)] |= uint8_t(c << (2 * (i % 4)));
      }
      if (n > 4096) std::memset(codes.data() + 8, 0, 512);  // some zero code words
      if (n % 4 != 0) codes.back() |= uint8_t(0x55 << (2 * (n % 4)));  // codes past n: ignored
      const std::vector<uint16_t> fresh = apply_masters(n, uint32_t(n) + 1);
      std::vector<DeltaEntry> list;
      for (int64_t i = 0; i < n; ++i)
        if (code_at(codes, i) == kDeltaException) list.push_back({uint32_t(i), fresh[size_t(i)], 0});
      std::shuffle(list.begin(), list.end(), rng);
      const ApplySplitResult r = apply_checked(master, codes, list, mode, n, mode == Codes::Keep ? &scratch : nullptr);
      EXPECT_EQ(r.exceptions, int64_t(list.size()));
      EXPECT_EQ(r.recomputed, 0);
      EXPECT_FALSE(r.reencoded);
      if (n > 4096) {
        EXPECT_GT(r.escapes_added, 0);
        EXPECT_GT(r.escapes_removed, 0);
      }
    }
}

// One element each: the codes' carries and borrows and the list's exceptions moving elements into,
// out of and within the escape list, sign and NaN wraparound, neighbours sharing a nibble byte.
TEST(ApplySplit, EscapeTransitions) {
  struct Ch {
    uint32_t i;
    uint16_t old;
    uint32_t code;
    uint16_t bits;  // code 3
  };
  const Ch ch[] = {
      {0, 0x3CAA, 0, 0},      {1, 0x30FF, 1, 0},      {2, 0x35FF, 1, 0},      {3, 0x3600, 2, 0},  // group 0: base 0x3C
      {4, 0x3CFF, 1, 0},      {5, 0x0000, 2, 0},      {7, 0x3A01, 3, 0x2000}, {8, 0x2000, 3, 0x3B00},
      {9, 0x2100, 3, 0x2200}, {10, 0x3A00, 3, 0x3900}, {11, 0x3A00, 3, 0x2500}, {12, 0x3AFF, 1, 0},
      {13, 0x3A05, 1, 0},     {256, 0x0000, 2, 0},    {257, 0x8000, 1, 0},    {258, 0x8001, 2, 0},  // group 1: base 1
      {259, 0x0180, 0, 0},    {260, 0x00FF, 1, 0},    {512, 0x7FFF, 1, 0},    {513, 0x8000, 1, 0},  // group 2: 0x7F
      {514, 0xFFFF, 1, 0}};
  std::vector<uint16_t> master(800, 0);
  std::fill(master.begin(), master.begin() + 256, 0x3A42);
  std::fill(master.begin() + 512, master.begin() + 768, 0x7F00);
  std::vector<uint8_t> codes(200, 0);
  std::vector<DeltaEntry> list;
  for (const Ch& c : ch) {
    master[c.i] = c.old;
    codes[c.i / 4] |= uint8_t(c.code << (2 * (c.i % 4)));
    if (c.code == 3) list.push_back({c.i, c.bits, 0});
  }
  // Escapes before: 1, 2, 8, 9, 513; after: 1, 3, 4, 5, 7, 9, 11, 256, 512, 513 (exactly the room).
  for (Codes mode : {Codes::Dense, Codes::Packed}) {
    const ApplySplitResult r = apply_checked(master, codes, list, mode, 10);
    EXPECT_EQ(r.escapes_added, 7);    // 3, 4, 5, 256, 512 (codes); 7, 11 (list)
    EXPECT_EQ(r.escapes_removed, 2);  // 2 (codes), 8 (list)
    EXPECT_EQ(r.exceptions, 5);
    EXPECT_FALSE(r.reencoded);
  }
}

// A list past its room that pass B brings back: 2 escapes, room 3; the codes add 2, the list removes 1.
TEST(ApplySplit, ListOutgrowsItsRoomOnlyBetweenPasses) {
  std::vector<uint16_t> master(256, 0x3C11);
  master[1] = 0x2000, master[2] = 0x2100, master[3] = 0x3600, master[4] = 0x3CFF;
  std::vector<uint8_t> codes(64, 0);
  codes[0] = uint8_t(3 << 2 | 2 << 6);  // element 1: exception; 3: -1
  codes[1] = 1;                         // element 4: +1
  const ApplySplitResult r = apply_checked(master, codes, {{1, 0x3B00, 0}}, Codes::Dense, 3);
  EXPECT_FALSE(r.reencoded);
  EXPECT_EQ(r.escapes_added, 2);
  EXPECT_EQ(r.escapes_removed, 1);
}

// Whole groups pushed tiny escape under their old bases; with fresh bases they fit again.
TEST(ApplySplit, ReencodesWhenTheListOutgrowsItsRoom) {
  const int64_t n = 64 * kSplitGroup;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> ud(-0.035f, 0.035f);
  std::vector<uint16_t> master(static_cast<size_t>(n));
  for (uint16_t& x : master) x = bf16(ud(rng));
  Split probe(n, n);
  ASSERT_TRUE(probe.encode(master));
  std::vector<uint8_t> codes(size_t(n / 4), 0);
  std::vector<DeltaEntry> list;
  for (int64_t i = 3 * kSplitGroup; i < 7 * kSplitGroup; ++i) {
    codes[size_t(i / 4)] |= uint8_t(3 << (2 * (i % 4)));
    list.push_back({uint32_t(i), bf16((rng() % 2 ? 1.0f : -1.0f) * std::ldexp(1.0f + float(rng() % 64) / 64, -60)), 0});
  }
  for (int64_t i = 8 * kSplitGroup; i < n; i += 7) codes[size_t(i / 4)] |= uint8_t((1 + rng() % 2) << (2 * (i % 4)));
  SplitApplyScratch scratch;
  const ApplySplitResult r = apply_checked(master, codes, list, Codes::Dense, probe.esc.count + 8, &scratch);
  EXPECT_TRUE(r.reencoded);
  EXPECT_GE(r.escapes_added, 4 * kSplitGroup - 8);
}

TEST(ApplySplit, FailsWhenEvenFreshBasesDoNotFit) {
  std::vector<uint16_t> master(256, 0x3C00);
  std::vector<uint8_t> codes(64, 0);
  codes[2] = 0x3F;  // elements 8, 9, 10: exceptions to tiny values that escape under any base
  const std::vector<DeltaEntry> list = {{8, 0x2000, 0}, {9, 0x2001, 0}, {10, 0xA000, 0}};
  Split b(256, 2);
  ASSERT_TRUE(b.encode(master));
  try {
    apply_split_delta_host(args(b, codes.data(), list, 3, 3));
    ADD_FAILURE() << "no zoff::Error";
  } catch (const zoff::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("needs 3 escapes"), std::string::npos) << m;
    EXPECT_NE(m.find("room for 2"), std::string::npos) << m;
    EXPECT_NE(m.find("already hold this update"), std::string::npos) << m;
    EXPECT_NE(m.find("transfer = \"bf16\""), std::string::npos) << m;
  }
  EXPECT_LE(b.esc.count, b.esc.capacity);
  EXPECT_TRUE(b.guards_intact());
}

TEST(ApplySplit, RejectsBadIndicesAndMissingRecipes) {
  for (int64_t n : {100, 200001}) {
    SCOPED_TRACE(n);
    std::vector<uint16_t> master = apply_masters(n, 9), want = master;
    std::vector<uint8_t> codes(size_t((n + 3) / 4), 0), rc;
    std::vector<DeltaEntry> list;
    for (int64_t i = 5; i < n; i += 3) {
      codes[size_t(i / 4)] |= uint8_t(3 << (2 * (i % 4)));
      list.push_back({uint32_t(i), uint16_t(0x3F80 + i), 0});
    }
    rc = codes;
    ref::apply_delta({want.data(), rc.data(), n, list.data(), int64_t(list.size())});
    list.insert(list.begin() + std::ptrdiff_t(list.size() / 2), DeltaEntry{uint32_t(n), 1, 0});
    Split b(n, n);
    ASSERT_TRUE(b.encode(master));
    try {
      apply_split_delta_host(args(b, codes.data(), list, int64_t(list.size()), int64_t(list.size())));
      ADD_FAILURE() << "no zoff::Error";
    } catch (const zoff::Error& e) {
      EXPECT_NE(std::string(e.what()).find("index " + std::to_string(n)), std::string::npos) << e.what();
    }
    EXPECT_EQ(b.decode(), want) << "the good entries are applied";
    expect_canonical(b, want);
    // An overflowed list without a recipe: rejected before anything is written.
    Split c(n, n);
    ASSERT_TRUE(c.encode(master));
    EXPECT_THROW(apply_split_delta_host(args(c, codes.data(), list, 1000000, 10)), zoff::Error);
    EXPECT_EQ(c.decode(), master);
  }
}

// ---- recomputed exceptions and real updates --------------------------------------------------------

std::vector<ZTerm> step_terms(int nterms) {  // MeZO-sized: ~1/3 of bf16 weights of 0.035 move
  std::vector<ZTerm> t;
  for (int k = 0; k < nterms; ++k) t.push_back({step_seed(17, 3, uint64_t(k)), (k % 2 ? -3e-5f : 3e-5f) * (1.0f + 0.1f * float(k))});
  return t;
}

// Uniform(-0.035, 0.035) weights with zeros, tiny values (sign crossings) and, with `wild`, huge
// values, infinities and NaN sprinkled in (those raise a group's base, so split blocks leave them out).
std::vector<uint16_t> weights(int64_t n, uint32_t seed, bool wild) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ud(-0.035f, 0.035f);
  const float special[] = {0.0f, -0.0f, 1e-9f, -2e-8f, 3e-6f, 3e38f, -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN()};
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (uint16_t& x : v) x = bf16(rng() % 97 == 0 ? special[rng() % (wild ? 8 : 5)] : ud(rng));
  return v;
}

TEST(SplitRecompute, MatchesZoUpdate) {
  const uint64_t pid = param_id("model.layers.2.mlp.up_proj.weight");
  const int64_t n = 4099;
  struct Cfg {
    int nterms;
    float decay;
  };
  for (Dist d : {Dist::Gaussian, Dist::Rademacher})
    for (uint64_t sr : {uint64_t(0), uint64_t(77)})
      for (int64_t first : {int64_t(0), int64_t(1028)})
        for (Cfg c : {Cfg{0, 0.01f}, Cfg{1, 0.0f}, Cfg{3, 0.001f}, Cfg{8, 0.0f}}) {
          SCOPED_TRACE(testing::Message() << "dist " << int(d) << " sr " << sr << " first " << first << " nterms "
                                          << c.nterms << " decay " << c.decay);
          const std::vector<uint16_t> old = weights(n, uint32_t(c.nterms + first), true);
          std::vector<uint16_t> theta = old;
          const std::vector<ZTerm> terms = step_terms(c.nterms);
          UpdateArgs a{theta.data(), Elem::BF16, n, pid, d, terms.data(), c.nterms, c.decay, sr};
          a.first = first;
          ref::zo_update(a);
          SplitRecipe r;
          r.terms = terms, r.dist = d, r.sr_seed = sr;
          const SplitRecomputeParam p{0, n, pid, 1.0f - c.decay};
          int64_t bad = 0, changed = 0;
          for (int64_t i = 0; i < n; ++i) {
            const uint16_t got = ref::split_recompute_one(old[size_t(i)], r, p, first + i);
            changed += theta[size_t(i)] != old[size_t(i)];
            if (got != theta[size_t(i)] && bad++ < 5)
              ADD_FAILURE() << "element " << i << ": " << got << ", zo_update " << theta[size_t(i)];
          }
          EXPECT_EQ(bad, 0);
          EXPECT_GT(changed * 10, n);
        }
}

// zo_update with a delta output on three parameters of one block (sharing a list and a count, a
// gap between two), then apply_split_delta_host of its codes and list (or, past the list's room,
// the recipe) onto the split old master: it must decode to the updated theta.
void real_update(Dist d, uint64_t sr, int nterms, int64_t cap, Codes mode, HostIsa isa) {
  SCOPED_TRACE(testing::Message() << host_isa_name(isa) << " dist " << int(d) << " sr " << sr << " nterms " << nterms << " cap " << cap
                                  << " mode " << int(mode));
  struct P {
    int64_t offset, numel;
    uint64_t pid;
    float decay;
  };
  const P ps[] = {{0, 40000, param_id("a.weight"), 0.0f},
                  {40000, 60003, param_id("b.weight"), 0.01f},
                  {100004, 7, param_id("c.bias"), 0.0f}};
  const int64_t n = 100011;
  const std::vector<uint16_t> old = weights(n, uint32_t(nterms * 5 + int(d)), false);
  std::vector<uint16_t> theta = old, overflow(static_cast<size_t>(n));
  std::vector<uint8_t> codes(size_t((n + 3) / 4), 0);
  std::vector<DeltaEntry> list(size_t(std::max<int64_t>(cap, 1)));
  unsigned long long count = 0;
  const std::vector<ZTerm> terms = step_terms(nterms);
  SplitRecipe recipe;
  recipe.terms = terms, recipe.dist = d, recipe.sr_seed = sr;
  for (const P& p : ps) {
    DeltaOut out{codes.data() + p.offset / 4, list.data(), cap, &count, overflow.data() + p.offset, p.offset};
    UpdateArgs a{theta.data() + p.offset, Elem::BF16, p.numel, p.pid, d, terms.data(), nterms, p.decay, sr};
    a.delta = &out;
    ref::zo_update(a);
    recipe.params.push_back({p.offset, p.numel, p.pid, 1.0f - p.decay});
  }
  ASSERT_GT(count, 0u);
  Split b(n, n / 32);
  ASSERT_TRUE(b.encode(old));
  std::vector<uint32_t> bitmap;
  std::vector<uint64_t> packed;
  ApplySplitDeltaArgs a = args(b, codes.data(), list, int64_t(count), cap);
  a.recipe = &recipe;
  if (mode == Codes::Packed) {
    a.packed_count = pack(codes, n, bitmap, packed);
    a.codes = reinterpret_cast<uint8_t*>(packed.data());
    a.bitmap = bitmap.data();
  }
  const ApplySplitResult r = apply_split_delta_host(a, isa);
  EXPECT_EQ(b.decode(), theta);
  expect_canonical(b, theta);
  EXPECT_EQ(r.exceptions, int64_t(count));
  EXPECT_EQ(r.recomputed, int64_t(count) > cap ? int64_t(count) : 0);
  EXPECT_FALSE(r.reencoded);
}

TEST(ApplySplit, ReproducesRealUpdates) {
  for (HostIsa isa : apply_isas()) {
    for (Dist d : {Dist::Gaussian, Dist::Rademacher})
      for (uint64_t sr : {uint64_t(0), uint64_t(99)})
        for (int nterms : {0, 1, 8}) {
          real_update(d, sr, nterms, 100011, Codes::Dense, isa);  // room for every exception
          real_update(d, sr, nterms, 200, Codes::Dense, isa);     // overflow: recomputed
          real_update(d, sr, nterms, 0, sr ? Codes::Packed : Codes::Dense, isa);
        }
    real_update(Dist::Gaussian, 5, 2, 100011, Codes::Packed, isa);
  }
}

TEST(ApplySplit, RejectsExceptionsOutsideTheRecipe) {
  std::vector<uint16_t> master(64, 0x3C00);
  std::vector<uint8_t> codes(16, 0);
  codes[1] = 3;   // element 4
  codes[10] = 3;  // element 40: no parameter
  SplitRecipe recipe;
  recipe.terms = step_terms(1);
  recipe.params.push_back({0, 32, 1, 1.0f});
  Split b(64, 8);
  ASSERT_TRUE(b.encode(master));
  const std::vector<DeltaEntry> none;
  ApplySplitDeltaArgs a = args(b, codes.data(), none, 2, 0);
  a.recipe = &recipe;
  try {
    apply_split_delta_host(a);
    ADD_FAILURE() << "no zoff::Error";
  } catch (const zoff::Error& e) {
    EXPECT_NE(std::string(e.what()).find("element 40"), std::string::npos) << e.what();
  }
  recipe.params.push_back({16, 32, 2, 1.0f});  // overlaps the first
  EXPECT_THROW(apply_split_delta_host(a), zoff::Error);
}

}  // namespace
}  // namespace zoff::k
