// Host kernels' dispatcher: validation, instruction-set choice, and the oneTBB parallel_for over tiles.
#include "kernels/host/zo_host.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels/host/host_job.h"
#include "kernels/ref/ew_job.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

constexpr int64_t kGrainTiles = 64;  // 64 Ki elements per TBB chunk

bool cpu_has(HostIsa isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (isa == HostIsa::Avx2)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (isa == HostIsa::Avx512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
#endif
  return isa == HostIsa::Auto || isa == HostIsa::Scalar || isa == HostIsa::Ref;
}

host::IsaKernels kernels_of(HostIsa isa) {
  switch (isa) {
    case HostIsa::Avx2: return host::avx2_kernels();
    case HostIsa::Avx512: return host::avx512_kernels();
    default: return host::scalar_kernels();
  }
}

HostIsa pick_auto() {
  if (const char* env = std::getenv("ZOFF_HOST_ISA"); env != nullptr && *env != '\0') {
    const std::string v = env;
    HostIsa isa = HostIsa::Auto;
    if (v == "scalar") isa = HostIsa::Scalar;
    else if (v == "avx2") isa = HostIsa::Avx2;
    else if (v == "avx512") isa = HostIsa::Avx512;
    else if (v == "ref") isa = HostIsa::Ref;
    else ZOFF_INPUT_CHECK(v == "auto", "environment variable ZOFF_HOST_ISA = '", v,
                          "': expected auto, scalar, avx2, avx512 or ref");
    ZOFF_INPUT_CHECK(host_isa_supported(isa), "environment variable ZOFF_HOST_ISA = '", v,
                     "': this CPU (or this build) has no ", host_isa_name(isa));
    if (isa != HostIsa::Auto) return isa;
  }
  if (host_isa_supported(HostIsa::Avx512)) return HostIsa::Avx512;
  if (host_isa_supported(HostIsa::Avx2)) return HostIsa::Avx2;
  return HostIsa::Scalar;
}

// The concrete path for a request (never Auto).
HostIsa resolve(HostIsa isa) {
  if (isa == HostIsa::Auto) return host_isa_auto();
  ZOFF_CHECK(host_isa_supported(isa), "host kernels: ", host_isa_name(isa), " requested but this CPU (or build) lacks it");
  return isa;
}

void run_ew(const EwJob& j, HostIsa isa) {
  std::vector<uint64_t> keys;
  if (j.sr_seed != 0)
    for (int p = 0; p < term_passes(j.nterms); ++p) keys.push_back(sr_key(j.sr_seed, p));
  const host::HostJob h{j, keys.data()};
  const host::EwTilesFn fn = kernels_of(isa).ew;
  const int64_t t0 = j.first / host::kTile, t1 = (j.first + j.n + host::kTile - 1) / host::kTile;
  tbb::parallel_for(tbb::blocked_range<int64_t>(t0, t1, kGrainTiles),
                    [&](const tbb::blocked_range<int64_t>& r) { fn(h, r.begin(), r.end()); });
}

// Note [Host delta]
// The ISA tile kernels know nothing of deltas (Note [Delta write-back]). With a delta output each
// TBB chunk (64 tiles, aligned in the parameter's index space like run_ew's) copies its elements'
// old bits into a thread-local buffer, runs the tiles, then compares and writes the codes and
// exceptions as the reference does (kernels/ref/zo_ref.cpp emit_delta). Theta, the codes and the
// count are the reference's bit for bit, and so is the set of list entries while the count is
// within capacity (the list's order follows the threads' timing, here as in the reference). Past
// capacity, which exceptions land in the list and which in the overflow follows the timing too,
// but together they are the same exceptions with the same bits, and apply_delta leaves the same
// master. A chunk starts at a multiple of 4 in the parameter (first % 4 == 0), so its code bytes
// are its own; only the parameter's last byte may be partial, and its elements past n get code 0.
// The update is one pass (update_job), so only pass 0's SR key is needed.
void emit_delta_chunk(const DeltaOut& d, const EwJob& j, int64_t g0, int64_t g1, const uint16_t* old) {
  const uint16_t* theta = static_cast<const uint16_t*>(j.out);
  uint8_t* codes = d.codes + ((g0 - j.first) >> 2);
  const uint16_t* now = theta + (g0 - j.first);
  const int64_t m = g1 - g0;
  if (d.stored != nullptr)  // every byte (Note [Sparse code stores])
    __atomic_fetch_add(d.stored, static_cast<unsigned long long>((m + 3) / 4), __ATOMIC_RELAXED);
  for (int64_t q = 0; 4 * q < m; ++q) {
    const int k = int(std::min<int64_t>(4, m - 4 * q));
    uint32_t code = 0;
    for (int e = 0; e < k; ++e) code |= delta_code(old[4 * q + e], now[4 * q + e]) << (2 * e);
    codes[q] = uint8_t(code);
    if ((code & (code >> 1) & 0x55u) == 0) continue;  // no exception in this byte
    for (int e = 0; e < k; ++e) {
      if (((code >> (2 * e)) & 3u) != kDeltaException) continue;
      const int64_t i = g0 - j.first + 4 * q + e;
      const unsigned long long slot = __atomic_fetch_add(d.count, 1ull, __ATOMIC_RELAXED);
      if (slot < static_cast<unsigned long long>(d.capacity))
        d.list[slot] = DeltaEntry{uint32_t(d.index_base + i), theta[i], 0};
      else
        d.overflow[i] = theta[i];
    }
  }
}

void run_ew_delta(const EwJob& j, HostIsa isa) {
  std::vector<uint64_t> keys;
  if (j.sr_seed != 0) keys.push_back(sr_key(j.sr_seed, 0));
  const host::HostJob h{j, keys.data()};
  const host::EwTilesFn fn = kernels_of(isa).ew;
  const int64_t t0 = j.first / host::kTile, t1 = (j.first + j.n + host::kTile - 1) / host::kTile;
  tbb::parallel_for(tbb::blocked_range<int64_t>(t0, t1, kGrainTiles), [&](const tbb::blocked_range<int64_t>& r) {
    const int64_t g0 = std::max(r.begin() * host::kTile, j.first);
    const int64_t g1 = std::min(r.end() * host::kTile, j.first + j.n);
    thread_local std::vector<uint16_t> old;
    old.resize(size_t(g1 - g0));
    std::memcpy(old.data(), static_cast<const uint16_t*>(j.out) + (g0 - j.first), size_t(g1 - g0) * 2);
    fn(h, r.begin(), r.end());
    emit_delta_chunk(*j.delta, j, g0, g1, old.data());
  });
}

}  // namespace

bool host_isa_supported(HostIsa isa) {
  if (isa == HostIsa::Avx2 || isa == HostIsa::Avx512) return cpu_has(isa) && kernels_of(isa).ew != nullptr;
  return cpu_has(isa);
}

HostIsa host_isa_auto() {
  static const HostIsa chosen = pick_auto();
  return chosen;
}

const char* host_isa_name(HostIsa isa) {
  switch (isa) {
    case HostIsa::Auto: return "auto";
    case HostIsa::Scalar: return "scalar";
    case HostIsa::Avx2: return "avx2";
    case HostIsa::Avx512: return "avx512";
    case HostIsa::Ref: return "ref";
  }
  return "?";
}

void zo_update_host(const UpdateArgs& a, HostIsa isa) {
  isa = resolve(isa);
  if (isa == HostIsa::Ref) return ref::zo_update(a);
  const EwJob j = update_job(a);
  if (j.noop) return;
  if (j.delta != nullptr) return run_ew_delta(j, isa);
  run_ew(j, isa);
}

void zo_perturb_host(const PerturbArgs& a, HostIsa isa) {
  isa = resolve(isa);
  if (isa == HostIsa::Ref) return ref::zo_perturb(a);
  const EwJob j = perturb_job(a);
  if (!j.noop) run_ew(j, isa);
}

void pack_fp8_rows_host(const PackFp8Args& a, HostIsa isa) {
  isa = resolve(isa);
  if (isa == HostIsa::Ref) return ref::pack_fp8_rows(a);
  check_pack(a);
  const host::PackRowsFn fn = kernels_of(isa).pack;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, a.cols));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, a.rows, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { fn(a, r.begin(), r.end()); });
}

void fill_z_host(float* out, int64_t n, uint64_t pid, uint64_t seed, Dist d, HostIsa isa) {
  isa = resolve(isa);
  if (isa == HostIsa::Ref) return ref::fill_z(out, n, pid, seed, d);
  ZOFF_CHECK(n >= 0 && (n == 0 || out != nullptr), "fill_z: n = ", n, ", out = ", static_cast<void*>(out));
  ZOFF_CHECK(d == Dist::Gaussian || d == Dist::Rademacher, "fill_z: unknown Dist ", int(d));
  const host::FillTilesFn fn = kernels_of(isa).fill;
  const int64_t nt = (n + host::kTile - 1) / host::kTile;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, nt, kGrainTiles),
                    [&](const tbb::blocked_range<int64_t>& r) { fn(out, n, pid, seed, d, r.begin(), r.end()); });
}

}  // namespace zoff::k
