// zo_update_fp8 on the GPU against its CPU reference: codes, forward weights and exception list, bit for bit.
#include <gtest/gtest.h>

#include <cmath>

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/fp8_site.h"

namespace zoff::k {
namespace {

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define CK(expr) ck((expr), #expr)

template <typename T>
struct Dev {
  explicit Dev(size_t n) : n_(n) { CK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T))); }
  ~Dev() { cudaFree(p); }
  void put(const std::vector<T>& v) { CK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> get() const {
    std::vector<T> v(n_);
    CK(cudaMemcpy(v.data(), p, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
  T* p = nullptr;
  size_t n_;
};

void run(int64_t n, int64_t row_len, Dist dist, int nterms, Elem w_elem, uint32_t seed, int64_t first = 0,
         int64_t capacity = -1) {
  SCOPED_TRACE("n " + std::to_string(n) + " row_len " + std::to_string(row_len) + " dist " + std::to_string(int(dist)) +
               " nterms " + std::to_string(nterms) + " w " + std::to_string(int(w_elem)) + " first " + std::to_string(first) +
               " capacity " + std::to_string(capacity));
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<uint16_t> master(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float v = nd(rng);
    if (i % 97 == 5) v = 0.0f;
    if (i % 89 == 3) v *= 1e-5f;
    master[size_t(i)] = f32_to_bf16_bits_rne(v);
  }
  const int64_t rows = (n + row_len - 1) / row_len;
  std::vector<uint8_t> q(static_cast<size_t>(n));
  std::vector<float> sc(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t b = r * row_len, e = std::min(n, b + row_len);
    ref::pack_fp8_exact(master.data() + b, 1, e - b, q.data() + b, sc.data() + r);
  }
  // Every e4m3 byte, NaN (0x7F, 0xFF) and subnormals included, through the decode (Note [Hardware
  // e4m3 decode]): the kernel reads only q, so bytes the packing would not make are fair inputs.
  for (int64_t i = 11; i < n; i += 61) q[size_t(i)] = uint8_t(i * 37 / 61);
  std::vector<ZTerm> terms;
  for (int t = 0; t < nterms; ++t) terms.push_back(ZTerm{77u + uint64_t(t), (t % 2 ? -1.5e-6f : 3e-6f)});
  const int64_t cap = capacity >= 0 ? capacity : n / 16 + 16, ncodes = (n + 3) / 4 + 2;
  const size_t wbytes = w_elem == Elem::F32 ? 4 : 2;
  // Reference.
  std::vector<uint8_t> rcodes(size_t(ncodes), 0xAB);
  std::vector<Fp8Entry> rlist(static_cast<size_t>(cap));
  unsigned long long rcount = 0;
  std::vector<uint8_t> rw(size_t(n) * wbytes, 0xCD);
  Fp8UpdateArgs a{};
  a.q = q.data();
  a.row_scales = sc.data();
  a.row_len = row_len;
  a.w = rw.data();
  a.w_elem = w_elem;
  a.n = n;
  a.pid = 0x1234;
  a.dist = dist;
  a.terms = terms.data();
  a.nterms = nterms;
  a.sr_seed = 99;
  a.first = first;
  a.delta = Fp8DeltaOut{rcodes.data(), rlist.data(), cap, &rcount, 8};
  ref::zo_update_fp8(a);
  // GPU, outputs poisoned.
  Dev<uint8_t> dq(static_cast<size_t>(n)), dcodes(static_cast<size_t>(ncodes)), dw(size_t(n) * wbytes);
  Dev<float> dsc(static_cast<size_t>(rows));
  Dev<Fp8Entry> dlist(static_cast<size_t>(cap));
  Dev<unsigned long long> dcount(1);
  dq.put(q);
  dsc.put(sc);
  CK(cudaMemset(dcodes.p, 0xAB, size_t(ncodes)));
  CK(cudaMemset(dw.p, 0xCD, size_t(n) * wbytes));
  CK(cudaMemset(dcount.p, 0, sizeof(unsigned long long)));
  Fp8UpdateArgs g = a;
  g.q = dq.p;
  g.row_scales = dsc.p;
  g.w = dw.p;
  g.delta = Fp8DeltaOut{dcodes.p, dlist.p, cap, dcount.p, 8};
  zo_update_fp8(g, nullptr);
  CK(cudaDeviceSynchronize());
  const unsigned long long gcount = dcount.get()[0];
  ASSERT_EQ(gcount, rcount);
  const std::vector<uint8_t> gcodes = dcodes.get(), gw = dw.get();
  for (int64_t j = 0; j < (n + 3) / 4; ++j) ASSERT_EQ(int(gcodes[size_t(j)]), int(rcodes[size_t(j)])) << "code byte " << j;
  ASSERT_EQ(gcodes[size_t((n + 3) / 4) + 1], 0xAB) << "wrote past the codes";
  // Bit for bit, except that any NaN matches any NaN: a NaN byte of q (a NaN master) makes a NaN
  // weight whose payload the GPU's arithmetic canonicalises and the CPU's keeps.
  auto is_nan = [w_elem](uint32_t b) {
    return w_elem == Elem::F32 ? std::isnan(bits_f32(b)) : (b & 0x7FFFu) > (w_elem == Elem::BF16 ? 0x7F80u : 0x7C00u);
  };
  for (int64_t i = 0; i < n; ++i) {
    uint32_t gb = 0, rb = 0;
    std::memcpy(&gb, gw.data() + size_t(i) * wbytes, wbytes);
    std::memcpy(&rb, rw.data() + size_t(i) * wbytes, wbytes);
    if (gb == rb) continue;
    ASSERT_TRUE(is_nan(gb) && is_nan(rb)) << "forward weight " << i << " differs: gpu 0x" << std::hex << gb << " cpu 0x"
                                          << rb << " (q 0x" << int(q[size_t(i)]) << ")";
  }
  const size_t m = size_t(std::min<unsigned long long>(rcount, (unsigned long long)cap));
  std::vector<Fp8Entry> gl = dlist.get();
  gl.resize(m);
  auto by_index = [](const Fp8Entry& x, const Fp8Entry& y) { return x.index < y.index; };
  std::sort(gl.begin(), gl.end(), by_index);
  if (rcount > (unsigned long long)cap) {
    // Overflowed: which entries got the slots depends on the device's order; each stored one must
    // be one of the reference's (taken again with room for all).
    std::vector<Fp8Entry> all(static_cast<size_t>(rcount));
    unsigned long long c2 = 0;
    Fp8UpdateArgs b = a;
    b.delta = Fp8DeltaOut{rcodes.data(), all.data(), int64_t(rcount), &c2, 8};
    ref::zo_update_fp8(b);
    ASSERT_EQ(c2, rcount);
    std::sort(all.begin(), all.end(), by_index);
    for (const Fp8Entry& e : gl) {
      auto it = std::lower_bound(all.begin(), all.end(), e, by_index);
      ASSERT_TRUE(it != all.end() && it->index == e.index) << "stored entry " << e.index << " is not an exception";
      ASSERT_EQ(it->r16, e.r16);
      ASSERT_EQ(f32_bits(it->acc), f32_bits(e.acc));
    }
    for (size_t s = 1; s < gl.size(); ++s) ASSERT_NE(gl[s].index, gl[s - 1].index) << "an entry stored twice";
    return;
  }
  rlist.resize(m);
  std::sort(rlist.begin(), rlist.end(), by_index);
  for (size_t s = 0; s < m; ++s) {
    ASSERT_EQ(gl[s].index, rlist[s].index);
    ASSERT_EQ(gl[s].r16, rlist[s].r16);
    ASSERT_EQ(f32_bits(gl[s].acc), f32_bits(rlist[s].acc));
  }
  if (n > 100000) {
    EXPECT_GT(rcount, 0u);
  }
}

TEST(KernelsGpu, ZoUpdateFp8MatchesReference) {
  uint32_t seed = 5;
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(4097), int64_t(10000003)})
    for (Dist d : {Dist::Gaussian, Dist::Rademacher})
      for (int nt : {1, 3}) run(n, n < 5000 ? 13 : 4096, d, nt, Elem::BF16, seed++);
  run(4097, 64, Dist::Gaussian, 2, Elem::F32, seed++);
  run(4097, 4097, Dist::Gaussian, 1, Elem::F16, seed++);
  // Note [fp8 update kernel layout]: rows of a multiple of 8 (one scale per thread), a parameter
  // that starts mid-way (first), lanes past the end in the last warp, and a list that overflows.
  for (Dist d : {Dist::Gaussian, Dist::Rademacher}) {
    run(3000017, 5120, d, 1, Elem::BF16, seed++, 8 * 12345);
    run(5125, 40, d, 2, Elem::F16, seed++, 8 * 3);
    run(2000000, 5120, d, 1, Elem::BF16, seed++, 0, 37);
    run(2000001, 13, d, 1, Elem::F32, seed++, 8, 5);
  }
}

}  // namespace
}  // namespace zoff::k
