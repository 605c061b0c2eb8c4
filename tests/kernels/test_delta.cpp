// Delta write-back on the CPU: zo_update's codes and exception list (ref and host) and apply_delta's round trip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/delta.h"
#include "kernels/host/zo_host.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

std::vector<HostIsa> isas() {
  std::vector<HostIsa> v{HostIsa::Scalar};
  for (HostIsa i : {HostIsa::Avx2, HostIsa::Avx512})
    if (host_isa_supported(i)) v.push_back(i);
  return v;
}

const char* name(Elem e) { return e == Elem::F16 ? "f16" : "bf16"; }

const uint64_t kPid = param_id("model.decoder.layers.5.self_attn.v_proj.weight");
constexpr uint8_t kPoison = 0xA5;
constexpr uint16_t kNoOverflow = 0xFFFF;  // a NaN no input holds and no update produces here
constexpr int64_t kGuard = 16;            // poisoned code bytes on each side

// Masters like a trained layer's: uniform(-0.035, 0.035) as `e`, with zeros of both signs, tiny
// values (sign crossings), huge values (f16 overflow to inf), infinities and NaN sprinkled in.
std::vector<uint16_t> masters(Elem e, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ud(-0.035f, 0.035f);
  const float special[] = {0.0f, -0.0f, 1e-9f, -2e-8f, 3e-6f, 65504.0f, -65472.0f, 3e38f,
                           std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float f = ud(rng);
    if (rng() % 97 == 0) f = special[rng() % (sizeof special / sizeof special[0])];
    v[size_t(i)] = e == Elem::F16 ? ref::float_to_f16_rne(f) : ref::float_to_bf16_rne(f);
  }
  return v;
}

// Step sizes that leave ~65% of the elements unchanged, move ~26% by one step of their bits and
// the rest further (one ulp is ~2.4e-4 for bf16 and ~3e-5 for f16 at |x| = 0.035).
std::vector<ZTerm> step_terms(Elem e, int nterms) {
  const float c = e == Elem::BF16 ? 3e-5f : 4e-6f;
  std::vector<ZTerm> t;
  for (int k = 0; k < nterms; ++k) t.push_back({step_seed(17, 3, uint64_t(k)), (k % 2 ? -c : c) * (1.0f + 0.1f * float(k))});
  return t;
}

uint32_t code_at(const uint8_t* codes, int64_t i) { return (codes[i / 4] >> (2 * (i % 4))) & 3u; }

// One zo_update with a delta output, in buffers that show stray writes.
struct DeltaRun {
  std::vector<uint16_t> old, theta;
  std::vector<uint8_t> codes;         // kGuard + (n + 3) / 4 + kGuard bytes
  std::vector<DeltaEntry> list;       // capacity + 4 entries (the last 4 are guards)
  std::vector<uint16_t> overflow;     // n elements
  unsigned long long count = 0;
  int64_t n = 0, capacity = 0;
  uint8_t* code0() { return codes.data() + kGuard; }
  // Every exception as (index - index_base, bits), from the list and the overflow, sorted.
  std::vector<std::pair<uint32_t, uint16_t>> exceptions(int64_t index_base) const {
    std::vector<std::pair<uint32_t, uint16_t>> v;
    for (int64_t s = 0; s < std::min<int64_t>(int64_t(count), capacity); ++s)
      v.emplace_back(uint32_t(list[size_t(s)].index - index_base), list[size_t(s)].bits);
    for (int64_t i = 0; i < n; ++i)
      if (overflow[size_t(i)] != kNoOverflow) v.emplace_back(uint32_t(i), overflow[size_t(i)]);
    std::sort(v.begin(), v.end());
    return v;
  }
};

struct Case {
  Elem e = Elem::BF16;
  Dist d = Dist::Gaussian;
  uint64_t sr = 0;
  int64_t first = 0, n = 0;
  int nterms = 1;
  float decay = 0.0f;
  int64_t capacity = -1;  // -1: room for every element
  int64_t index_base = 0;
};

std::string describe(const Case& c) {
  return std::string(name(c.e)) + " dist " + std::to_string(int(c.d)) + " sr " + std::to_string(c.sr) +
         " first " + std::to_string(c.first) + " n " + std::to_string(c.n) + " nterms " + std::to_string(c.nterms) +
         " decay " + std::to_string(c.decay) + " capacity " + std::to_string(c.capacity) + " index_base " +
         std::to_string(c.index_base);
}

UpdateArgs update_args(const Case& c, void* theta, const std::vector<ZTerm>& terms) {
  UpdateArgs a{theta, c.e, c.n, kPid, c.d, terms.data(), c.nterms, c.decay, c.sr};
  a.first = c.first;
  return a;
}

// Runs ref::zo_update (isa == Ref) or zo_update_host with a delta output and checks the result
// against the definition: theta as without delta, every code delta_code(old, new), every
// exception exactly once in the list or (past capacity) in the overflow, nothing else written.
void run_checked(const Case& c, HostIsa isa, DeltaRun& r) {
  SCOPED_TRACE(describe(c) + " isa " + host_isa_name(isa));
  const std::vector<ZTerm> terms = step_terms(c.e, c.nterms);
  r.n = c.n;
  r.capacity = c.capacity < 0 ? c.n : c.capacity;
  r.old = masters(c.e, c.n, uint32_t(c.n * 7 + c.first + int64_t(c.e) + 13 * int64_t(c.d)));
  r.theta = r.old;
  std::vector<uint16_t> plain = r.old;
  ref::zo_update(update_args(c, plain.data(), terms));

  r.codes.assign(size_t(2 * kGuard + (c.n + 3) / 4), kPoison);  // the kernel writes every byte of its range
  r.list.resize(size_t(r.capacity + 4));
  std::memset(static_cast<void*>(r.list.data()), kPoison, r.list.size() * sizeof(DeltaEntry));
  r.overflow.assign(size_t(c.n), kNoOverflow);
  DeltaOut out{r.code0(), r.capacity ? r.list.data() : nullptr, r.capacity, &r.count, r.overflow.data(), c.index_base};
  UpdateArgs a = update_args(c, r.theta.data(), terms);
  a.delta = &out;
  if (isa == HostIsa::Ref) ref::zo_update(a);
  else zo_update_host(a, isa);

  EXPECT_EQ(std::memcmp(r.theta.data(), plain.data(), size_t(c.n) * 2), 0) << "theta differs from a plain update";
  for (int64_t g = 0; g < kGuard; ++g) {
    EXPECT_EQ(r.codes[size_t(g)], kPoison) << "code guard before, byte " << g;
    EXPECT_EQ(r.codes[r.codes.size() - 1 - size_t(g)], kPoison) << "code guard after, byte " << g;
  }
  int64_t exceptions = 0, wrong_codes = 0;
  int64_t seen[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < c.n; ++i) {
    const uint32_t want = delta_code(r.old[size_t(i)], r.theta[size_t(i)]), got = code_at(r.code0(), i);
    if (got != want && wrong_codes++ < 5) ADD_FAILURE() << "element " << i << ": code " << got << ", want " << want;
    exceptions += want == kDeltaException;
    ++seen[want];
  }
  for (int64_t i = c.n; i < 4 * ((c.n + 3) / 4); ++i) EXPECT_EQ(code_at(r.code0(), i), 0u) << "code past n, " << i;
  EXPECT_EQ(int64_t(r.count), exceptions);

  std::vector<uint8_t> listed(size_t(c.n), 0);
  const int64_t entries = std::min<int64_t>(int64_t(r.count), r.capacity);
  for (int64_t s = 0; s < entries; ++s) {
    const DeltaEntry& e = r.list[size_t(s)];
    const int64_t i = int64_t(e.index) - c.index_base;
    ASSERT_TRUE(i >= 0 && i < c.n) << "entry " << s << " index " << e.index;
    EXPECT_EQ(code_at(r.code0(), i), uint32_t(kDeltaException)) << "entry " << s << " for element " << i;
    EXPECT_EQ(listed[size_t(i)]++, 0) << "element " << i << " listed twice";
    EXPECT_EQ(e.bits, r.theta[size_t(i)]) << "entry " << s;
    EXPECT_EQ(e.reserved, 0) << "entry " << s;
  }
  for (size_t s = size_t(entries); s < r.list.size(); ++s) {
    const uint8_t* b = reinterpret_cast<const uint8_t*>(&r.list[s]);
    EXPECT_TRUE(std::all_of(b, b + sizeof(DeltaEntry), [](uint8_t x) { return x == kPoison; })) << "list slot " << s;
  }
  int64_t overflowed = 0;
  for (int64_t i = 0; i < c.n; ++i) {
    const bool exc = code_at(r.code0(), i) == kDeltaException && !listed[size_t(i)];
    overflowed += exc;
    EXPECT_EQ(r.overflow[size_t(i)], exc ? r.theta[size_t(i)] : kNoOverflow) << "overflow of element " << i;
  }
  EXPECT_EQ(overflowed, int64_t(r.count) - entries);
  // The step sizes must exercise every code (and, on large blocks, a real mix of them).
  if (c.n >= 4097 && c.nterms > 0) {
    for (int k = 0; k < 4; ++k) EXPECT_GT(seen[k] * 100, c.n) << "code " << k << " on " << seen[k] << " elements";
  }
}

std::vector<Case> update_cases() {
  std::vector<Case> v;
  for (Elem e : {Elem::BF16, Elem::F16})
    for (Dist d : {Dist::Gaussian, Dist::Rademacher})
      for (uint64_t sr : {uint64_t(0), uint64_t(77)})
        for (int64_t n : {1, 7, 4097, 100003}) {
          Case c;
          c.e = e, c.d = d, c.sr = sr, c.n = n;
          v.push_back(c);
          if (n != 4097) continue;
          c.first = 8;  // a piece of a split tensor
          c.index_base = 4100;
          v.push_back(c);
          c.first = 1024 * 37 + 4, c.nterms = 8, c.decay = 0.001f, c.index_base = 0;
          v.push_back(c);
          c.nterms = 0;  // decay only
          v.push_back(c);
        }
  Case o;  // past capacity: the overflow path
  o.n = 100003, o.capacity = 500;
  v.push_back(o);
  o.e = Elem::F16, o.d = Dist::Rademacher, o.sr = 5, o.first = 4096 + 12;
  v.push_back(o);
  o.capacity = 0;  // every exception to the overflow
  v.push_back(o);
  o.e = Elem::BF16, o.first = 0, o.n = 7;
  v.push_back(o);
  return v;
}

TEST(DeltaUpdateRef, CodesAndExceptionsMatchTheChange) {
  for (const Case& c : update_cases()) {
    DeltaRun r;
    run_checked(c, HostIsa::Ref, r);
    if (HasFatalFailure()) return;
  }
}

TEST(DeltaUpdateHost, MatchesRefForEveryIsa) {
  for (HostIsa isa : isas())
    for (const Case& c : update_cases()) {
      SCOPED_TRACE(describe(c) + " isa " + host_isa_name(isa));
      DeltaRun want, got;
      run_checked(c, HostIsa::Ref, want);
      run_checked(c, isa, got);
      if (HasFatalFailure()) return;
      ASSERT_EQ(got.theta, want.theta);
      ASSERT_EQ(got.codes, want.codes);
      ASSERT_EQ(got.count, want.count);
      ASSERT_EQ(got.exceptions(c.index_base), want.exceptions(c.index_base));
      if (int64_t(want.count) <= want.capacity) {
        ASSERT_EQ(got.overflow, want.overflow);
      }
    }
}

TEST(DeltaUpdate, NoopWritesNothing) {
  for (HostIsa isa : {HostIsa::Ref, HostIsa::Scalar, isas().back()}) {
    std::vector<uint16_t> theta = masters(Elem::BF16, 100, 1), before = theta, overflow(100, kNoOverflow);
    std::vector<uint8_t> codes(25, kPoison);
    DeltaEntry list[4];
    unsigned long long count = 0;
    DeltaOut out{codes.data(), list, 4, &count, overflow.data(), 0};
    UpdateArgs a{theta.data(), Elem::BF16, 100, kPid, Dist::Gaussian, nullptr, 0, 0.0f, 3};
    a.delta = &out;
    zo_update_host(a, isa);
    EXPECT_EQ(theta, before);
    EXPECT_EQ(codes, std::vector<uint8_t>(25, kPoison));
    EXPECT_EQ(count, 0u);
  }
}

// master := old (the overflow points into it), the update runs on a separate slot copy, then
// apply_delta(master) == slot bit for bit and the codes are zero again. The block is updated as
// two pieces (first, index_base and the delta pointers advanced) sharing one list and count.
void check_round_trip(Elem e, int64_t n, int64_t capacity, HostIsa update_isa, HostIsa apply_isa) {
  SCOPED_TRACE(testing::Message() << name(e) << " n " << n << " capacity " << capacity << " update "
                                  << host_isa_name(update_isa) << " apply " << host_isa_name(apply_isa));
  std::vector<uint16_t> master = masters(e, n, uint32_t(n + capacity)), slot = master;
  std::vector<uint8_t> codes(size_t((n + 3) / 4), 0);
  std::vector<DeltaEntry> list(size_t(std::max<int64_t>(capacity, 1)));
  unsigned long long count = 0;
  const std::vector<ZTerm> terms = step_terms(e, 2);
  const int64_t split = (n / 3) & ~int64_t(3);
  for (auto [lo, hi] : {std::pair<int64_t, int64_t>{0, split}, {split, n}}) {
    DeltaOut out{codes.data() + lo / 4, list.data(), capacity, &count, master.data() + lo, lo};
    UpdateArgs a{slot.data() + lo, e, hi - lo, kPid, Dist::Gaussian, terms.data(), 2, 0.0f, 99};
    a.first = lo;
    a.delta = &out;
    zo_update_host(a, update_isa);
  }
  if (n >= 4097) {
    EXPECT_GT(count, 0u) << "no exception path exercised";
  }
  apply_delta_host({master.data(), codes.data(), n, list.data(), std::min<int64_t>(int64_t(count), capacity)},
                   apply_isa);
  EXPECT_EQ(master, slot);
  EXPECT_TRUE(std::all_of(codes.begin(), codes.end(), [](uint8_t b) { return b == 0; }));
}

TEST(ApplyDelta, RoundTripReproducesTheUpdate) {
  std::vector<HostIsa> apply = isas();
  apply.push_back(HostIsa::Ref);
  apply.push_back(HostIsa::Auto);
  for (HostIsa ai : apply)
    for (Elem e : {Elem::BF16, Elem::F16})
      for (int64_t n : {13, 33, 4097, 100003, 1000037})
        for (int64_t cap : {n, n / 100, int64_t(0)}) check_round_trip(e, n, cap, isas().back(), ai);
  check_round_trip(Elem::BF16, 100003, 1000, HostIsa::Ref, HostIsa::Ref);
  check_round_trip(Elem::F16, 100003, 1000, HostIsa::Scalar, HostIsa::Scalar);
}

// Random codes (wraparound at 0 and 0xFFFF included) against a naive loop, every path, sizes
// around the 32-element code words.
TEST(ApplyDelta, MatchesNaiveOnRandomCodes) {
  std::vector<HostIsa> paths = isas();
  paths.push_back(HostIsa::Ref);
  for (HostIsa isa : paths)
    for (int64_t n : {0, 1, 3, 31, 32, 33, 64, 95, 4096, 65536 + 7, 300001}) {
      SCOPED_TRACE(testing::Message() << host_isa_name(isa) << " n " << n);
      std::mt19937 rng{uint32_t(n)};
      std::vector<uint16_t> master(size_t(n) + 8, 0x5A5A);  // 8 guard elements
      std::vector<uint8_t> codes(size_t((n + 3) / 4) + 8, 0);
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t r = rng();
        master[size_t(i)] = r % 5 == 0 ? 0xFFFF : r % 5 == 1 ? 0 : uint16_t(r >> 16);
        const uint32_t c = (r >> 3) % 8 < 5 ? 0 : (r >> 3) % 8 - 4;  // 5/8 zero, then 1, 2, 3
        codes[size_t(i / 4)] |= uint8_t(c << (2 * (i % 4)));
      }
      if (n > 4096) std::memset(codes.data() + 64, 0, 256);  // some all-zero code words
      std::vector<uint16_t> want = master;
      std::vector<DeltaEntry> list;
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t c = code_at(codes.data(), i);
        if (c == kDeltaUp) ++want[size_t(i)];
        if (c == kDeltaDown) --want[size_t(i)];
        if (c == kDeltaException) {
          list.push_back({uint32_t(i), uint16_t(rng()), 0});
          want[size_t(i)] = list.back().bits;
        }
      }
      std::shuffle(list.begin(), list.end(), rng);  // unique indices: the order does not matter
      // keep_codes: the same master, the codes untouched.
      std::vector<uint16_t> kept_master = master;
      const std::vector<uint8_t> kept_codes = codes;
      std::vector<uint8_t> codes_copy = codes;
      ApplyDeltaArgs keep{kept_master.data(), codes_copy.data(), n, list.data(), int64_t(list.size())};
      keep.keep_codes = true;
      apply_delta_host(keep, isa);
      ASSERT_EQ(kept_master, want);
      ASSERT_EQ(codes_copy, kept_codes);
      // Packed codes (Note [Packed codes]): the same master, the packed words untouched.
      {
        std::vector<uint16_t> m = master;
        std::vector<uint32_t> bitmap(size_t(pack_bitmap_words(n)));
        std::vector<uint64_t> packed(size_t(pack_code_words(n)) + 1);
        unsigned long long count = 0;
        ref::pack_codes({codes.data(), n, bitmap.data(), packed.data(), &count, nullptr});
        const std::vector<uint64_t> packed0 = packed;
        ApplyDeltaArgs pa{m.data(), reinterpret_cast<uint8_t*>(packed.data()), n, list.data(), int64_t(list.size())};
        pa.bitmap = bitmap.data();
        pa.packed_count = int64_t(count);
        apply_delta_host(pa, isa);
        ASSERT_EQ(m, want) << "packed codes";
        ASSERT_EQ(packed, packed0);
      }
      apply_delta_host({master.data(), codes.data(), n, list.data(), int64_t(list.size())}, isa);
      ASSERT_EQ(master, want);
      ASSERT_TRUE(std::all_of(codes.begin(), codes.end(), [](uint8_t b) { return b == 0; }));
    }
}

TEST(ApplyDelta, ExceptionsComeFromTheList) {
  // Codes 0 and 3 leave the master alone; the list is applied after the codes.
  for (HostIsa isa : {HostIsa::Ref, HostIsa::Scalar, isas().back()}) {
    std::vector<uint16_t> master = {10, 20, 30, 40, 50};
    std::vector<uint8_t> codes = {uint8_t(1 | 2 << 2 | 3 << 4 | 0 << 6), 3};
    const DeltaEntry list[] = {{2, 7, 0}, {4, 9, 0}};
    apply_delta_host({master.data(), codes.data(), 5, list, 2}, isa);
    EXPECT_EQ(master, (std::vector<uint16_t>{11, 19, 7, 40, 9})) << host_isa_name(isa);
    EXPECT_EQ(codes, (std::vector<uint8_t>{0, 0}));
  }
}

template <typename F>
void expect_error_naming(F&& fn, const std::string& what) {
  try {
    fn();
    ADD_FAILURE() << "no zoff::Error (expected one naming " << what << ")";
  } catch (const zoff::Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(DeltaUpdate, RejectsBadArguments) {
  std::vector<uint16_t> theta(64, 0x3C00), overflow(64);
  std::vector<float> f32(64, 1.0f);
  std::vector<uint8_t> codes(16, 0);
  DeltaEntry list[8];
  unsigned long long count = 0;
  const std::vector<ZTerm> terms = step_terms(Elem::BF16, 9);
  DeltaOut out{codes.data(), list, 8, &count, overflow.data(), 0};
  for (HostIsa isa : {HostIsa::Ref, HostIsa::Scalar, isas().back()}) {
    auto run = [&](UpdateArgs a) { zo_update_host(a, isa); };
    UpdateArgs ok{theta.data(), Elem::BF16, 60, kPid, Dist::Gaussian, terms.data(), 1, 0.0f, 0};
    ok.delta = &out;
    run(ok);
    UpdateArgs a = ok;
    a.theta = f32.data(), a.elem = Elem::F32;
    EXPECT_THROW(run(a), zoff::Error) << "F32 theta";
    a = ok, a.nterms = kMaxTerms + 1;
    EXPECT_THROW(run(a), zoff::Error) << "nterms > kMaxTerms";
    a = ok, a.first = 2;
    EXPECT_THROW(run(a), zoff::Error) << "first % 4 != 0";
    DeltaOut bad = out;
    bad.index_base = 6;
    a = ok, a.delta = &bad;
    EXPECT_THROW(run(a), zoff::Error) << "index_base % 4 != 0";
    bad = out, bad.codes = nullptr;
    EXPECT_THROW(run(a), zoff::Error) << "null codes";
    bad = out, bad.count = nullptr;
    EXPECT_THROW(run(a), zoff::Error) << "null count";
    bad = out, bad.overflow = nullptr;
    EXPECT_THROW(run(a), zoff::Error) << "null overflow";
    bad = out, bad.list = nullptr;
    EXPECT_THROW(run(a), zoff::Error) << "null list with capacity";
    bad = out, bad.index_base = int64_t(0xFFFFFFF0ll);
    EXPECT_THROW(run(a), zoff::Error) << "indices past 32 bits";
  }
}

TEST(ApplyDelta, RejectsBadArguments) {
  std::vector<uint16_t> master(40, 0);
  std::vector<uint8_t> codes(10, 0);
  const DeltaEntry list[] = {{3, 1, 0}, {40, 2, 0}};
  for (HostIsa isa : {HostIsa::Ref, HostIsa::Scalar, isas().back()}) {
    const std::string fn = isa == HostIsa::Ref ? "apply_delta" : "apply_delta_host";
    expect_error_naming([&] { apply_delta_host({nullptr, codes.data(), 40, list, 1}, isa); }, fn);
    expect_error_naming([&] { apply_delta_host({master.data(), nullptr, 40, list, 1}, isa); }, fn);
    expect_error_naming([&] { apply_delta_host({master.data(), codes.data(), -1, list, 0}, isa); }, fn);
    expect_error_naming([&] { apply_delta_host({master.data(), codes.data(), 40, list, -1}, isa); }, fn);
    expect_error_naming([&] { apply_delta_host({master.data(), codes.data(), 40, nullptr, 1}, isa); }, fn);
    expect_error_naming([&] { apply_delta_host({master.data(), codes.data(), 40, list, 2}, isa); }, "index 40");
    apply_delta_host({nullptr, nullptr, 0, nullptr, 0}, isa);  // an empty block is fine
  }
}

}  // namespace
}  // namespace zoff::k
