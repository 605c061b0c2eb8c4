// Every CUDA kernel of kernels/ against its CPU reference, on random data, outputs poisoned first.
#include <gtest/gtest.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/host/zo_host.h"
#include "kernels/lowrank.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define CK(expr) ck((expr), #expr)

// A device buffer with `pad` spare bytes in front, so tests can start at a misaligned address.
struct DevBuf {
  explicit DevBuf(size_t bytes) : bytes_(bytes) { CK(cudaMalloc(&p_, bytes + 64)); }
  ~DevBuf() { cudaFree(p_); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  char* at(size_t off) const { return static_cast<char*>(p_) + off; }
  void* p_ = nullptr;
  size_t bytes_;
};

// The sizes every kernel is checked at; ZOFF_KERNEL_TEST_MAX_N drops the larger ones (for runs
// under compute-sanitizer, which is ~100x slower).
std::vector<int64_t> test_sizes() {
  const char* env = std::getenv("ZOFF_KERNEL_TEST_MAX_N");
  const int64_t cap = env ? std::atoll(env) : INT64_MAX;
  std::vector<int64_t> v;
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(4097), int64_t(10000003)})
    if (n <= cap) v.push_back(n);
  return v;
}
const std::vector<int64_t> kSizes = test_sizes();
int64_t max_n() { return kSizes.empty() ? 0 : kSizes.back(); }

// Standard normal values in dtype e; with `specials`, every 61st element is instead one of the
// edge cases of the rounding paths (Note [Hardware bf16 rounding]): +-0, +-inf, subnormals of the
// dtype and of fp32, the largest finite values, and values halfway between two 16-bit neighbours.
// (No NaN: GPU arithmetic returns a canonical NaN where the CPU keeps the payload.)
std::vector<uint8_t> random_bits(Elem e, int64_t n, uint32_t seed, bool specials = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  const int es = elem_size(e);
  std::vector<uint8_t> v(size_t(n) * es);
  const float inf = std::numeric_limits<float>::infinity();
  const float special[] = {0.0f, -0.0f, inf, -inf, 1e-40f, -3e-39f, 1e-45f, 5.9e-8f, -6.1e-5f, 3.0e38f,
                           -3.38e38f, 65504.0f, -65504.0f, 1.00390625f, 1.01171875f, -2.0078125f};
  for (int64_t i = 0; i < n; ++i) {
    float f = specials && i % 61 == 7 ? special[(i / 61) % 16] : nd(rng);
    uint32_t b = e == Elem::F32 ? f32_bits(f)
                 : e == Elem::F16 ? ref::float_to_f16_rne(f)
                 : e == Elem::BF16 ? ref::float_to_bf16_rne(f)
                                   : ref::float_to_e4m3_rne(f * 60.0f);
    std::memcpy(v.data() + i * es, &b, size_t(es));
  }
  return v;
}

uint32_t bits_at(const std::vector<uint8_t>& v, int es, int64_t i) {
  uint32_t b = 0;
  std::memcpy(&b, v.data() + i * es, size_t(es));
  return b;
}

float value_of(Elem e, uint32_t b) {
  return e == Elem::F32 ? bits_f32(b) : e == Elem::F16 ? ref::f16_to_float(uint16_t(b)) : ref::bf16_to_float(uint16_t(b));
}

// Distance in units in the last place of the dtype (sign-magnitude codes made monotone).
int64_t ulp_distance(Elem e, uint32_t a, uint32_t b) {
  const int bits = elem_size(e) * 8;
  const uint32_t sign = 1u << (bits - 1), mag = sign - 1;
  auto ord = [&](uint32_t x) { return (x & sign) ? -int64_t(x & mag) : int64_t(x & mag); };
  return std::llabs(ord(a) - ord(b));
}

std::vector<ZTerm> terms_for(int n, uint64_t base) {
  std::vector<ZTerm> t;
  for (int k = 0; k < n; ++k) t.push_back({step_seed(base, 9, uint64_t(k)), 2e-3f * float(k % 2 ? -1 - k : 1 + k)});
  return t;
}

// GPU and CPU outputs must agree bit for bit (Note [Bit-identical Box-Muller], Note [One
// arithmetic, two compilers]); on a mismatch, report how far apart they are.
void compare(Elem e, const std::vector<uint8_t>& gpu, const std::vector<uint8_t>& cpu, int64_t n,
             const std::string& what) {
  const int es = elem_size(e);
  int64_t worst = 0, bad = 0, first_bad = -1;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t a = bits_at(gpu, es, i), b = bits_at(cpu, es, i);
    if (a == b) continue;
    if (bad++ == 0) first_bad = i;
    float fa = value_of(e, a), fb = value_of(e, b);
    worst = std::max(worst, std::isnan(fa) || std::isnan(fb) ? INT64_MAX : ulp_distance(e, a, b));
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " elements differ, worst by " << worst << " ulp; first " << first_bad
                    << " gpu " << (first_bad >= 0 ? value_of(e, bits_at(gpu, es, first_bad)) : 0.0f) << " cpu "
                    << (first_bad >= 0 ? value_of(e, bits_at(cpu, es, first_bad)) : 0.0f);
}

// Note [Unchecked division and square root]: every radius and angle input of the sampler, GPU
// against CPU, bit for bit (2^24 each; the radius of v and the angle of v + 1 come out together).
TEST(KernelsGpu, BoxMullerPiecesExhaustive) {
  const int64_t n = int64_t(1) << 24, chunk = int64_t(1) << 22;
  DevBuf buf(size_t(chunk) * 12);
  std::vector<uint8_t> gpu(size_t(chunk) * 12), cpu(size_t(chunk) * 12);
  for (int64_t first = 0; first < n; first += chunk) {
    CK(cudaMemset(buf.p_, 0xFF, size_t(chunk) * 12));
    box_muller_pieces(uint32_t(first), chunk, static_cast<float*>(buf.p_), nullptr);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(gpu.data(), buf.p_, gpu.size(), cudaMemcpyDeviceToHost));
    ref::box_muller_pieces(uint32_t(first), chunk, reinterpret_cast<float*>(cpu.data()));
    compare(Elem::F32, gpu, cpu, 3 * chunk, "box_muller_pieces from " + std::to_string(first));
  }
}

// Note [Counted copy]: counts of 0, below and above the capacity, odd byte totals, into device
// memory and into mapped host memory; bytes past the copied prefix stay as poisoned.
TEST(KernelsGpu, CopyCountedMatchesReference) {
  for (int64_t elem : {int64_t(8), int64_t(1), int64_t(4)})
    for (int64_t cap : {int64_t(1), int64_t(7), int64_t(4097), int64_t(1000003)})
      for (unsigned long long count : {0ull, 1ull, 5ull, 4096ull, 1000003ull, 5000000ull})
        for (bool mapped : {false, true}) {
          const size_t bytes = size_t(cap * elem);
          std::vector<uint8_t> src(bytes), gpu(bytes), cpu(bytes, 0xAB);
          std::mt19937 rng(uint32_t(cap + count));
          for (auto& b : src) b = uint8_t(rng());
          DevBuf dsrc(bytes), dcount(8);
          CK(cudaMemcpy(dsrc.p_, src.data(), bytes, cudaMemcpyHostToDevice));
          CK(cudaMemcpy(dcount.p_, &count, 8, cudaMemcpyHostToDevice));
          void* host = nullptr;
          void* dst = nullptr;
          DevBuf ddst(bytes);
          if (mapped) {
            CK(cudaHostAlloc(&host, bytes, cudaHostAllocMapped));
            std::memset(host, 0xAB, bytes);
            CK(cudaHostGetDevicePointer(&dst, host, 0));
          } else {
            CK(cudaMemset(ddst.p_, 0xAB, bytes));
            dst = ddst.p_;
          }
          copy_counted(dst, dsrc.p_, static_cast<unsigned long long*>(dcount.p_), cap, elem, nullptr);
          CK(cudaDeviceSynchronize());
          if (mapped) std::memcpy(gpu.data(), host, bytes);
          else CK(cudaMemcpy(gpu.data(), ddst.p_, bytes, cudaMemcpyDeviceToHost));
          if (host != nullptr) CK(cudaFreeHost(host));
          ref::copy_counted(cpu.data(), src.data(), &count, cap, elem);
          EXPECT_TRUE(gpu == cpu) << "elem " << elem << " cap " << cap << " count " << count << " mapped " << mapped;
        }
}

// Note [Packed codes]: bitmap, packed words and count as the reference writes them, into mapped
// host memory (as DeltaBuffers uses it) and device memory; sizes around words, bitmap words and
// tiles, densities from none to every word, and a large block (many tiles per packing block).
TEST(KernelsGpu, PackCodesMatchesReference) {
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(33), int64_t(1024), int64_t(32 * 2048 + 5), int64_t(32 * 2048 * 70 + 32 * 9 + 3)})
    for (double density : {0.0, 0.01, 0.3, 1.0})
      for (bool mapped : {true, false}) {
        const std::string what = "n " + std::to_string(n) + " density " + std::to_string(density) +
                                 (mapped ? " mapped" : " device");
        const int64_t W = pack_code_words(n), B = pack_bitmap_words(n);
        std::mt19937_64 rng(uint64_t(n) * 31 + uint64_t(density * 100));
        std::uniform_real_distribution<double> u(0.0, 1.0);
        std::vector<uint8_t> codes(size_t(8 * W), 0);
        for (int64_t w = 0; w < W; ++w)
          if (u(rng) < density) {
            uint64_t cw = rng() & rng();
            if (w == W - 1 && n % 32 != 0) cw &= (uint64_t(1) << (2 * (n % 32))) - 1;
            if (cw == 0) cw = 1;
            std::memcpy(codes.data() + 8 * w, &cw, 8);
          }
        std::vector<uint32_t> want_bitmap(static_cast<size_t>(B));
        std::vector<uint64_t> want_packed(static_cast<size_t>(W));
        unsigned long long want_count = 0;
        ref::pack_codes({codes.data(), n, want_bitmap.data(), want_packed.data(), &want_count, nullptr});
        DevBuf dcodes(codes.size() + 8), dcount(8), dscratch(size_t(4 * pack_codes_scratch_words(n)) + 4);
        DevBuf dbitmap(size_t(4 * B) + 4), dpacked(size_t(8 * W) + 8);
        CK(cudaMemcpy(dcodes.p_, codes.data(), codes.size(), cudaMemcpyHostToDevice));
        CK(cudaMemset(dcount.p_, 0xAB, 8));
        void* hb = nullptr;
        void* hp = nullptr;
        uint32_t* bitmap = static_cast<uint32_t*>(dbitmap.p_);
        uint64_t* packed = static_cast<uint64_t*>(dpacked.p_);
        if (mapped) {
          CK(cudaHostAlloc(&hb, size_t(4 * B) + 4, cudaHostAllocMapped));
          CK(cudaHostAlloc(&hp, size_t(8 * W) + 8, cudaHostAllocMapped));
          std::memset(hb, 0xCD, size_t(4 * B) + 4);
          std::memset(hp, 0xCD, size_t(8 * W) + 8);
          void* d = nullptr;
          CK(cudaHostGetDevicePointer(&d, hb, 0));
          bitmap = static_cast<uint32_t*>(d);
          CK(cudaHostGetDevicePointer(&d, hp, 0));
          packed = static_cast<uint64_t*>(d);
        } else {
          CK(cudaMemset(dbitmap.p_, 0xCD, size_t(4 * B) + 4));
          CK(cudaMemset(dpacked.p_, 0xCD, size_t(8 * W) + 8));
        }
        PackCodesArgs a{static_cast<const uint8_t*>(dcodes.p_), n, bitmap, packed,
                        static_cast<unsigned long long*>(dcount.p_), static_cast<uint32_t*>(dscratch.p_)};
        pack_codes(a, nullptr);
        CK(cudaDeviceSynchronize());
        std::vector<uint32_t> got_bitmap(size_t(B) + 1);
        std::vector<uint64_t> got_packed(size_t(W) + 1);
        unsigned long long got_count = 0;
        CK(cudaMemcpy(&got_count, dcount.p_, 8, cudaMemcpyDeviceToHost));
        if (mapped) {
          std::memcpy(got_bitmap.data(), hb, got_bitmap.size() * 4);
          std::memcpy(got_packed.data(), hp, got_packed.size() * 8);
          CK(cudaFreeHost(hb));
          CK(cudaFreeHost(hp));
        } else {
          CK(cudaMemcpy(got_bitmap.data(), dbitmap.p_, got_bitmap.size() * 4, cudaMemcpyDeviceToHost));
          CK(cudaMemcpy(got_packed.data(), dpacked.p_, got_packed.size() * 8, cudaMemcpyDeviceToHost));
        }
        ASSERT_EQ(got_count, want_count) << what;
        for (int64_t i = 0; i < B; ++i) ASSERT_EQ(got_bitmap[size_t(i)], want_bitmap[size_t(i)]) << what << " bitmap word " << i;
        EXPECT_EQ(got_bitmap[size_t(B)], 0xCDCDCDCDu) << what << ": wrote past the bitmap";
        for (unsigned long long i = 0; i < want_count; ++i)
          ASSERT_EQ(got_packed[size_t(i)], want_packed[size_t(i)]) << what << " packed word " << i;
        EXPECT_EQ(got_packed[size_t(want_count)], 0xCDCDCDCDCDCDCDCDull) << what << ": wrote past the packed words";
      }
}

TEST(KernelsGpu, FillZMatchesReference) {
  for (int64_t n : kSizes)
    for (Dist d : {Dist::Gaussian, Dist::Rademacher})
      for (size_t off : {size_t(0), size_t(4)}) {
        DevBuf buf(size_t(n) * 4);
        CK(cudaMemset(buf.p_, 0xFF, size_t(n) * 4 + 64));  // NaN everywhere
        float* out = reinterpret_cast<float*>(buf.at(off));
        fill_z(out, n, 777, 888, d, nullptr);
        CK(cudaDeviceSynchronize());
        std::vector<uint8_t> gpu(size_t(n) * 4), cpu(size_t(n) * 4);
        CK(cudaMemcpy(gpu.data(), out, gpu.size(), cudaMemcpyDeviceToHost));
        ref::fill_z(reinterpret_cast<float*>(cpu.data()), n, 777, 888, d);
        compare(Elem::F32, gpu, cpu, n, "fill_z n " + std::to_string(n) + " dist " + std::to_string(int(d)) +
                                            " offset " + std::to_string(off));
      }
}

struct UpdateCfg {
  int nterms;
  float decay;
  uint64_t sr;
  int64_t first;
  size_t off;  // bytes added to the device pointer (misaligned start when not a multiple of 16)
};

TEST(KernelsGpu, ZoUpdateMatchesReference) {
  const uint64_t pid = param_id("model.layers.7.self_attn.o_proj.weight");
  for (int64_t n : kSizes)
    for (Elem e : {Elem::F32, Elem::F16, Elem::BF16})
      for (Dist d : {Dist::Gaussian, Dist::Rademacher})
        for (UpdateCfg c : {UpdateCfg{1, 0.0f, 0, 0, 0}, UpdateCfg{3, 1e-2f, 0, 5, 0},
                            UpdateCfg{11, 0.0f, 0x5eedull, 0, 0}, UpdateCfg{2, 0.0f, 17, 0, size_t(elem_size(e))},   // misaligned: all scalar
                            UpdateCfg{2, 0.0f, 17, 1, size_t(elem_size(e))}}) {  // scalar head, vector body
          if (n > 100000 && c.nterms == 11 && e == Elem::F32) continue;
          std::string what = "zo_update n " + std::to_string(n) + " elem " + std::to_string(int(e)) + " dist " +
                             std::to_string(int(d)) + " nterms " + std::to_string(c.nterms) + " sr " +
                             std::to_string(c.sr) + " first " + std::to_string(c.first) + " off " + std::to_string(c.off);
          SCOPED_TRACE(what);
          std::vector<uint8_t> theta = random_bits(e, n, uint32_t(n + c.nterms), true), cpu = theta, gpu(theta.size());
          std::vector<ZTerm> terms = terms_for(c.nterms, 4);
          DevBuf buf(theta.size());
          void* dp = buf.at(c.off);
          CK(cudaMemcpy(dp, theta.data(), theta.size(), cudaMemcpyHostToDevice));
          UpdateArgs a{dp, e, n, pid, d, terms.data(), c.nterms, c.decay, c.sr};
          a.first = c.first;
          zo_update(a, nullptr);
          CK(cudaDeviceSynchronize());
          CK(cudaMemcpy(gpu.data(), dp, gpu.size(), cudaMemcpyDeviceToHost));
          a.theta = cpu.data();
          ref::zo_update(a);
          compare(e, gpu, cpu, n, what);
        }
}

TEST(KernelsGpu, ZoPerturbMatchesReference) {
  const uint64_t pid = param_id("model.decoder.layers.2.fc1.weight");
  for (int64_t n : kSizes)
    for (Elem out : {Elem::F32, Elem::F16, Elem::BF16})
      for (Elem src : {Elem::F32, Elem::F16, Elem::BF16, Elem::F8E4M3})
        for (Dist d : {Dist::Gaussian, Dist::Rademacher})
          for (int cfg = 0; cfg < 3; ++cfg) {
            if (n > 100000 && cfg == 1) continue;
            const int nterms = cfg == 1 ? 9 : cfg == 2 ? 0 : 1;
            const int64_t first = cfg == 1 ? 16 : 0;  // vector body from a tile's middle
            const size_t off = cfg == 2 ? size_t(elem_size(src)) : 0;  // misaligned source
            const int64_t row_len = n > 100 ? 1000 : 3;
            std::string what = "zo_perturb n " + std::to_string(n) + " out " + std::to_string(int(out)) + " src " +
                               std::to_string(int(src)) + " dist " + std::to_string(int(d)) + " cfg " + std::to_string(cfg);
            SCOPED_TRACE(what);
            std::vector<uint8_t> s = random_bits(src, n, uint32_t(3 * n + cfg), src != Elem::F8E4M3);
            std::vector<float> scales(size_t((n + row_len - 1) / row_len));
            for (size_t r = 0; r < scales.size(); ++r) scales[r] = 1e-3f * float(r % 97 + 1);
            std::vector<ZTerm> terms = terms_for(nterms, 8);
            const size_t ob = size_t(n) * elem_size(out);
            DevBuf dsrc(s.size()), dout(ob), dscales(scales.size() * 4);
            CK(cudaMemcpy(dsrc.at(off), s.data(), s.size(), cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dscales.p_, scales.data(), scales.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemset(dout.p_, 0xFF, ob + 64));  // NaN in every dtype
            PerturbArgs a{dout.p_, out, dsrc.at(off), src, static_cast<float*>(dscales.p_), row_len, n, pid, d,
                          terms.data(), nterms};
            a.first = first;
            zo_perturb(a, nullptr);
            CK(cudaDeviceSynchronize());
            std::vector<uint8_t> gpu(ob), cpu(ob, 0xFF);
            CK(cudaMemcpy(gpu.data(), dout.p_, ob, cudaMemcpyDeviceToHost));
            a.out = cpu.data();
            a.src = s.data();
            a.row_scales = scales.data();
            ref::zo_perturb(a);
            compare(out, gpu, cpu, n, what);
          }
}

// Note [Mirror perturbation]: out and out2 from one fused pass equal the reference's two calls
// (the second with negated coefficients), bit for bit; fused (src == out dtype, <= 8 terms),
// fallback (other source dtypes, 9 terms), misaligned out2 (scalar path) and a `first` offset.
TEST(KernelsGpu, ZoPerturbMirrorMatchesTwoReferenceCalls) {
  const uint64_t pid = param_id("model.decoder.layers.5.self_attn.q_proj.weight");
  for (int64_t n : kSizes)
    for (Elem out : {Elem::F32, Elem::F16, Elem::BF16})
      for (Elem src : {out, Elem::F32})
        for (Dist d : {Dist::Gaussian, Dist::Rademacher})
          for (int cfg = 0; cfg < 3; ++cfg) {
            if (n > 100000 && cfg == 1) continue;
            const int nterms = cfg == 1 ? 9 : 1;
            const int64_t first = cfg == 2 ? 8 : 0;
            const size_t off2 = cfg == 2 ? size_t(elem_size(out)) : 0;  // out2 misaligned against out
            std::string what = "mirror n " + std::to_string(n) + " out " + std::to_string(int(out)) + " src " +
                               std::to_string(int(src)) + " dist " + std::to_string(int(d)) + " cfg " + std::to_string(cfg);
            SCOPED_TRACE(what);
            std::vector<uint8_t> sv = random_bits(src, n, uint32_t(5 * n + cfg));
            std::vector<ZTerm> terms = terms_for(nterms, 21);
            const size_t ob = size_t(n) * elem_size(out);
            DevBuf dsrc(sv.size()), d1(ob), d2(ob);
            CK(cudaMemcpy(dsrc.p_, sv.data(), sv.size(), cudaMemcpyHostToDevice));
            CK(cudaMemset(d1.p_, 0xFF, ob + 64));
            CK(cudaMemset(d2.p_, 0xFF, ob + 64));
            PerturbArgs a{d1.p_, out, dsrc.p_, src, nullptr, 0, n, pid, d, terms.data(), nterms};
            a.first = first;
            a.out2 = d2.at(off2);
            zo_perturb(a, nullptr);
            CK(cudaDeviceSynchronize());
            std::vector<uint8_t> g1(ob), g2(ob), c1(ob, 0xFF), c2(ob, 0xFF);
            CK(cudaMemcpy(g1.data(), d1.p_, ob, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(g2.data(), d2.at(off2), ob, cudaMemcpyDeviceToHost));
            PerturbArgs r = a;
            r.src = sv.data();
            r.out = c1.data();
            r.out2 = nullptr;
            ref::zo_perturb(r);
            std::vector<ZTerm> neg = terms;
            for (ZTerm& t : neg) t.coeff = -t.coeff;
            r.out = c2.data();
            r.terms = neg.data();
            ref::zo_perturb(r);
            compare(out, g1, c1, n, what + " out");
            compare(out, g2, c2, n, what + " out2");
          }
}

TEST(KernelsGpu, PackFp8MatchesReferenceBitForBit) {
  struct Shape {
    int64_t rows, cols;
  };
  for (Shape sh : {Shape{1, 1}, Shape{1, 7}, Shape{4097, 1}, Shape{1, 4097}, Shape{1000, 10003}, Shape{2048, 4096}})
    for (Elem e : {Elem::F32, Elem::F16, Elem::BF16}) {
      const int64_t n = sh.rows * sh.cols;
      if (n > max_n()) continue;
      std::string what = "pack_fp8 " + std::to_string(sh.rows) + "x" + std::to_string(sh.cols) + " elem " + std::to_string(int(e));
      SCOPED_TRACE(what);
      std::vector<uint8_t> s = random_bits(e, n, uint32_t(n));
      DevBuf dsrc(s.size()), ddst(static_cast<size_t>(n)), dsc(size_t(sh.rows) * 4);
      CK(cudaMemcpy(dsrc.p_, s.data(), s.size(), cudaMemcpyHostToDevice));
      CK(cudaMemset(ddst.p_, 0xFF, size_t(n)));
      CK(cudaMemset(dsc.p_, 0xFF, size_t(sh.rows) * 4));
      pack_fp8_rows({dsrc.p_, e, sh.rows, sh.cols, static_cast<uint8_t*>(ddst.p_), static_cast<float*>(dsc.p_)}, nullptr);
      CK(cudaDeviceSynchronize());
      std::vector<uint8_t> gq(static_cast<size_t>(n)), cq(static_cast<size_t>(n));
      std::vector<float> gs(static_cast<size_t>(sh.rows)), cs(static_cast<size_t>(sh.rows));
      CK(cudaMemcpy(gq.data(), ddst.p_, size_t(n), cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(gs.data(), dsc.p_, gs.size() * 4, cudaMemcpyDeviceToHost));
      ref::pack_fp8_rows({s.data(), e, sh.rows, sh.cols, cq.data(), cs.data()});
      int64_t bad_q = 0, bad_s = 0;
      for (int64_t i = 0; i < n; ++i) bad_q += gq[size_t(i)] != cq[size_t(i)];
      for (int64_t r = 0; r < sh.rows; ++r) bad_s += f32_bits(gs[size_t(r)]) != f32_bits(cs[size_t(r)]);
      EXPECT_EQ(bad_q, 0);
      EXPECT_EQ(bad_s, 0);
    }
}

TEST(KernelsGpu, LowRankMatchesReference) {
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  struct Shape {
    int64_t m, n, r;
  };
  for (Shape sh : {Shape{1, 7, 1}, Shape{33, 4097, 4}, Shape{1024, 1000, 16}, Shape{3000, 3337, 32}})
    for (Elem e : {Elem::F32, Elem::F16, Elem::BF16}) {
      if (sh.m * sh.n > max_n()) continue;
      std::string what = "lowrank " + std::to_string(sh.m) + "x" + std::to_string(sh.n) + " r " +
                         std::to_string(sh.r) + " elem " + std::to_string(int(e));
      SCOPED_TRACE(what);
      std::mt19937 rng(uint32_t(sh.m + sh.n + sh.r));
      std::normal_distribution<float> nd;
      std::vector<float> u(size_t(sh.m * sh.r)), z(size_t(sh.r * sh.r)), v(size_t(sh.n * sh.r));
      for (auto* x : {&u, &z, &v})
        for (float& f : *x) f = nd(rng);
      const float alpha = 0.1f / float(sh.r);
      std::vector<uint8_t> w = random_bits(e, sh.m * sh.n, 5), cpu = w, gpu(w.size());
      DevBuf dw(w.size()), du(u.size() * 4), dz(z.size() * 4), dv(v.size() * 4);
      size_t sb = lowrank_scratch_bytes(sh.m, sh.n, sh.r, e);
      DevBuf scratch(sb);
      CK(cudaMemcpy(dw.p_, w.data(), w.size(), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(du.p_, u.data(), u.size() * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dz.p_, z.data(), z.size() * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dv.p_, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
      LowRankArgs a{dw.p_, e, sh.m, sh.n, sh.r, static_cast<float*>(du.p_), static_cast<float*>(dz.p_),
                    static_cast<float*>(dv.p_), alpha};
      lowrank_update(a, h, scratch.p_, sb, nullptr);
      CK(cudaDeviceSynchronize());
      CK(cudaMemcpy(gpu.data(), dw.p_, gpu.size(), cudaMemcpyDeviceToHost));
      LowRankArgs c{cpu.data(), e, sh.m, sh.n, sh.r, u.data(), z.data(), v.data(), alpha};
      ref::lowrank_update(c);
      // Tolerance: one ulp of W, plus the factors' rounding on the scale alpha * sum |U Z| |V|.
      std::vector<double> t(size_t(sh.m * sh.r), 0.0);
      for (int64_t i = 0; i < sh.m; ++i)
        for (int64_t k = 0; k < sh.r; ++k)
          for (int64_t l = 0; l < sh.r; ++l) t[size_t(i * sh.r + k)] += std::fabs(double(u[size_t(i * sh.r + l)]) * z[size_t(l * sh.r + k)]);
      const double rel = e == Elem::F32 ? std::ldexp(1.0, -20) : e == Elem::F16 ? std::ldexp(1.0, -9) : std::ldexp(1.0, -6);
      int64_t bad = 0;
      const int es = elem_size(e);
      for (int64_t i = 0; i < sh.m; ++i)
        for (int64_t j = 0; j < sh.n; ++j) {
          int64_t x = i * sh.n + j;
          uint32_t ga = bits_at(gpu, es, x), cb = bits_at(cpu, es, x);
          if (ga == cb) continue;
          double mag = 0;
          for (int64_t k = 0; k < sh.r; ++k) mag += t[size_t(i * sh.r + k)] * std::fabs(double(v[size_t(j * sh.r + k)]));
          double diff = std::fabs(double(value_of(e, ga)) - double(value_of(e, cb)));
          bad += !(ulp_distance(e, ga, cb) <= 1 || diff <= rel * alpha * mag) || std::isnan(value_of(e, ga));
        }
      EXPECT_EQ(bad, 0);
    }
  cublasDestroy(h);
}

// Note [Low-rank stochastic rounding]: the fixed-order kernels against ref::lowrank_update_sr,
// bit for bit, for every dtype, with and without SR, decay and a later SR pass; W starts one
// element past an aligned address, T's scratch is poisoned with NaN and W's neighbours with a
// pattern that must survive. r = 70 runs the kernel without V in registers.
TEST(KernelsGpu, LowRankSrMatchesReferenceBitForBit) {
  struct Shape {
    int64_t m, n, r;
  };
  struct Cfg {
    uint64_t sr;
    float keep;
    int pass;
    float alpha_scale;  // alpha = alpha_scale / r; 1e-4 makes most updates sub-ulp coin tosses
  };
  const uint64_t pid = param_id("model.layers.11.self_attn.q_proj.weight");
  // n % 8 == 0 takes the shared-bits path (Note [Shared SR bits]): 136 and 80 with partial warps
  // and partial row groups, 4096 whole.
  for (Shape sh : {Shape{1, 1, 1}, Shape{7, 13, 3}, Shape{257, 129, 24}, Shape{5, 9, 70}, Shape{37, 136, 24},
                   Shape{45, 80, 70}, Shape{33, 4097, 16}, Shape{4096, 4096, 24}})
    for (Elem e : {Elem::F32, Elem::F16, Elem::BF16})
      for (Cfg cf : {Cfg{0, 1.0f, 0, 0.05f}, Cfg{0x5EEDF00Dull, 1.0f, 0, 0.05f}, Cfg{0x5EEDF00Dull, 0.999f, 1, 1e-4f}}) {
        if (sh.m * sh.n > 2 * max_n()) continue;
        const std::string what = "lowrank_sr " + std::to_string(sh.m) + "x" + std::to_string(sh.n) + " r " +
                                 std::to_string(sh.r) + " elem " + std::to_string(int(e)) + " sr " +
                                 std::to_string(cf.sr) + " keep " + std::to_string(cf.keep);
        SCOPED_TRACE(what);
        std::mt19937 rng(uint32_t(sh.m * 3 + sh.n + sh.r));
        std::normal_distribution<float> nd;
        std::vector<float> u(size_t(sh.m * sh.r)), z(size_t(sh.r * sh.r)), v(size_t(sh.n * sh.r));
        for (auto* x : {&u, &z, &v})
          for (float& f : *x) f = nd(rng);
        const int es = elem_size(e);
        const int64_t count = sh.m * sh.n;
        const size_t wb = size_t(count) * es, off = size_t(es), guard = 32;
        std::vector<uint8_t> w = random_bits(e, count, 11), cpu = w, gpu(w.size());
        DevBuf dw(off + wb + guard), du(u.size() * 4), dz(z.size() * 4), dv(v.size() * 4);
        CK(cudaMemset(dw.p_, 0xAB, off + wb + guard));
        CK(cudaMemcpy(dw.at(off), w.data(), wb, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(du.p_, u.data(), u.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dz.p_, z.data(), z.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dv.p_, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
        const size_t sb = lowrank_sr_scratch_bytes(sh.m, sh.r);
        DevBuf scratch(sb);
        CK(cudaMemset(scratch.p_, 0xFF, sb));  // NaN: T must be written before it is read
        LowRankArgs a{dw.at(off), e, sh.m, sh.n, sh.r, static_cast<float*>(du.p_), static_cast<float*>(dz.p_),
                      static_cast<float*>(dv.p_), cf.alpha_scale / float(sh.r)};
        a.sr_seed = cf.sr;
        a.pid = pid;
        a.sr_pass = cf.pass;
        a.keep = cf.keep;
        lowrank_update_sr(a, scratch.p_, sb, nullptr);
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(gpu.data(), dw.at(off), wb, cudaMemcpyDeviceToHost));
        std::vector<uint8_t> edges(off + guard);
        CK(cudaMemcpy(edges.data(), dw.p_, off, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(edges.data() + off, dw.at(off + wb), guard, cudaMemcpyDeviceToHost));
        for (size_t b = 0; b < edges.size(); ++b) ASSERT_EQ(edges[b], 0xAB) << "write outside W, byte " << b;
        LowRankArgs c = a;
        c.w = cpu.data();
        c.u = u.data();
        c.z = z.data();
        c.v = v.data();
        ref::lowrank_update_sr(c);
        compare(e, gpu, cpu, count, what);
        if (e != Elem::F32 && count > 100000) {  // the update did something
          int64_t moved = 0;
          for (int64_t i = 0; i < count; ++i) moved += bits_at(w, es, i) != bits_at(gpu, es, i);
          EXPECT_GT(moved, 0);
        }
      }
}

// Mapped pinned host memory the kernel stores to directly (Note [Delta write-back]).
struct MappedBuf {
  explicit MappedBuf(size_t bytes) { CK(cudaHostAlloc(&p_, bytes + 16, cudaHostAllocMapped)); std::memset(p_, 0, bytes + 16); }
  ~MappedBuf() { cudaFreeHost(p_); }
  MappedBuf(const MappedBuf&) = delete;
  MappedBuf& operator=(const MappedBuf&) = delete;
  template <typename T>
  T* dev() const {
    void* d = nullptr;
    CK(cudaHostGetDevicePointer(&d, p_, 0));
    return static_cast<T*>(d);
  }
  void* p_ = nullptr;
};

// Small weights (like a model's) and MeZO-sized coefficients, so all four codes occur.
std::vector<uint8_t> weight_bits(Elem e, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ud(-0.035f, 0.035f);
  std::vector<uint8_t> v(size_t(n) * 2);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t b = e == Elem::F16 ? ref::float_to_f16_rne(ud(rng)) : ref::float_to_bf16_rne(ud(rng));
    std::memcpy(v.data() + i * 2, &b, 2);
  }
  return v;
}

// zo_update with a delta output on the GPU: theta, the codes and the count equal the reference's;
// every exception is reported exactly once (in the list, or past capacity in the overflow buffer);
// and apply_delta_host turns the old master into the new theta bit for bit.
TEST(KernelsGpu, ZoUpdateDeltaMatchesReference) {
  const uint64_t pid = param_id("model.layers.3.mlp.down_proj.weight");
  struct Cfg {
    int nterms;
    uint64_t sr;
    int64_t first;
    size_t off;
    int64_t cap_div;  // capacity = n / cap_div + 1; 0: capacity 0
    int sparse;       // DeltaOut::sparse_lanes (Note [Sparse code stores])
  };
  int64_t exceptions_seen = 0, overflow_seen = 0;
  for (int64_t n : kSizes)
    for (Elem e : {Elem::F16, Elem::BF16})
      for (Dist d : {Dist::Gaussian, Dist::Rademacher})
        for (Cfg c : {Cfg{1, 0x5eedull, 0, 0, 8, -1}, Cfg{8, 0x77ull, 0, 0, 8, 32},
                      Cfg{1, 0, 0, 0, 8, 8},         // round to nearest: few changes, mixed rows
                      Cfg{2, 19, 4, 2, 8, 0},        // misaligned pointer: all scalar
                      Cfg{1, 23, 8, 0, 100000, -1},  // tiny list: overflow path
                      Cfg{1, 29, 0, 0, 0, 8}}) {     // no list at all
          const std::string what = "n " + std::to_string(n) + " elem " + std::to_string(int(e)) + " dist " +
                                   std::to_string(int(d)) + " nterms " + std::to_string(c.nterms) + " sr " +
                                   std::to_string(c.sr) + " first " + std::to_string(c.first) + " off " +
                                   std::to_string(c.off) + " cap_div " + std::to_string(c.cap_div) +
                                   " sparse " + std::to_string(c.sparse);
          SCOPED_TRACE(what);
          const std::vector<uint8_t> old = weight_bits(e, n, uint32_t(n * 3 + c.nterms));
          std::vector<ZTerm> terms;
          for (int k = 0; k < c.nterms; ++k) terms.push_back({step_seed(11, 5, uint64_t(k)), (k % 2 ? -3e-5f : 3e-5f)});
          const int64_t cap = c.cap_div == 0 ? 0 : n / c.cap_div + 1;
          const size_t code_bytes = size_t((n + 3) / 4);
          // GPU run
          DevBuf buf(old.size());
          void* dp = buf.at(c.off);
          CK(cudaMemcpy(dp, old.data(), old.size(), cudaMemcpyHostToDevice));
          MappedBuf codes(code_bytes), list(size_t(cap) * sizeof(DeltaEntry)), master(old.size());
          std::memcpy(master.p_, old.data(), old.size());
          // Storing every byte: poisoned, each must be written. Sparse: zero at rest, as in use.
          std::memset(codes.p_, c.sparse < 0 ? 0xAB : 0, code_bytes);
          unsigned long long* dcount = nullptr;  // [0] exceptions, [1] code bytes stored
          CK(cudaMalloc(&dcount, 2 * sizeof(unsigned long long)));
          CK(cudaMemset(dcount, 0, 2 * sizeof(unsigned long long)));
          DeltaOut dout{codes.dev<uint8_t>(), cap ? list.dev<DeltaEntry>() : nullptr, cap, dcount,
                        master.dev<uint16_t>(), 0};
          dout.stored = dcount + 1;
          dout.sparse_lanes = c.sparse;
          UpdateArgs a{dp, e, n, pid, d, terms.data(), c.nterms, 0.0f, c.sr};
          a.first = c.first;
          a.delta = &dout;
          zo_update(a, nullptr);
          CK(cudaDeviceSynchronize());
          std::vector<uint8_t> gpu(old.size());
          CK(cudaMemcpy(gpu.data(), dp, gpu.size(), cudaMemcpyDeviceToHost));
          unsigned long long gcounts[2] = {0, 0};
          CK(cudaMemcpy(gcounts, dcount, sizeof(gcounts), cudaMemcpyDeviceToHost));
          CK(cudaFree(dcount));
          const unsigned long long gcount = gcounts[0], gstored = gcounts[1];
          // Reference run
          std::vector<uint8_t> cpu = old, rcodes(code_bytes, 0), rmaster = old;
          std::vector<DeltaEntry> rlist(size_t(std::max<int64_t>(cap, 1)));
          unsigned long long rcount = 0;
          DeltaOut rout{rcodes.data(), rlist.data(), cap, &rcount, reinterpret_cast<uint16_t*>(rmaster.data()), 0};
          a.theta = cpu.data();
          a.delta = &rout;
          ref::zo_update(a);
          compare(e, gpu, cpu, n, what);
          ASSERT_EQ(gcount, rcount);
          const uint8_t* gc = static_cast<const uint8_t*>(codes.p_);
          int64_t code_bad = 0;
          int64_t nonzero = 0;
          for (size_t j = 0; j < code_bytes; ++j) code_bad += gc[j] != rcodes[j], nonzero += rcodes[j] != 0;
          EXPECT_EQ(code_bad, 0) << "code bytes differ";
          if (c.sparse < 0) {
            EXPECT_EQ(gstored, code_bytes) << "every code byte stored once";
          } else {  // nonzero bytes always; a 2-byte store may carry a zero byte, a dense row zeros
            EXPECT_GE(gstored, (unsigned long long)nonzero);
            EXPECT_LE(gstored, c.sparse == 32 ? std::min<unsigned long long>(2ull * nonzero, code_bytes)
                                              : (unsigned long long)code_bytes);
          }
          // Each exception once: in the list with its new bits, or (past capacity) in the master.
          const uint16_t* o16 = reinterpret_cast<const uint16_t*>(old.data());
          const uint16_t* n16 = reinterpret_cast<const uint16_t*>(gpu.data());
          const uint16_t* m16 = static_cast<const uint16_t*>(master.p_);
          std::vector<int> listed(size_t(n), 0);
          const DeltaEntry* gl = static_cast<const DeltaEntry*>(list.p_);
          for (int64_t s = 0; s < std::min<int64_t>(int64_t(gcount), cap); ++s) {
            ASSERT_LT(int64_t(gl[s].index), n);
            ++listed[gl[s].index];
            EXPECT_EQ(gl[s].bits, n16[gl[s].index]) << "entry " << s;
          }
          int64_t exc = 0, bad = 0;
          for (int64_t i = 0; i < n; ++i) {
            const uint32_t code = (gc[i / 4] >> (2 * (i % 4))) & 3u;
            if (code != kDeltaException) {
              bad += listed[size_t(i)] != 0 || m16[i] != o16[i];
              continue;
            }
            ++exc;
            bad += listed[size_t(i)] + (m16[i] != o16[i] ? 1 : 0) != 1 || (m16[i] != o16[i] && m16[i] != n16[i]);
          }
          EXPECT_EQ(bad, 0) << "exceptions reported wrongly";
          EXPECT_EQ(exc, int64_t(gcount));
          exceptions_seen += exc;
          overflow_seen += std::max<int64_t>(0, exc - cap);
          // Round trip through the host apply.
          ApplyDeltaArgs ap{static_cast<uint16_t*>(master.p_), static_cast<uint8_t*>(codes.p_), n, gl,
                            std::min<int64_t>(int64_t(gcount), cap)};
          apply_delta_host(ap);
          EXPECT_EQ(std::memcmp(master.p_, gpu.data(), gpu.size()), 0) << "apply_delta did not rebuild theta";
          int64_t left = 0;
          for (size_t j = 0; j < code_bytes; ++j) left += gc[j] != 0;
          EXPECT_EQ(left, 0) << "codes not cleared";
        }
  EXPECT_GT(exceptions_seen, 0);
  EXPECT_GT(overflow_seen, 0);
}

TEST(KernelsGpu, BadArgumentsThrowBeforeLaunch) {
  ZTerm t{1, 1.0f};
  EXPECT_THROW(zo_update({nullptr, Elem::F32, 4, 0, Dist::Gaussian, &t, 1, 0.0f, 0}, nullptr), zoff::Error);
  EXPECT_THROW(fill_z(nullptr, 4, 0, 0, Dist::Gaussian, nullptr), zoff::Error);
  EXPECT_THROW(pack_fp8_rows({nullptr, Elem::F8E4M3, 1, 1, nullptr, nullptr}, nullptr), zoff::Error);
  EXPECT_THROW(lowrank_update({nullptr, Elem::F32, 2, 2, 1, nullptr, nullptr, nullptr, 1.0f}, nullptr, nullptr, 0, nullptr),
               zoff::Error);
  EXPECT_THROW(lowrank_update_sr({nullptr, Elem::F32, 2, 2, 1, nullptr, nullptr, nullptr, 1.0f}, nullptr, 0, nullptr),
               zoff::Error);
  float* bogus = reinterpret_cast<float*>(uintptr_t(256));  // never dereferenced: the checks come first
  EXPECT_THROW(lowrank_update_sr({bogus, Elem::F8E4M3, 2, 2, 1, bogus, bogus, bogus, 1.0f}, bogus, 1024, nullptr),
               zoff::Error);
  EXPECT_THROW(lowrank_update_sr({bogus, Elem::BF16, 2, 2, 0, bogus, bogus, bogus, 1.0f}, bogus, 1024, nullptr),
               zoff::Error);
  EXPECT_THROW(lowrank_update_sr({bogus, Elem::BF16, 64, 2, 4, bogus, bogus, bogus, 1.0f}, bogus, 16, nullptr),
               zoff::Error);  // scratch too small
}

}  // namespace
}  // namespace zoff::k
