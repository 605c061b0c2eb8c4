// Test helper: recursive directory removal without std::filesystem::remove_all.
#pragma once

#include <ftw.h>
#include <cstdio>
#include <string>

namespace zoff::testing {

// Note [No filesystem::remove_all in tests]
// The pip LibTorch 2.x (the GPU machine's) exports its own copy of std::filesystem::remove_all,
// which crashes (jumps to address 0) when our binaries call it; linking libstdc++ first did not
// change which copy is bound. Tests therefore remove their temp folders with nftw(3).
inline void remove_tree(const std::string& path) {
  nftw(path.c_str(),
       [](const char* p, const struct stat*, int, struct FTW*) { return std::remove(p); }, 16,
       FTW_DEPTH | FTW_PHYS);
}

}  // namespace zoff::testing
