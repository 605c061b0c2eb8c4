// CPU references of apply_delta (codes and exception list onto a 16-bit master) and copy_counted.
#include <algorithm>
#include <cstring>
#include <vector>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels/delta.h"
#include "kernels/ref/delta_check.h"

namespace zoff::k::ref {

void copy_counted(void* dst, const void* src, const unsigned long long* count, int64_t cap, int64_t elem_bytes) {
  ZOFF_CHECK(cap >= 0 && elem_bytes > 0 && (cap == 0 || (dst != nullptr && src != nullptr && count != nullptr)),
             "copy_counted: cap = ", cap, ", elem_bytes = ", elem_bytes);
  if (cap == 0) return;
  const int64_t n = int64_t(std::min<unsigned long long>(*count, (unsigned long long)cap));
  if (n > 0) std::memcpy(dst, src, size_t(n * elem_bytes));
}

void apply_delta(const ApplyDeltaArgs& a) {
  check_apply_delta_args(a, "apply_delta");
  if (a.bitmap != nullptr) {  // Note [Packed codes]: expanded, then as dense codes
    std::vector<uint8_t> dense(size_t(8 * pack_code_words(a.n)));
    unpack_codes(a.bitmap, reinterpret_cast<const uint64_t*>(a.codes), a.packed_count, a.n, dense.data());
    ApplyDeltaArgs d = a;
    d.codes = dense.data();
    d.bitmap = nullptr;
    d.keep_codes = true;
    return apply_delta(d);
  }
  for (int64_t s = 0; s < a.entries; ++s)  // all checked before anything is written
    if (int64_t(a.list[s].index) >= a.n) fail_list_index(a, s, "apply_delta");
  const int64_t nbytes = (a.n + 3) / 4;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, nbytes, 4096), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t j = r.begin(); j < r.end(); ++j) {
      const uint32_t byte = a.codes[j];
      for (int e = 0; e < 4; ++e) {
        const int64_t i = 4 * j + e;
        if (i >= a.n) break;
        const uint32_t c = (byte >> (2 * e)) & 3u;
        if (c == kDeltaUp) a.master[i] = uint16_t(a.master[i] + 1u);
        else if (c == kDeltaDown) a.master[i] = uint16_t(a.master[i] - 1u);
      }
      if (!a.keep_codes) a.codes[j] = 0;
    }
  });
  for (int64_t s = 0; s < a.entries; ++s) a.master[a.list[s].index] = a.list[s].bits;
}

}  // namespace zoff::k::ref
