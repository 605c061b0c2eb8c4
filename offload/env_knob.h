// Tuning and test knobs read from the environment, checked: a bad value names the variable and what it wants.
#pragma once

#include <cstdlib>
#include <string>

#include "zoff/error.h"

namespace zoff {

// Whether NAME is set to `a` (true) or `b` (false); `dflt` when unset. Any other value throws
// "environment: NAME=value (want a or b)".
inline bool env_either(const char* name, const char* a, const char* b, bool dflt) {
  const char* e = std::getenv(name);
  if (!e) return dflt;
  const std::string v = e;
  ZOFF_CHECK(v == a || v == b, "environment: ", name, "=", v, " (want ", a, " or ", b, ")");
  return v == a;
}

// The index of NAME's value in `choices` (a null-terminated list), or `dflt` when unset. Any other
// value throws "environment: NAME=value (want a, b or c)".
inline int env_choice(const char* name, const char* const* choices, int dflt) {
  const char* e = std::getenv(name);
  if (!e) return dflt;
  std::string want;
  for (int i = 0; choices[i] != nullptr; ++i) {
    if (std::string(e) == choices[i]) return i;
    want += std::string(i == 0 ? "" : choices[i + 1] == nullptr ? " or " : ", ") + choices[i];
  }
  ZOFF_FAIL("environment: ", name, "=", e, " (want ", want, ")");
}

// NAME as an integer in [lo, hi], or `dflt` when unset.
inline long env_int(const char* name, long lo, long hi, long dflt) {
  const char* e = std::getenv(name);
  if (!e) return dflt;
  char* end = nullptr;
  const long v = std::strtol(e, &end, 10);
  ZOFF_CHECK(end != e && *end == '\0' && v >= lo && v <= hi, "environment: ", name, "=", e, " (want ", lo, " .. ",
             hi, ")");
  return v;
}

}  // namespace zoff
