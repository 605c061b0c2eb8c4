// Host<->device copy bandwidth of block-sized buffers: pinned/pageable, H2D, D2H and both at once.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <thread>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <chrono>

#include "kernels/host/zo_host.h"
#include "offload/host_memory.h"

#ifdef ZOFF_WITH_CUDA
#include "bench/cuda_bench.h"
#endif

// Note [Transfer bench]
// Each case copies one buffer of `MiB` mebibytes per iteration with cudaMemcpyAsync on a
// non-blocking stream and times it with CUDA events (UseManualTime), so the reported time is the
// copy on the device, not the host's view of an asynchronous call. "both" runs an H2D copy and a
// D2H copy of the same size at once on two streams (what the GPU update site does while a block
// is written back and the next one uploads): its time runs from the start event (recorded on the
// upload stream, waited for by the offload stream) to the later of the two copies' ends, and
// each direction's own completion time gives h2d_GBps / d2h_GBps.
// Counters: bytes_per_second (kIsRate, over the manual time: Google Benchmark divides rate
// counters by the manual time when UseManualTime is set), GBps (the same in 1e9 bytes/s).
// Pageable buffers are touched once before timing; their copies go through the driver's staging
// buffer and show what an unpinned master would cost.

namespace {

#ifdef ZOFF_WITH_CUDA

using namespace zoff::bench;

enum class Dir { H2D, D2H, Both };

const char* dir_name(Dir d) { return d == Dir::H2D ? "h2d" : d == Dir::D2H ? "d2h" : "both"; }

void bm_copy(benchmark::State& st, Dir dir, bool pinned) {
  const size_t bytes = size_t(st.range(0)) << 20;
  try {
    HostMem up_src(bytes, pinned);      // H2D source
    DeviceMem up_dst(bytes);
    // D2H: device source, host destination (separate buffers so "both" copies do not alias).
    DeviceMem down_src(bytes);
    HostMem down_dst(bytes, pinned);
    Stream up, down;
    Event start, up_done, down_done;
    auto issue = [&] {
      ZOFF_CUDA_OK(cudaEventRecord(start.get(), up.get()));
      if (dir != Dir::D2H)
        ZOFF_CUDA_OK(cudaMemcpyAsync(up_dst.get(), up_src.get(), bytes, cudaMemcpyHostToDevice, up.get()));
      ZOFF_CUDA_OK(cudaEventRecord(up_done.get(), up.get()));
      if (dir != Dir::H2D) {
        ZOFF_CUDA_OK(cudaStreamWaitEvent(down.get(), start.get(), 0));
        ZOFF_CUDA_OK(cudaMemcpyAsync(down_dst.get(), down_src.get(), bytes, cudaMemcpyDeviceToHost, down.get()));
      }
      ZOFF_CUDA_OK(cudaEventRecord(down_done.get(), dir == Dir::H2D ? up.get() : down.get()));
      ZOFF_CUDA_OK(cudaEventSynchronize(up_done.get()));
      ZOFF_CUDA_OK(cudaEventSynchronize(down_done.get()));
    };
    issue();  // warm-up: first-touch of the device buffers, driver staging setup
    double up_s = 0, down_s = 0;
    for (auto _ : st) {
      issue();
      const double u = elapsed_ms(start, up_done) / 1e3, d = elapsed_ms(start, down_done) / 1e3;
      up_s += u;
      down_s += d;
      st.SetIterationTime(dir == Dir::H2D ? u : dir == Dir::D2H ? d : std::max(u, d));
    }
    const double moved = double(bytes) * (dir == Dir::Both ? 2 : 1) * double(st.iterations());
    st.counters["bytes_per_second"] = benchmark::Counter(moved, benchmark::Counter::kIsRate);
    st.counters["GBps"] = benchmark::Counter(moved / 1e9, benchmark::Counter::kIsRate);
    if (dir == Dir::Both) {
      st.counters["h2d_GBps"] = double(bytes) * double(st.iterations()) / up_s / 1e9;
      st.counters["d2h_GBps"] = double(bytes) * double(st.iterations()) / down_s / 1e9;
    }
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
  }
}

// Note [Pin bench]: host/pin/<method> allocates, fills (HostBuffer's own first touch) and pins one
// buffer, then frees it; GBps is bytes over the allocation alone, free_GBps over the release.
// This is the setup cost of a model's masters (Note [Pinning at scale]): 350 GB for OPT-175B.
void bm_pin(benchmark::State& st, zoff::HostAlloc how) {
  const size_t bytes = size_t(st.range(0)) << 30;
  double alloc_s = 0, free_s = 0;
  bool pinned = true;
  for (auto _ : st) {
    auto t0 = std::chrono::steady_clock::now();
    {
      zoff::HostBuffer h(bytes, how, "bench buffer");
      pinned = pinned && h.pinned();
      auto t1 = std::chrono::steady_clock::now();
      alloc_s += std::chrono::duration<double>(t1 - t0).count();
      st.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
      t0 = std::chrono::steady_clock::now();
    }
    free_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (!pinned) st.SkipWithError("pinning failed (see the warning)");
  const double n = double(st.iterations());
  st.counters["GBps"] = double(bytes) * n / alloc_s / 1e9;
  st.counters["free_GBps"] = double(bytes) * n / free_s / 1e9;
}

// Note [Spread bench]: transfer/h2d/spread uploads one large master-like buffer (allocated as the
// block store does: HostAlloc::Register, faulted in on all cores, so on a multi-socket host its
// pages sit on every node) in 1 GiB pieces, each timed alone. min/median/max_GBps over the pieces
// show whether some of a large master uploads slower than the 1 GiB figure the planner and the
// fraction of the transfer bound use (a remote NUMA node, say).
void bm_spread(benchmark::State& st) {
  const size_t piece = size_t(1) << 30, bytes = size_t(st.range(0)) << 30;
  try {
    zoff::HostBuffer h(bytes, zoff::HostAlloc::Register, "spread bench buffer");
    if (!h.pinned()) throw std::runtime_error("pinning failed (see the warning)");
    DeviceMem dst(piece);
    Stream up;
    Event a, b;
    std::vector<double> gbps;
    for (auto _ : st) {
      gbps.clear();
      double total = 0;
      for (size_t off = 0; off < bytes; off += piece) {
        ZOFF_CUDA_OK(cudaEventRecord(a.get(), up.get()));
        ZOFF_CUDA_OK(cudaMemcpyAsync(dst.get(), static_cast<char*>(h.data()) + off, piece, cudaMemcpyHostToDevice, up.get()));
        ZOFF_CUDA_OK(cudaEventRecord(b.get(), up.get()));
        ZOFF_CUDA_OK(cudaEventSynchronize(b.get()));
        const double s = elapsed_ms(a, b) / 1e3;
        total += s;
        gbps.push_back(double(piece) / s / 1e9);
      }
      st.SetIterationTime(total);
    }
    std::sort(gbps.begin(), gbps.end());
    st.counters["min_GBps"] = gbps.front();
    st.counters["median_GBps"] = gbps[gbps.size() / 2];
    st.counters["max_GBps"] = gbps.back();
    st.counters["GBps"] = benchmark::Counter(double(bytes) * double(st.iterations()) / 1e9, benchmark::Counter::kIsRate);
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
  }
}

// Note [Loaded bench]: transfer/h2d/loaded/threads:N uploads 1 GiB pinned copies (8 per iteration)
// while N host threads read-modify-write a separate 4 GiB buffer (every 8-byte word, a read and a
// write of each line), as the delta apply does to the masters beside the step's uploads. h2d_GBps
// is the upload rate under that load, host_GBps the host memory traffic (read + write) the
// threads made meanwhile. Question it answers: does host memory traffic slow the DMA reads?
// Measured on the H200 host (session 8, docs/results.md): yes, steeply past ~50 GB/s of host
// traffic (H2D 55.2 / 54.9 / 52.7 / 45.5 GB/s at 2 / 4 / 8 / 15 threads).
// split:S cuts each 1 GiB copy into S pieces on S streams, forked from and joined back to the
// upload stream by events: does a loaded host's DMA rate recover when more read requests are in
// flight at once (if one copy were bound by the loaded memory's latency, it would)? Measured on
// the H200 host (session 15, docs/results.md): no, 15 threads 41.6 / 39.7 / 43.2 GB/s at split
// 1 / 2 / 4, and the 13B step did not move (a ZOFF_UPLOAD_SPLIT knob doing this to the step's
// uploads was tried and removed): the DMA is short of host memory bandwidth, not of requests.
void bm_loaded(benchmark::State& st) {
  const int nthreads = int(st.range(0));
  const int split = int(st.range(1));
  const size_t piece = size_t(1) << 30, load_bytes = size_t(4) << 30;
  const int copies = 8;
  try {
    HostMem src(piece, true);
    DeviceMem dst(piece);
    std::vector<uint64_t> load(nthreads > 0 ? load_bytes / 8 : 0, 1);
    Stream up;
    Event a, b;
    std::vector<Stream> helpers(size_t(split - 1));
    std::vector<Event> joins(size_t(split - 1));
    Event fork;
    const size_t part = ((piece + size_t(split) - 1) / size_t(split) + (size_t(2) << 20) - 1) / (size_t(2) << 20) * (size_t(2) << 20);
    double h2d_s = 0, host_bytes = 0, host_s = 0;
    for (auto _ : st) {
      std::atomic<bool> stop{false};
      std::atomic<int64_t> words{0};
      std::vector<std::thread> pool;
      const size_t per = load.size() / size_t(std::max(1, nthreads));
      for (int t = 0; t < nthreads; ++t)
        pool.emplace_back([&, t] {
          uint64_t* p = load.data() + size_t(t) * per;
          constexpr size_t kChunk = size_t(1) << 17;  // 1 MiB of words between progress counts
          for (size_t at = 0; !stop.load(std::memory_order_relaxed); at = at + kChunk < per ? at + kChunk : 0) {
            const size_t end = std::min(per, at + kChunk);
            for (size_t i = at; i < end; ++i) p[i] += 1;
            words.fetch_add(int64_t(end - at), std::memory_order_relaxed);
          }
        });
      const auto t0 = std::chrono::steady_clock::now();
      const int64_t w0 = words.load();
      ZOFF_CUDA_OK(cudaEventRecord(a.get(), up.get()));
      for (int c = 0; c < copies; ++c) {
        ZOFF_CUDA_OK(cudaEventRecord(fork.get(), up.get()));
        for (int h = 1; h < split; ++h) {  // pieces 1.. on the helpers, piece 0 on `up`
          const size_t off = std::min(piece, part * size_t(h)), len = std::min(piece, off + part) - off;
          cudaStream_t hs = helpers[size_t(h - 1)].get();
          ZOFF_CUDA_OK(cudaStreamWaitEvent(hs, fork.get(), 0));
          if (len > 0)
            ZOFF_CUDA_OK(cudaMemcpyAsync(static_cast<char*>(dst.get()) + off, static_cast<const char*>(src.get()) + off,
                                         len, cudaMemcpyHostToDevice, hs));
          ZOFF_CUDA_OK(cudaEventRecord(joins[size_t(h - 1)].get(), hs));
        }
        ZOFF_CUDA_OK(cudaMemcpyAsync(dst.get(), src.get(), std::min(piece, part), cudaMemcpyHostToDevice, up.get()));
        for (Event& j : joins) ZOFF_CUDA_OK(cudaStreamWaitEvent(up.get(), j.get(), 0));
      }
      ZOFF_CUDA_OK(cudaEventRecord(b.get(), up.get()));
      ZOFF_CUDA_OK(cudaEventSynchronize(b.get()));
      const int64_t done = words.load() - w0;
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      stop = true;
      for (auto& th : pool) th.join();
      const double s = elapsed_ms(a, b) / 1e3;
      st.SetIterationTime(s);
      h2d_s += s;
      host_bytes += double(done) * 8.0 * 2.0;  // words done: read + write
      host_s += wall;
    }
    st.counters["h2d_GBps"] = double(piece) * copies * double(st.iterations()) / h2d_s / 1e9;
    st.counters["host_GBps"] = host_bytes / host_s / 1e9;
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
  }
}

// Note [Fused apply bench]: transfer/h2d/apply/chunk_MiB:C/lead_MiB:L/mode:M/changed_permille:P
// streams a 4 GiB bf16-like master through the delta apply (apply_delta_host, codes with P per
// mille of elements +-1: 10 is bench_step's MeZO step on dummy OPT weights at lr 1e-7, ~25% of the
// master lines touched; 70 touches ~90%) and an upload, in C MiB chunks, the host at most L MiB
// ahead of the copies. mode 0: uploads only (the chunking's own cost); 1 fused: each chunk is applied right
// before its upload, so the DMA reads lines the cores just wrote (from the last-level cache if
// they are still there); 2 separate: the same applies go to another master while this one uploads
// (today's traffic pattern: apply and DMA touch different memory); 3: the applies alone.
// GBps = master bytes per wall second of the whole pipeline. Question it answers: does applying a
// block just before uploading it take the apply's traffic off the DMA's back? Measured on the
// H200 host (session 8, docs/results.md), at 70 per mille only: no, fused 44 against separate
// 47 GB/s at best. The 10 per mille cases (bench_step's change rate) are not yet measured.
void bm_apply(benchmark::State& st) {
  const size_t chunk = size_t(st.range(0)) << 20, lead = std::max<size_t>(1, (size_t(st.range(1)) << 20) / chunk);
  const int mode = int(st.range(2));
  const uint32_t permille = uint32_t(st.range(3));  // elements changed per 1000 (half up, half down)
  const size_t bytes = size_t(4) << 30, n = bytes / 2, nchunks = bytes / chunk, ce = chunk / 2;
  try {
    HostMem x(bytes, true), codes(n / 4, true);
    std::unique_ptr<HostMem> y;
    if (mode == 2) y = std::make_unique<HostMem>(bytes, true);
    std::vector<uint8_t> tmpl(n / 4);
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (size_t j = 0; j < tmpl.size(); ++j) {
      uint32_t byte = 0;
      for (int e = 0; e < 4; ++e) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        const uint32_t u = uint32_t(r >> 40) % 2000;
        byte |= (u < permille ? 1u : u < 2 * permille ? 2u : 0u) << (2 * e);
      }
      tmpl[j] = uint8_t(byte);
    }
    DeviceMem dst(mode == 3 ? 1 : bytes);
    Stream up;
    std::vector<Event> ev(nchunks);
    Event a, b;
    double wall_s = 0;
    for (auto _ : st) {
      std::memcpy(codes.get(), tmpl.data(), tmpl.size());  // the apply leaves them zero
      const auto t0 = std::chrono::steady_clock::now();
      ZOFF_CUDA_OK(cudaEventRecord(a.get(), up.get()));
      for (size_t c = 0; c < nchunks; ++c) {
        if (c >= lead && mode != 3) ZOFF_CUDA_OK(cudaEventSynchronize(ev[c - lead].get()));
        if (mode != 0) {
          zoff::k::ApplyDeltaArgs d{};
          d.master = static_cast<uint16_t*>(mode == 2 ? y->get() : x.get()) + c * ce;
          d.codes = static_cast<uint8_t*>(codes.get()) + c * ce / 4;
          d.n = int64_t(ce);
          zoff::k::apply_delta_host(d);
        }
        if (mode == 3) continue;
        ZOFF_CUDA_OK(cudaMemcpyAsync(static_cast<char*>(dst.get()) + c * chunk, static_cast<char*>(x.get()) + c * chunk,
                                     chunk, cudaMemcpyHostToDevice, up.get()));
        ZOFF_CUDA_OK(cudaEventRecord(ev[c].get(), up.get()));
      }
      ZOFF_CUDA_OK(cudaEventRecord(b.get(), up.get()));
      ZOFF_CUDA_OK(cudaEventSynchronize(b.get()));
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      st.SetIterationTime(s);
      wall_s += s;
    }
    st.counters["GBps"] = double(bytes) * double(st.iterations()) / wall_s / 1e9;
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
  }
}

void register_all() {
  benchmark::RegisterBenchmark("transfer/h2d/loaded", bm_loaded)
      ->ArgNames({"threads", "split"})
      ->ArgsProduct({{0, 2, 4, 8, 15}, {1, 2, 4}})
      ->Iterations(3)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  for (int64_t permille : {10, 70})
    for (int mode : {0, 1, 2, 3})
      for (int64_t chunk : {2, 8, 32})
        for (int64_t lead : {16, 64})
          benchmark::RegisterBenchmark("transfer/h2d/apply", bm_apply)
            ->ArgNames({"chunk_MiB", "lead_MiB", "mode", "changed_permille"})
            ->Args({chunk, lead, mode, permille})
            ->Iterations(3)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("transfer/h2d/spread", bm_spread)
      ->ArgName("GiB")
      ->Arg(32)
      ->Iterations(2)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  for (auto [name, how] : {std::pair{"host/pin/register", zoff::HostAlloc::Register},
                           std::pair{"host/pin/alloc", zoff::HostAlloc::CudaAlloc}})
    benchmark::RegisterBenchmark(name, [how = how](benchmark::State& st) { bm_pin(st, how); })
        ->ArgName("GiB")
        ->Arg(1)
        ->Arg(8)
        ->Iterations(3)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  for (Dir d : {Dir::H2D, Dir::D2H, Dir::Both})
    for (bool pinned : {true, false}) {
      std::string name = std::string("transfer/") + dir_name(d) + "/" + (pinned ? "pinned" : "pageable");
      benchmark::RegisterBenchmark(name.c_str(), [d, pinned](benchmark::State& st) { bm_copy(st, d, pinned); })
          ->ArgName("MiB")
          ->Arg(64)
          ->Arg(256)
          ->Arg(1024)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
}

void add_context() {
  try {
    benchmark::AddCustomContext("device", device_name());
  } catch (const std::exception& e) {
    benchmark::AddCustomContext("device", std::string("unavailable: ") + e.what());
  }
}

#else  // !ZOFF_WITH_CUDA

void register_all() {
  benchmark::RegisterBenchmark("transfer/skipped",
                               [](benchmark::State& st) { st.SkipWithError("built without CUDA"); });
}

void add_context() {
  std::fprintf(stderr, "bench_transfer: built without CUDA (no ZOFF_WITH_CUDA): nothing to measure\n");
  benchmark::AddCustomContext("device", "none (built without CUDA)");
}

#endif

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  add_context();
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
