// Bandwidth of the ZO kernels (GPU and oneTBB host), next to a device-to-device copy measured in the same run.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <sys/mman.h>

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "kernels/fp8_site.h"
#include "kernels/split16.h"
#include "kernels/host/zo_host.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"

#if defined(ZOFF_KERNELS_CUDA)
#include <cuda_runtime.h>
#endif

// Note [Kernel bandwidth]
// Every number is bytes that must move (each input read once, each output written once) over the
// time the device took, from CUDA events around each iteration: zo_update moves 2 * n * sizeof(theta),
// zo_perturb n * (sizeof(src) + sizeof(out)), pack_fp8 n * (sizeof(src) + 1), the D2D copy 2 * bytes.
// Counters: GB/s (1e9 bytes per second) and of_d2d, that figure over the cudaMemcpy
// device-to-device bandwidth measured once at start-up on a 1 GiB buffer (median of 20). Buffers are
// far larger than the 50 MB L2. Google Benchmark's own rate counters divide by CPU time, which
// says nothing about asynchronous GPU work, hence the manual counters.

namespace zoff::k {
namespace {

void set_rate(benchmark::State& st, double bytes_per_iter, double seconds, double d2d_gbps) {
  const double gbps = bytes_per_iter * double(st.iterations()) / seconds / 1e9;
  st.counters["GB/s"] = gbps;
  if (d2d_gbps > 0) st.counters["of_d2d"] = gbps / d2d_gbps;
}

std::vector<uint8_t> random_bits(Elem e, int64_t n) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<uint8_t> v(size_t(n) * elem_size(e));
  for (int64_t i = 0; i < n; ++i) {
    float f = nd(rng);
    if (e == Elem::F32) reinterpret_cast<float*>(v.data())[i] = f;
    else if (e == Elem::BF16) reinterpret_cast<uint16_t*>(v.data())[i] = ref::float_to_bf16_rne(f);
    else if (e == Elem::F16) reinterpret_cast<uint16_t*>(v.data())[i] = ref::float_to_f16_rne(f);
    else v[size_t(i)] = ref::float_to_e4m3_rne(f * 60.0f);
  }
  return v;
}

// ---- host (oneTBB) ----
// Note [Host kernel bandwidth]
// impl is a HostIsa (kernels/host/zo_host.h): 4 = ref (kernels/ref), 1 = scalar, 2 = avx2,
// 3 = avx512 (the SIMD paths of kernels/host); a path the CPU lacks is skipped with an error.
// GB/s counts the bytes that move (Note [Kernel bandwidth]) over wall time; GB/s_core counts them
// over the CPU time of the whole process (all oneTBB workers), so it is the per-core rate even on a
// machine shared with other work (where wall-time GB/s drops).

bool skip_isa(benchmark::State& st, HostIsa isa) {
  if (host_isa_supported(isa)) return false;
  st.SkipWithError("this CPU lacks the instruction set");
  return true;
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Wall and process-CPU seconds of the timed regions of one benchmark.
struct HostClock {
  double wall = 0, cpu = 0;
  template <typename F>
  double time(F&& fn) {  // the call's wall seconds (for SetIterationTime)
    const double c0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    wall += dt;
    cpu += process_cpu_seconds() - c0;
    return dt;
  }
};

void set_host_rate(benchmark::State& st, double bytes_per_iter, const HostClock& c) {
  set_rate(st, bytes_per_iter, c.wall, 0);
  st.counters["GB/s_core"] = bytes_per_iter * double(st.iterations()) / c.cpu / 1e9;
  st.counters["threads"] = double(tbb::this_task_arena::max_concurrency());
}

void BM_PackFp8Host(benchmark::State& st) {
  const Elem e = Elem(st.range(0));
  const HostIsa isa = HostIsa(st.range(1));
  if (skip_isa(st, isa)) return;
  const int64_t rows = 2048, cols = 4096, n = rows * cols;
  std::vector<uint8_t> src = random_bits(e, n), dst(static_cast<size_t>(n));
  std::vector<float> scales(static_cast<size_t>(rows));
  HostClock clock;
  for (auto _ : st) {
    clock.time([&] { pack_fp8_rows_host({src.data(), e, rows, cols, dst.data(), scales.data()}, isa); });
    benchmark::DoNotOptimize(dst.data());
  }
  set_host_rate(st, double(n) * (elem_size(e) + 1), clock);
}
BENCHMARK(BM_PackFp8Host)
    ->ArgNames({"elem", "impl"})
    ->ArgsProduct({{int(Elem::F32), int(Elem::BF16)}, {int(HostIsa::Ref), int(HostIsa::Avx2), int(HostIsa::Avx512)}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ZoUpdateHost(benchmark::State& st) {
  const Elem e = Elem(st.range(0));
  const Dist d = Dist(st.range(1));
  const uint64_t sr = st.range(2) ? 77 : 0;
  const HostIsa isa = HostIsa(st.range(3));
  if (skip_isa(st, isa)) return;
  const int64_t n = int64_t(1) << 23;
  std::vector<uint8_t> theta = random_bits(e, n);
  ZTerm t{step_seed(1, 2, 3), 1e-3f};
  HostClock clock;
  for (auto _ : st) clock.time([&] { zo_update_host({theta.data(), e, n, 42, d, &t, 1, 0.0f, sr}, isa); });
  set_host_rate(st, double(n) * 2 * elem_size(e), clock);
}
void host_update_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"elem", "dist", "sr", "impl"});
  for (int impl : {int(HostIsa::Ref), int(HostIsa::Scalar), int(HostIsa::Avx2), int(HostIsa::Avx512)})
    for (int d : {int(Dist::Gaussian), int(Dist::Rademacher)}) {
      b->Args({int(Elem::F32), d, 0, impl});
      b->Args({int(Elem::BF16), d, 0, impl});
      b->Args({int(Elem::BF16), d, 1, impl});
    }
}
BENCHMARK(BM_ZoUpdateHost)->Apply(host_update_args)->Unit(benchmark::kMillisecond)->UseRealTime();

// The offload layer's host cast (block_store: f32 master -> bf16 copy, a perturbation with no terms)
// and MeZO's mirror perturbation (f32 -> two bf16 copies from one Gaussian term).
void BM_ZoPerturbHost(benchmark::State& st) {
  const int nterms = int(st.range(0));
  const bool mirror = st.range(1) != 0;
  const HostIsa isa = HostIsa(st.range(2));
  if (skip_isa(st, isa)) return;
  const int64_t n = int64_t(1) << 23;
  std::vector<uint8_t> src = random_bits(Elem::F32, n), out(size_t(n) * 2), out2(size_t(n) * 2);
  ZTerm t{step_seed(1, 2, 3), 1e-3f};
  PerturbArgs a{out.data(), Elem::BF16, src.data(), Elem::F32, nullptr, 0, n, 42, Dist::Gaussian, &t, nterms};
  a.out2 = mirror ? out2.data() : nullptr;
  HostClock clock;
  for (auto _ : st) {
    clock.time([&] { zo_perturb_host(a, isa); });
    benchmark::DoNotOptimize(out.data());
  }
  set_host_rate(st, double(n) * (4 + 2 + (mirror ? 2 : 0)), clock);
}
BENCHMARK(BM_ZoPerturbHost)
    ->ArgNames({"nterms", "mirror", "impl"})
    ->ArgsProduct({{0}, {0}, {int(HostIsa::Ref), int(HostIsa::Avx2), int(HostIsa::Avx512)}})
    ->ArgsProduct({{1}, {1}, {int(HostIsa::Ref), int(HostIsa::Avx2), int(HostIsa::Avx512)}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Note [apply_delta bandwidth]
// apply_delta_host (Note [Host apply_delta]) on a 64 Mi-element bf16 block with mix 1, a step's
// realistic codes (2.5% +1, 2.5% -1, 1% exceptions listed, the rest unchanged), or mix 0, all codes
// zero (a block the update did not move). The codes are consumed, so each iteration first restores
// them (untimed). GB/s counts the bytes that must move: every code byte read, and for each nonzero
// 8-byte code word its 32 masters read and written and the word zeroed, plus the list (8 bytes an
// entry, and its masters written); Gelem/s is block elements per second (wall time).
void BM_ApplyDeltaHost(benchmark::State& st) {
  const int mix = int(st.range(0));
  const HostIsa isa = HostIsa(st.range(1));
  if (skip_isa(st, isa)) return;
  const int64_t n = int64_t(64) << 20;
  std::vector<uint8_t> master_bytes = random_bits(Elem::BF16, n);
  uint16_t* master = reinterpret_cast<uint16_t*>(master_bytes.data());
  std::vector<uint8_t> codes(size_t(n / 4), 0), saved;
  std::vector<DeltaEntry> list;
  if (mix == 1) {
    std::mt19937 rng(11);
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t r = rng() % 1000;  // 25 up, 25 down, 10 exceptions in 1000
      const uint32_t c = r < 25 ? kDeltaUp : r < 50 ? kDeltaDown : r < 60 ? kDeltaException : kDeltaSame;
      codes[size_t(i / 4)] |= uint8_t(c << (2 * (i % 4)));
      if (c == kDeltaException) list.push_back({uint32_t(i), uint16_t(rng()), 0});
    }
  }
  saved = codes;
  int64_t live_words = 0;
  for (int64_t w = 0; w < n / 32; ++w) {
    uint64_t cw;
    std::memcpy(&cw, codes.data() + 8 * w, 8);
    live_words += cw != 0;
  }
  const ApplyDeltaArgs a{master, codes.data(), n, list.data(), int64_t(list.size())};
  HostClock clock;
  for (auto _ : st) {
    std::memcpy(codes.data(), saved.data(), saved.size());
    st.SetIterationTime(clock.time([&] { apply_delta_host(a, isa); }));
    benchmark::DoNotOptimize(master);
  }
  set_host_rate(st, double(n / 4) + double(live_words) * (32 * 2 * 2 + 8) + double(list.size()) * (8 + 2), clock);
  st.counters["Gelem/s"] = double(n) * double(st.iterations()) / clock.wall / 1e9;
  st.counters["live_words"] = double(live_words) / double(n / 32);
}
BENCHMARK(BM_ApplyDeltaHost)
    ->ArgNames({"mix", "impl"})
    ->ArgsProduct({{0, 1}, {int(HostIsa::Ref), int(HostIsa::Scalar), int(HostIsa::Avx2), int(HostIsa::Avx512)}})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

// Note [fp8-site apply bench]
// apply_fp8_delta_host (Note [Host fp8-site apply]) beside apply_delta_host, on the rates the H200
// bench_step measured for fp8 at the GPU site (docs/results.md, session 9): one OPT-13B block's
// elements (314.6 M bf16, rows of 5120; every 64th row all zero, as dummy weights' biases), so the
// masters (629 MB, in huge pages) outgrow the H200 host's 300 MB L3 as they do in the step; codes
// with 0.5% +1, 0.5% -1 and 0.15% exceptions, the list in the device's order
// (shuffle_in_windows). impl 0: fp8 apply (the widest vector word the CPU has), 1: its portable
// word loop, 3: its AVX2 word, 4: impl 0 with the list in its own order instead of by word range
// (Note [Exceptions by range]), 2: the bf16 apply of the same codes and list (8-byte entries),
// 5 and 6: impl 0 and 2 reading packed codes (Note [Packed codes] in kernels/delta.h; counter
// code_bytes: what the codes cost the host's memory per read, bitmap included).
// threads 1 or 0 (the whole machine). The codes are not consumed, but the masters drift; each
// iteration restores them and the fp8 copy (untimed). Gelem/s is block elements per second (wall
// time). The block is built once for all runs. (Sessions 9-10 shuffled the whole list.)

// Anonymous memory advised to transparent huge pages, as the block store maps its masters
// (offload/host_memory.cpp): with 4 KiB pages every list entry would also miss the TLB.
template <typename T>
struct HugeArray {
  T* p = nullptr;
  size_t n = 0;
  explicit HugeArray(size_t count) : n(count) {
    void* m = mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    (void)madvise(m, n * sizeof(T), MADV_HUGEPAGE);
#endif
    p = static_cast<T*>(m);
  }
  ~HugeArray() { munmap(p, n * sizeof(T)); }
  HugeArray(const HugeArray&) = delete;
  HugeArray& operator=(const HugeArray&) = delete;
  T* data() { return p; }
  T& operator[](size_t i) { return p[i]; }
  size_t size() const { return n; }
};

// The device's append order (kernels/fp8_site.cu: a grid-stride loop whose resident grid covers
// about 2 M elements at a time): ascending window by window, in no order within a window. The
// entries are made in index order; each window of 2^21 elements is shuffled.
template <typename Entry>
void shuffle_in_windows(std::vector<Entry>& list, std::mt19937_64& rng) {
  size_t b = 0;
  while (b < list.size()) {
    size_t e = b;
    while (e < list.size() && (list[e].index >> 21) == (list[b].index >> 21)) ++e;
    std::shuffle(list.begin() + std::ptrdiff_t(b), list.begin() + std::ptrdiff_t(e), rng);
    b = e;
  }
}

struct Fp8ApplyBlock {
  static constexpr int64_t cols = 5120, rows = 61440, n = cols * rows;
  HugeArray<uint16_t> master{size_t(n)}, saved_master{size_t(n)};
  HugeArray<uint8_t> q{size_t(n)}, saved_q{size_t(n)};
  std::vector<uint8_t> codes;
  std::vector<float> scales, saved_scales;
  std::vector<int64_t> row_start;
  std::vector<Fp8RowSegment> segs;
  std::vector<Fp8Entry> list;
  std::vector<DeltaEntry> list16;
  std::vector<uint32_t> bitmap;  // the codes packed (Note [Packed codes])
  std::vector<uint64_t> packed;
  unsigned long long packed_count = 0;
  Fp8ApplyBlock() {
    const size_t N = static_cast<size_t>(n);
    codes.assign(N / 4, 0);
    scales.resize(static_cast<size_t>(rows));
    row_start.resize(static_cast<size_t>(rows) + 1);
    std::mt19937_64 rng(12);
    for (int64_t i = 0; i < n; i += 2) {  // two uniforms in (-0.0346, 0.0346) per 64-bit draw
      const uint64_t r = rng();
      for (int h = 0; h < 2; ++h) {
        const float x = (float(uint32_t(r >> (32 * h)) >> 8) * (1.0f / 16777216.0f) - 0.5f) * 0.0692f;
        master[size_t(i + h)] = (i / cols) % 64 == 5 ? 0 : ref::float_to_bf16_rne(x);
      }
    }
    for (int64_t r = 0; r <= rows; ++r) row_start[size_t(r)] = r * cols;
    ref::pack_fp8_exact(master.data(), rows, cols, q.data(), scales.data());
    segs = fp8_row_segments(row_start.data(), rows);
    for (int64_t i = 0; i < n; ++i) {
      if (master[size_t(i)] == 0) continue;
      const uint64_t r = rng() % 2000;  // 10 up, 10 down, 3 exceptions in 2000
      if (r >= 23) continue;
      const uint32_t c = r < 10 ? kDeltaUp : r < 20 ? kDeltaDown : kDeltaException;
      codes[size_t(i / 4)] |= uint8_t(c << (2 * (i % 4)));
      if (c == kDeltaException) {
        list.push_back({uint32_t(i), uint32_t(rng() & 0xFFFFu), 3e-6f, 0u});
        list16.push_back({uint32_t(i), uint16_t(master[size_t(i)] + 1u), 0});
      }
    }
    shuffle_in_windows(list, rng);
    shuffle_in_windows(list16, rng);
    bitmap.resize(size_t(pack_bitmap_words(n)));
    packed.resize(size_t(pack_code_words(n)));
    ref::pack_codes({codes.data(), n, bitmap.data(), packed.data(), &packed_count, nullptr});
    packed.resize(size_t(packed_count));
    std::memcpy(saved_master.data(), master.data(), N * 2);
    std::memcpy(saved_q.data(), q.data(), N);
    saved_scales = scales;
  }
};

void BM_ApplyFp8DeltaHost(benchmark::State& st) {
  const int impl = int(st.range(0));
  const int threads = int(st.range(1));  // 0: the whole machine
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
  if (impl == 3 && !fp8_word_path_supported(Fp8WordPath::Avx2)) {
    st.SkipWithError("no AVX2");
    return;
  }
  static Fp8ApplyBlock blk;
  const int64_t n = blk.n;
  HostClock clock;
  for (auto _ : st) {
    std::memcpy(blk.master.data(), blk.saved_master.data(), blk.master.size() * 2);
    std::memcpy(blk.q.data(), blk.saved_q.data(), blk.q.size());
    blk.scales = blk.saved_scales;
    const bool packed = impl == 5 || impl == 6;
    if (impl == 2 || impl == 6) {
      ApplyDeltaArgs a{blk.master.data(), blk.codes.data(), n, blk.list16.data(), int64_t(blk.list16.size())};
      a.keep_codes = true;
      if (packed) {
        a.codes = reinterpret_cast<uint8_t*>(blk.packed.data());
        a.bitmap = blk.bitmap.data();
        a.packed_count = int64_t(blk.packed_count);
      }
      st.SetIterationTime(clock.time([&] { arena.execute([&] { apply_delta_host(a); }); }));
    } else {
      ApplyFp8DeltaArgs a{};
      a.master = blk.master.data();
      a.codes = blk.codes.data();
      a.n = n;
      a.list = blk.list.data();
      a.count = a.capacity = int64_t(blk.list.size());
      a.copy = Fp8Copy{blk.q.data(), blk.scales.data(), blk.row_start.data(), blk.rows, blk.segs.data(),
                       int(blk.segs.size())};
      a.path = impl == 1 ? Fp8WordPath::Portable : impl == 3 ? Fp8WordPath::Avx2 : Fp8WordPath::Auto;
      a.list_by_range = impl != 4;
      if (packed) {
        a.codes = reinterpret_cast<const uint8_t*>(blk.packed.data());
        a.bitmap = blk.bitmap.data();
        a.packed_count = int64_t(blk.packed_count);
      }
      st.SetIterationTime(clock.time([&] { arena.execute([&] { apply_fp8_delta_host(a); }); }));
    }
    benchmark::DoNotOptimize(blk.master.data());
  }
  st.counters["Gelem/s"] = double(n) * double(st.iterations()) / clock.wall / 1e9;
  st.counters["Gelem/s_core"] = double(n) * double(st.iterations()) / clock.cpu / 1e9;
  st.counters["entries"] = double(blk.list.size());
  st.counters["threads"] = double(arena.max_concurrency());
  st.counters["code_bytes"] = impl == 5 || impl == 6 ? double(8 * blk.packed_count + 4 * blk.bitmap.size())
                                                     : double(blk.codes.size());
}
BENCHMARK(BM_ApplyFp8DeltaHost)->ArgNames({"impl", "threads"})->ArgsProduct({{0, 1, 2, 3, 4, 5, 6}, {1, 0}})->Unit(benchmark::kMillisecond)->UseManualTime();

// Note [Split apply bench]
// apply_split_delta_host (Note [Split bf16] in kernels/split16.h) beside apply_delta_host on
// Fp8ApplyBlock's block, codes (packed) and 8-byte list: impl 0 is the bf16 apply (as
// BM_ApplyFp8DeltaHost impl 6), impl 1 the same change applied to the block encoded split (the
// AVX2 words where the CPU has them, Note [Split apply lanes]), impl 2 the same on the scalar
// element path; impl 3 and 4 apply the list alone (every code zero), split and bf16: the
// exception pass, which dominates steps with large updates (session 19). The split apply touches the low-byte plane (1 byte per element, so a 64-byte line
// holds 64 elements instead of 32) and a nibble where a change carries. Each iteration restores
// the master, or the planes and escape list, untimed: the reported time is the apply's alone
// (UseManualTime; until session 18 this bench and the other restoring host applies used real time,
// whose Time column counted the restore too, so only their Gelem/s was the apply's).
// threads 1 or 0 (the whole machine).
void BM_ApplySplitDeltaHost(benchmark::State& st) {
  const int impl = int(st.range(0));
  const int threads = int(st.range(1));
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
  static Fp8ApplyBlock blk;
  const int64_t n = blk.n;
  static HugeArray<uint8_t> planes(size_t(split_bytes(n))), saved_planes(size_t(split_bytes(n)));
  static std::vector<SplitEscape> esc(size_t(split_escape_capacity(n))), saved_esc;
  static int64_t saved_count = -1;
  if (saved_count < 0) {
    SplitEscapes e{esc.data(), 0, int64_t(esc.size())};
    if (!ref::split16_encode(blk.saved_master.data(), split_planes(saved_planes.data(), n), &e)) {
      st.SkipWithError("block does not fit its escape capacity");
      return;
    }
    saved_esc.assign(esc.begin(), esc.begin() + e.count);
    saved_count = e.count;
  }
  SplitApplyScratch scratch;
  SplitRecipe recipe;
  HostClock clock;
  // impl 3 and 4: the list alone (no code is nonzero), split and bf16 (Note [Split list prefetch]).
  static const std::vector<uint32_t> no_codes(blk.bitmap.size(), 0u);
  static uint64_t no_word = 0;
  const bool list_only = impl >= 3;
  const uint32_t* bitmap = list_only ? no_codes.data() : blk.bitmap.data();
  uint8_t* packed = list_only ? reinterpret_cast<uint8_t*>(&no_word) : reinterpret_cast<uint8_t*>(blk.packed.data());
  const int64_t packed_count = list_only ? 0 : int64_t(blk.packed_count);
  for (auto _ : st) {
    if (impl == 0 || impl == 4) {
      std::memcpy(blk.master.data(), blk.saved_master.data(), blk.master.size() * 2);
      ApplyDeltaArgs a{blk.master.data(), packed, n, blk.list16.data(), int64_t(blk.list16.size())};
      a.keep_codes = true;
      a.bitmap = bitmap;
      a.packed_count = packed_count;
      st.SetIterationTime(clock.time([&] { arena.execute([&] { apply_delta_host(a); }); }));
      benchmark::DoNotOptimize(blk.master.data());
    } else {
      std::memcpy(planes.data(), saved_planes.data(), planes.size());
      std::copy(saved_esc.begin(), saved_esc.end(), esc.begin());
      SplitEscapes e{esc.data(), saved_count, int64_t(esc.size())};
      ApplySplitDeltaArgs a{};
      a.planes = split_planes(planes.data(), n);
      a.escapes = &e;
      a.codes = packed;
      a.keep_codes = true;
      a.bitmap = bitmap;
      a.packed_count = packed_count;
      a.list = blk.list16.data();
      a.count = a.capacity = int64_t(blk.list16.size());
      a.recipe = &recipe;
      a.scratch = &scratch;
      const HostIsa isa = impl == 2 ? HostIsa::Scalar : HostIsa::Auto;
      st.SetIterationTime(clock.time([&] { arena.execute([&] { apply_split_delta_host(a, isa); }); }));
      benchmark::DoNotOptimize(planes.data());
    }
  }
  st.counters["Gelem/s"] = double(n) * double(st.iterations()) / clock.wall / 1e9;
  st.counters["threads"] = double(arena.max_concurrency());
  st.counters["escapes"] = double(saved_count);
}
BENCHMARK(BM_ApplySplitDeltaHost)->ArgNames({"impl", "threads"})->ArgsProduct({{0, 1, 2, 3, 4}, {1, 0}})->Unit(benchmark::kMillisecond)->UseManualTime();

// The host memory's own rate, the ceiling of every host apply above (issue 7: the fp8 GPU site's
// step is bound by the host apply's memory traffic, docs/results.md session 12). 4 GiB in huge
// pages, 1 MiB grains under oneTBB. kind 0: read (a sum), 1: write (a fill), 2: read-modify-write
// in place (what the apply does to a master line with a change; read + written bytes), 3: copy
// (read + written bytes). threads 1 or 0 (the whole machine).
void BM_HostMemory(benchmark::State& st) {
  const int kind = int(st.range(0));
  const int threads = int(st.range(1));
  const size_t n = (size_t(4) << 30) / 8, grain = (size_t(1) << 20) / 8;
  HugeArray<uint64_t> a(n), b(kind == 3 ? n : 1);
  tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
  arena.execute([&] {
    tbb::parallel_for(size_t(0), n / grain, [&](size_t c) {
      for (size_t i = c * grain; i < (c + 1) * grain; ++i) a[i] = i * 0x9E3779B97F4A7C15ull;
    });
    if (kind == 3) std::memset(b.data(), 0, n * 8);
  });
  std::atomic<uint64_t> sink{0};
  HostClock clock;
  for (auto _ : st) {
    clock.time([&] {
      arena.execute([&] {
        tbb::parallel_for(size_t(0), n / grain, [&](size_t c) {
          uint64_t* p = a.data() + c * grain;
          if (kind == 0) {
            uint64_t s = 0;
            for (size_t i = 0; i < grain; ++i) s += p[i];
            sink += s;
          } else if (kind == 1) {
            for (size_t i = 0; i < grain; ++i) p[i] = i;
          } else if (kind == 2) {
            for (size_t i = 0; i < grain; ++i) p[i] += 1;
          } else {
            std::memcpy(b.data() + c * grain, p, grain * 8);
          }
        });
      });
    });
  }
  benchmark::DoNotOptimize(sink.load());
  benchmark::DoNotOptimize(a.data());
  const double bytes = double(n) * 8 * (kind >= 2 ? 2.0 : 1.0);
  st.counters["GB/s"] = bytes * double(st.iterations()) / clock.wall / 1e9;
  st.counters["threads"] = double(arena.max_concurrency());
}
BENCHMARK(BM_HostMemory)->ArgNames({"kind", "threads"})->ArgsProduct({{0, 1, 2, 3}, {1, 0}})->Unit(benchmark::kMillisecond)->UseRealTime();

#if defined(ZOFF_KERNELS_CUDA)

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

struct Dev {
  explicit Dev(size_t bytes) { ok = cudaMalloc(&p, bytes) == cudaSuccess; }
  ~Dev() { cudaFree(p); }
  void* p = nullptr;
  bool ok = false;
};

// Times fn() with CUDA events; returns seconds.
template <typename F>
double time_gpu(F&& fn) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a);
  fn();
  cudaEventRecord(b);
  cudaEventSynchronize(b);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms * 1e-3;
}

// cudaMemcpy device-to-device bandwidth (bytes read + written), measured once.
double d2d_gbps() {
  static const double v = [] {
    if (!have_gpu()) return 0.0;
    const size_t bytes = size_t(1) << 30;
    Dev a(bytes), b(bytes);
    if (!a.ok || !b.ok) return 0.0;
    cudaMemset(a.p, 1, bytes);
    std::vector<double> t;
    for (int i = 0; i < 23; ++i) {
      double s = time_gpu([&] { cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice); });
      if (i >= 3) t.push_back(s);
    }
    std::sort(t.begin(), t.end());
    return 2.0 * double(bytes) / t[t.size() / 2] / 1e9;
  }();
  return v;
}

bool gpu_ready(benchmark::State& st) {
  if (!have_gpu()) {
    st.SkipWithError("no CUDA device");
    return false;
  }
  return true;
}

void BM_D2DCopy(benchmark::State& st) {
  if (!gpu_ready(st)) return;
  const size_t bytes = size_t(1) << 30;
  Dev a(bytes), b(bytes);
  cudaMemset(a.p, 1, bytes);
  double secs = 0;
  for (auto _ : st) {
    double s = time_gpu([&] { cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice); });
    st.SetIterationTime(s);
    secs += s;
  }
  set_rate(st, 2.0 * double(bytes), secs, d2d_gbps());
}
BENCHMARK(BM_D2DCopy)->UseManualTime()->Unit(benchmark::kMillisecond);

// zo_update on 2^28 elements (1 GiB of fp32, 512 MiB of bf16).
void BM_ZoUpdate(benchmark::State& st) {
  if (!gpu_ready(st)) return;
  const Elem e = Elem(st.range(0));
  const Dist d = Dist(st.range(1));
  const int nterms = int(st.range(2));
  const uint64_t sr = uint64_t(st.range(3));
  const int64_t n = int64_t(1) << 28;
  Dev theta(size_t(n) * elem_size(e));
  std::vector<uint8_t> host = random_bits(e, int64_t(1) << 20);
  for (int64_t off = 0; off < n; off += int64_t(1) << 20)
    cudaMemcpy(static_cast<char*>(theta.p) + off * elem_size(e), host.data(), host.size(), cudaMemcpyHostToDevice);
  std::vector<ZTerm> terms;
  for (int k = 0; k < nterms; ++k) terms.push_back({step_seed(5, 6, uint64_t(k)), 1e-4f * float(k % 2 ? -1 : 1)});
  UpdateArgs a{theta.p, e, n, param_id("bench"), d, terms.data(), nterms, 0.0f, sr};
  zo_update(a, nullptr);  // warm-up: module load, occupancy queries
  double secs = 0;
  for (auto _ : st) {
    double s = time_gpu([&] { zo_update(a, nullptr); });
    st.SetIterationTime(s);
    secs += s;
  }
  set_rate(st, 2.0 * double(n) * elem_size(e), secs, d2d_gbps());
}
BENCHMARK(BM_ZoUpdate)
    ->ArgNames({"elem", "dist", "terms", "sr"})
    ->Args({int(Elem::F32), int(Dist::Gaussian), 1, 0})
    ->Args({int(Elem::F32), int(Dist::Rademacher), 1, 0})
    ->Args({int(Elem::BF16), int(Dist::Gaussian), 1, 0})
    ->Args({int(Elem::BF16), int(Dist::Gaussian), 1, 1})
    ->Args({int(Elem::BF16), int(Dist::Rademacher), 1, 0})
    ->Args({int(Elem::BF16), int(Dist::Rademacher), 1, 1})
    ->Args({int(Elem::F32), int(Dist::Rademacher), 8, 0})
    ->Args({int(Elem::BF16), int(Dist::Gaussian), 2, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// zo_perturb of 2^28 elements: bf16 -> bf16 (the perturbed copy) and fp8 -> bf16 (from the transfer format).
void BM_ZoPerturb(benchmark::State& st) {
  if (!gpu_ready(st)) return;
  const Elem src_e = Elem(st.range(0));
  const Dist d = Dist(st.range(1));
  const int64_t n = int64_t(1) << 28, row_len = 8192;
  Dev src(size_t(n) * elem_size(src_e)), out(size_t(n) * 2), scales(size_t(n / row_len) * 4);
  std::vector<uint8_t> host = random_bits(src_e, int64_t(1) << 20);
  for (int64_t off = 0; off < n; off += int64_t(1) << 20)
    cudaMemcpy(static_cast<char*>(src.p) + off * elem_size(src_e), host.data(), host.size(), cudaMemcpyHostToDevice);
  std::vector<float> hs(size_t(n / row_len), 0.01f);
  cudaMemcpy(scales.p, hs.data(), hs.size() * 4, cudaMemcpyHostToDevice);
  ZTerm t{step_seed(9, 9, 9), 1e-3f};
  PerturbArgs a{out.p, Elem::BF16, src.p, src_e, static_cast<float*>(scales.p), row_len, n, param_id("bench"), d, &t, 1};
  zo_perturb(a, nullptr);
  double secs = 0;
  for (auto _ : st) {
    double s = time_gpu([&] { zo_perturb(a, nullptr); });
    st.SetIterationTime(s);
    secs += s;
  }
  set_rate(st, double(n) * (elem_size(src_e) + 2), secs, d2d_gbps());
}
BENCHMARK(BM_ZoPerturb)
    ->ArgNames({"src", "dist"})
    ->Args({int(Elem::BF16), int(Dist::Gaussian)})
    ->Args({int(Elem::BF16), int(Dist::Rademacher)})
    ->Args({int(Elem::F8E4M3), int(Dist::Gaussian)})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// zo_update_fp8 (Note [fp8 at the GPU site]) of 5120-element rows, ~2^28 elements: the fp8 copy in,
// bf16 forward weights and 2-bit codes out (n * (1 + 2 + 0.25) bytes), exceptions to the list.
// coeff_e6: the term's coefficient in units of 1e-6 against N(0, 1) weights (bf16 step at 1: 2^-7);
// 10 gives ~0.15% exceptions, as bench_step's 13B step; 100 ~1.4%. Compare its rate with BM_ZoUpdate bf16 SR.
void BM_ZoUpdateFp8(benchmark::State& st) {
  if (!gpu_ready(st)) return;
  const Dist d = Dist(st.range(0));
  const float coeff = float(st.range(1)) * 1e-6f;
  const int64_t cols = 5120, chunk_rows = 205, reps = 256, rows = chunk_rows * reps, n = rows * cols;
  std::vector<uint8_t> master = random_bits(Elem::BF16, chunk_rows * cols);
  std::vector<uint8_t> hq(static_cast<size_t>(chunk_rows * cols));
  std::vector<float> hs(static_cast<size_t>(chunk_rows));
  ref::pack_fp8_exact(reinterpret_cast<const uint16_t*>(master.data()), chunk_rows, cols, hq.data(), hs.data());
  const int64_t cap = n / 16;
  Dev q(static_cast<size_t>(n)), scales(size_t(rows) * 4), w(size_t(n) * 2), codes(size_t(n / 4)), list(size_t(cap) * sizeof(Fp8Entry)),
      count(8);
  for (int64_t r = 0; r < reps; ++r) {
    cudaMemcpy(static_cast<uint8_t*>(q.p) + r * int64_t(hq.size()), hq.data(), hq.size(), cudaMemcpyHostToDevice);
    cudaMemcpy(static_cast<float*>(scales.p) + r * chunk_rows, hs.data(), hs.size() * 4, cudaMemcpyHostToDevice);
  }
  ZTerm t{step_seed(3, 4, 5), coeff};
  Fp8UpdateArgs a{};
  a.q = static_cast<uint8_t*>(q.p);
  a.row_scales = static_cast<float*>(scales.p);
  a.row_len = cols;
  a.w = w.p;
  a.w_elem = Elem::BF16;
  a.n = n;
  a.pid = param_id("bench");
  a.dist = d;
  a.terms = &t;
  a.nterms = 1;
  a.sr_seed = 77;
  a.delta = Fp8DeltaOut{static_cast<uint8_t*>(codes.p), static_cast<Fp8Entry*>(list.p), cap,
                        static_cast<unsigned long long*>(count.p), 0};
  auto once = [&] {
    cudaMemsetAsync(count.p, 0, 8);
    zo_update_fp8(a, nullptr);
  };
  once();
  double secs = 0;
  for (auto _ : st) {
    double s = time_gpu(once);
    st.SetIterationTime(s);
    secs += s;
  }
  unsigned long long exc = 0;
  cudaMemcpy(&exc, count.p, 8, cudaMemcpyDeviceToHost);
  st.counters["exc_per_M"] = double(exc) / double(n) * 1e6;
  st.counters["Gelem/s"] = double(n) * double(st.iterations()) / secs / 1e9;
  set_rate(st, double(n) * 3.25, secs, d2d_gbps());
}
BENCHMARK(BM_ZoUpdateFp8)
    ->ArgNames({"dist", "coeff_e6"})
    ->Args({int(Dist::Gaussian), 10})
    ->Args({int(Dist::Gaussian), 100})
    ->Args({int(Dist::Gaussian), 1000})
    ->Args({int(Dist::Rademacher), 100})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// pack_fp8_rows of a 16384 x 16384 matrix (fp32: 1 GiB, bf16: 512 MiB).
void BM_PackFp8(benchmark::State& st) {
  if (!gpu_ready(st)) return;
  const Elem e = Elem(st.range(0));
  const int64_t rows = 16384, cols = 16384, n = rows * cols;
  Dev src(size_t(n) * elem_size(e)), dst(static_cast<size_t>(n)), scales(size_t(rows) * 4);
  std::vector<uint8_t> host = random_bits(e, int64_t(1) << 20);
  for (int64_t off = 0; off < n; off += int64_t(1) << 20)
    cudaMemcpy(static_cast<char*>(src.p) + off * elem_size(e), host.data(), host.size(), cudaMemcpyHostToDevice);
  PackFp8Args a{src.p, e, rows, cols, static_cast<uint8_t*>(dst.p), static_cast<float*>(scales.p)};
  pack_fp8_rows(a, nullptr);
  double secs = 0;
  for (auto _ : st) {
    double s = time_gpu([&] { pack_fp8_rows(a, nullptr); });
    st.SetIterationTime(s);
    secs += s;
  }
  set_rate(st, double(n) * (elem_size(e) + 1), secs, d2d_gbps());
}
BENCHMARK(BM_PackFp8)->ArgNames({"elem"})->Arg(int(Elem::F32))->Arg(int(Elem::BF16))->UseManualTime()->Unit(benchmark::kMillisecond);

// copy_counted (Note [Counted copy]): 2^27 8-byte entries (1 GiB), the whole capacity counted, into
// device memory (dst:0) or mapped pinned host memory (dst:1, a PCIe write: compare with
// bench_transfer's D2H rate, not with of_d2d).
void BM_CopyCounted(benchmark::State& st) {
  if (!gpu_ready(st)) return;
  const bool mapped = st.range(0) != 0;
  const int64_t cap = int64_t(1) << 27;
  const size_t bytes = size_t(cap) * 8;
  Dev src(bytes), dev_dst(mapped ? 0 : bytes), count(8);
  void* host = nullptr;
  void* dst = dev_dst.p;
  if (mapped) {
    if (cudaHostAlloc(&host, bytes, cudaHostAllocMapped) != cudaSuccess || cudaHostGetDevicePointer(&dst, host, 0) != cudaSuccess) {
      st.SkipWithError("cudaHostAlloc (mapped) failed");
      return;
    }
  }
  const unsigned long long n = (unsigned long long)cap;
  cudaMemcpy(count.p, &n, 8, cudaMemcpyHostToDevice);
  double secs = 0;
  for (auto _ : st) {
    double s = time_gpu([&] { copy_counted(dst, src.p, static_cast<unsigned long long*>(count.p), cap, 8, nullptr); });
    st.SetIterationTime(s);
    secs += s;
  }
  set_rate(st, mapped ? double(bytes) : 2.0 * double(bytes), secs, d2d_gbps());
  if (host != nullptr) cudaFreeHost(host);
}
BENCHMARK(BM_CopyCounted)->ArgNames({"dst"})->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond);

// Note [Packed codes] on the device: one OPT-13B block's staged codes (314.6 M elements, 1.15% of
// them changed, ~31% of the code words nonzero, as BM_ApplyFp8DeltaHost's block) packed into
// mapped host memory (dst:1, how DeltaBuffers uses it) or device memory (dst:0); beside it
// (counter dense_d2h_ms) the DMA copy of the dense codes into pinned host memory that the packing
// replaces. GB/s counts the bytes written (bitmap and packed words).
void BM_PackCodes(benchmark::State& st) {
  if (!gpu_ready(st)) return;
  const bool mapped = st.range(0) != 0;
  const int64_t n = int64_t(5120) * 61440, W = pack_code_words(n), B = pack_bitmap_words(n);
  std::vector<uint8_t> codes(size_t(8 * W), 0);
  std::mt19937_64 rng(12);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = rng() % 2000;
    if (r < 23) codes[size_t(i / 4)] |= uint8_t((r < 10 ? 1 : r < 20 ? 2 : 3) << (2 * (i % 4)));
  }
  Dev dcodes(codes.size()), dcount(8), dscratch(size_t(4 * pack_codes_scratch_words(n)));
  Dev dbitmap(mapped ? 0 : size_t(4 * B)), dpacked(mapped ? 0 : size_t(8 * W));
  cudaMemcpy(dcodes.p, codes.data(), codes.size(), cudaMemcpyHostToDevice);
  void* hb = nullptr;
  void* hp = nullptr;
  void* hdense = nullptr;
  void* bitmap = dbitmap.p;
  void* packed = dpacked.p;
  if (cudaHostAlloc(&hdense, codes.size(), cudaHostAllocDefault) != cudaSuccess ||
      (mapped && (cudaHostAlloc(&hb, size_t(4 * B), cudaHostAllocMapped) != cudaSuccess ||
                  cudaHostAlloc(&hp, size_t(8 * W), cudaHostAllocMapped) != cudaSuccess ||
                  cudaHostGetDevicePointer(&bitmap, hb, 0) != cudaSuccess ||
                  cudaHostGetDevicePointer(&packed, hp, 0) != cudaSuccess))) {
    st.SkipWithError("cudaHostAlloc failed");
    return;
  }
  PackCodesArgs a{static_cast<const uint8_t*>(dcodes.p), n, static_cast<uint32_t*>(bitmap),
                  static_cast<uint64_t*>(packed), static_cast<unsigned long long*>(dcount.p),
                  static_cast<uint32_t*>(dscratch.p)};
  pack_codes(a, nullptr);
  unsigned long long count = 0;
  cudaMemcpy(&count, dcount.p, 8, cudaMemcpyDeviceToHost);
  double secs = 0;
  std::vector<double> dense;
  for (auto _ : st) {
    const double s = time_gpu([&] { pack_codes(a, nullptr); });
    st.SetIterationTime(s);
    secs += s;
    dense.push_back(time_gpu([&] { cudaMemcpyAsync(hdense, dcodes.p, size_t((n + 3) / 4), cudaMemcpyDeviceToHost); }));
  }
  std::sort(dense.begin(), dense.end());
  const double bytes = double(8 * count + 4 * uint64_t(B));
  st.counters["GB/s"] = bytes * double(st.iterations()) / secs / 1e9;
  st.counters["live_words"] = double(count) / double(W);
  st.counters["written_MB"] = bytes / 1e6;
  st.counters["dense_d2h_ms"] = dense[dense.size() / 2] * 1e3;
  cudaFreeHost(hdense);
  if (hb != nullptr) cudaFreeHost(hb);
  if (hp != nullptr) cudaFreeHost(hp);
}
BENCHMARK(BM_PackCodes)->ArgNames({"dst"})->Arg(1)->Arg(0)->UseManualTime()->Unit(benchmark::kMillisecond);

// split16_decode (Note [Split bf16]) of one OPT-13B block's elements (Fp8ApplyBlock's weights,
// 314.6 M), escapes in mapped host memory as the step keeps them. GB/s counts the planes read and
// the bf16 written (3.5 bytes an element).
void BM_Split16Decode(benchmark::State& st) {
  if (!gpu_ready(st)) return;
  static Fp8ApplyBlock blk;
  const int64_t n = blk.n;
  std::vector<uint8_t> planes(size_t(split_bytes(n)));
  std::vector<SplitEscape> esc(size_t(split_escape_capacity(n)));
  SplitEscapes e{esc.data(), 0, int64_t(esc.size())};
  if (!ref::split16_encode(blk.saved_master.data(), split_planes(planes.data(), n), &e)) {
    st.SkipWithError("block does not fit its escape capacity");
    return;
  }
  Dev dplanes(planes.size()), dout(size_t(2 * n));
  cudaMemcpy(dplanes.p, planes.data(), planes.size(), cudaMemcpyHostToDevice);
  void* hesc = nullptr;
  void* desc = nullptr;
  if (cudaHostAlloc(&hesc, std::max<size_t>(8, size_t(e.count) * sizeof(SplitEscape)), cudaHostAllocMapped) != cudaSuccess ||
      cudaHostGetDevicePointer(&desc, hesc, 0) != cudaSuccess) {
    st.SkipWithError("cudaHostAlloc failed");
    return;
  }
  std::memcpy(hesc, esc.data(), size_t(e.count) * sizeof(SplitEscape));
  const SplitPlanes p = split_planes(dplanes.p, n);
  double secs = 0;
  for (auto _ : st) {
    const double s = time_gpu([&] { split16_decode(p, static_cast<const SplitEscape*>(desc), e.count,
                                                   static_cast<uint16_t*>(dout.p), nullptr); });
    st.SetIterationTime(s);
    secs += s;
  }
  std::vector<uint16_t> back(static_cast<size_t>(n));
  cudaMemcpy(back.data(), dout.p, back.size() * 2, cudaMemcpyDeviceToHost);
  if (std::memcmp(back.data(), blk.saved_master.data(), back.size() * 2) != 0) st.SkipWithError("decode differs from the block");
  cudaFreeHost(hesc);
  st.counters["GB/s"] = double(n) * 3.5 * double(st.iterations()) / secs / 1e9;
  st.counters["escapes"] = double(e.count);
}
BENCHMARK(BM_Split16Decode)->UseManualTime()->Unit(benchmark::kMillisecond);

#endif  // ZOFF_KERNELS_CUDA

}  // namespace
}  // namespace zoff::k

BENCHMARK_MAIN();
