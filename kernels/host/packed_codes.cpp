// Host side of Note [Packed codes] (kernels/delta.h): where each word range's packed words start.
#include <algorithm>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels/delta.h"
#include "zoff/error.h"

namespace zoff::k {

void packed_range_offsets(const uint32_t* bitmap, int64_t n, int64_t packed_count, int64_t* offsets, const char* fn) {
  const int64_t W = pack_code_words(n), B = pack_bitmap_words(n);
  const int64_t R = (W + kPackTileWords - 1) / kPackTileWords, per = kPackTileWords / 32;
  static_assert(kPackTileWords % 32 == 0, "a range is whole bitmap words");
  offsets[0] = 0;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, R, 256), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t b = r.begin(); b < r.end(); ++b) {
      int64_t c = 0;
      for (int64_t i = b * per; i < std::min(B, (b + 1) * per); ++i) c += __builtin_popcount(bitmap[i]);
      offsets[b + 1] = c;
    }
  });
  for (int64_t b = 0; b < R; ++b) offsets[b + 1] += offsets[b];
  ZOFF_CHECK(W % 32 == 0 || (bitmap[B - 1] >> (W % 32)) == 0, fn, ": the packed codes' bitmap marks code words past the ",
             W, " of a block of ", n, " elements");
  ZOFF_CHECK(offsets[R] == packed_count, fn, ": the packed codes' bitmap marks ", offsets[R], " words but the device packed ",
             packed_count, " (codes and bitmap do not belong together)");
}

}  // namespace zoff::k
