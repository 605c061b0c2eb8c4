// Argument checks shared by the reference and host apply_delta (Note [Delta write-back]).
#pragma once

#include <cstdint>

#include "kernels/delta.h"
#include "zoff/error.h"

namespace zoff::k {

// Sizes and pointers; the list's indices are checked where the list is applied.
inline void check_apply_delta_args(const ApplyDeltaArgs& a, const char* fn) {
  ZOFF_CHECK(a.n >= 0 && a.entries >= 0, fn, ": n = ", a.n, ", entries = ", a.entries);
  ZOFF_CHECK(a.n == 0 || (a.master != nullptr && a.codes != nullptr), fn, ": null master or codes with n = ", a.n);
  ZOFF_CHECK(a.entries == 0 || a.list != nullptr, fn, ": ", a.entries, " entries but list == nullptr");
}

[[noreturn]] inline void fail_list_index(const ApplyDeltaArgs& a, int64_t slot, const char* fn) {
  ZOFF_FAIL(fn, ": list entry ", slot, " has index ", a.list[slot].index, " outside the block's ", a.n, " elements");
}

}  // namespace zoff::k
