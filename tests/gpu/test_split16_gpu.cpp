// split16_decode on the GPU against ref::split16_decode, bit for bit (Note [Split decode kernel]).
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/ref/scalar.h"
#include "kernels/split16.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define CK(expr) ck((expr), #expr)

constexpr uint8_t kPoison = 0xA5;
constexpr size_t kGuard = 64;

// A host block: planes buffer and escape list, either encoded from weights (as in training) or
// random bytes in every plane with a random sorted list (the decode is defined for any content).
struct HostBlock {
  std::vector<uint8_t> buf;
  std::vector<SplitEscape> esc;
};

HostBlock encoded_block(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  const float special[] = {0.0f, -0.0f, 1e-40f, -3e-39f, 1e-9f, std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN(), 3e38f};
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (uint16_t& x : v) x = ref::float_to_bf16_rne(rng() % 1009 == 0 ? special[rng() % 8] : nd(rng));
  HostBlock b;
  b.buf.assign(size_t(split_bytes(n)), kPoison);
  b.esc.resize(size_t(n));
  SplitEscapes e{b.esc.data(), 0, n};
  EXPECT_TRUE(ref::split16_encode(v.data(), split_planes(b.buf.data(), n), &e));
  b.esc.resize(size_t(e.count));
  return b;
}

HostBlock random_block(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  HostBlock b;
  b.buf.resize(size_t(split_bytes(n)));
  for (uint8_t& x : b.buf) x = uint8_t(rng());
  for (int64_t i = 0; i < n; ++i)
    if (rng() % 50 == 0) b.esc.push_back({uint32_t(i), uint32_t(rng() & 0xFFu)});
  return b;
}

// Decodes b on the device (planes at byte `plane_off` of their allocation, output at element
// `out_off`) and compares with the reference, the output's guards included.
void check_decode(const HostBlock& b, int64_t n, size_t plane_off, size_t out_off, const std::string& what) {
  SCOPED_TRACE(what);
  std::vector<uint16_t> want(static_cast<size_t>(n));
  const SplitPlanes hp = split_planes(const_cast<uint8_t*>(b.buf.data()), n);
  ref::split16_decode(hp, b.esc.data(), int64_t(b.esc.size()), want.data());

  uint8_t* dbuf = nullptr;
  uint16_t* dout = nullptr;
  void* hesc = nullptr;
  const size_t out_bytes = size_t(n) * 2 + 2 * out_off + kGuard;
  CK(cudaMalloc(&dbuf, b.buf.size() + plane_off));
  CK(cudaMalloc(&dout, out_bytes));
  CK(cudaHostAlloc(&hesc, b.esc.size() * sizeof(SplitEscape) + 16, cudaHostAllocMapped));
  if (!b.esc.empty()) std::memcpy(hesc, b.esc.data(), b.esc.size() * sizeof(SplitEscape));
  void* desc = nullptr;
  CK(cudaHostGetDevicePointer(&desc, hesc, 0));
  CK(cudaMemcpy(dbuf + plane_off, b.buf.data(), b.buf.size(), cudaMemcpyHostToDevice));
  CK(cudaMemset(dout, kPoison, out_bytes));
  split16_decode(split_planes(dbuf + plane_off, n), static_cast<const SplitEscape*>(desc), int64_t(b.esc.size()),
                 dout + out_off, nullptr);
  CK(cudaDeviceSynchronize());
  std::vector<uint8_t> got(out_bytes);
  CK(cudaMemcpy(got.data(), dout, out_bytes, cudaMemcpyDeviceToHost));
  CK(cudaFree(dbuf));
  CK(cudaFree(dout));
  CK(cudaFreeHost(hesc));

  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t g;
    std::memcpy(&g, got.data() + 2 * (out_off + size_t(i)), 2);
    if (g != want[size_t(i)] && bad++ < 5) ADD_FAILURE() << "element " << i << ": " << g << ", want " << want[size_t(i)];
  }
  EXPECT_EQ(bad, 0);
  const size_t end = 2 * (out_off + size_t(n));
  EXPECT_TRUE(std::all_of(got.begin(), got.begin() + std::ptrdiff_t(2 * out_off), [](uint8_t x) { return x == kPoison; }))
      << "bytes before the output written";
  EXPECT_TRUE(std::all_of(got.begin() + std::ptrdiff_t(end), got.end(), [](uint8_t x) { return x == kPoison; }))
      << "bytes after the output written";
}

TEST(Split16Gpu, DecodeMatchesReference) {
  struct Off {
    size_t plane, out;
  };
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(9), int64_t(255), int64_t(257), int64_t(4097), int64_t(3000001)})
    for (Off o : {Off{0, 0}, Off{0, 1}, Off{1, 0}}) {  // aligned: vector path; misaligned: element by element
      const std::string what = "n " + std::to_string(n) + " plane_off " + std::to_string(o.plane) + " out_off " +
                               std::to_string(o.out);
      check_decode(encoded_block(n, uint32_t(n)), n, o.plane, o.out, what + " encoded");
      check_decode(random_block(n, uint32_t(n) + 1), n, o.plane, o.out, what + " random");
    }
}

TEST(Split16Gpu, EmptyBlockAndBadArguments) {
  split16_decode(SplitPlanes{nullptr, nullptr, nullptr, 0}, nullptr, 0, nullptr, nullptr);  // nothing to do
  uint8_t* d = nullptr;
  CK(cudaMalloc(&d, 64));
  EXPECT_THROW(split16_decode(SplitPlanes{nullptr, nullptr, nullptr, 8}, nullptr, 0, reinterpret_cast<uint16_t*>(d), nullptr),
               zoff::Error);
  EXPECT_THROW(split16_decode(split_planes(d, 8), nullptr, 3, reinterpret_cast<uint16_t*>(d), nullptr), zoff::Error);
  CK(cudaFree(d));
}

}  // namespace
}  // namespace zoff::k
