// CPU references of Note [Packed codes]: packing dense delta codes, and expanding them back.
#include <cstring>

#include "kernels/delta.h"
#include "zoff/error.h"

namespace zoff::k::ref {

void pack_codes(const PackCodesArgs& a) {
  ZOFF_CHECK(a.n >= 0 && (a.n == 0 || (a.codes != nullptr && a.bitmap != nullptr && a.packed != nullptr)) &&
                 a.packed_count != nullptr,
             "pack_codes: n = ", a.n, " with a null codes, bitmap, packed or count pointer");
  const int64_t W = pack_code_words(a.n), B = pack_bitmap_words(a.n);
  unsigned long long p = 0;
  for (int64_t i = 0; i < B; ++i) {
    uint32_t bits = 0;
    for (int64_t j = 0; j < 32 && 32 * i + j < W; ++j) {
      uint64_t cw;
      std::memcpy(&cw, a.codes + 8 * (32 * i + j), 8);
      if (cw == 0) continue;
      bits |= 1u << j;
      a.packed[p++] = cw;
    }
    a.bitmap[i] = bits;
  }
  *a.packed_count = p;
}

void unpack_codes(const uint32_t* bitmap, const uint64_t* packed, int64_t packed_count, int64_t n, uint8_t* codes) {
  const int64_t W = pack_code_words(n), B = pack_bitmap_words(n);
  int64_t p = 0;
  std::memset(codes, 0, size_t(8 * W));
  for (int64_t i = 0; i < B; ++i) {
    const uint32_t bits = bitmap[i];
    ZOFF_CHECK(32 * i + 32 <= W || (bits >> (W - 32 * i)) == 0, "unpack_codes: the bitmap marks code words past the ",
               W, " of a block of ", n, " elements");
    for (int j = 0; j < 32; ++j) {
      if (!((bits >> j) & 1u)) continue;
      ZOFF_CHECK(p < packed_count, "unpack_codes: the bitmap marks more than the ", packed_count, " packed words");
      std::memcpy(codes + 8 * (32 * i + j), &packed[p++], 8);
    }
  }
  ZOFF_CHECK(p == packed_count, "unpack_codes: the bitmap marks ", p, " words but ", packed_count, " were packed");
}

}  // namespace zoff::k::ref
