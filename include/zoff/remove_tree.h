// remove_tree: recursive folder removal without std::filesystem::remove_all (Note inside).
#pragma once

#include <ftw.h>

#include <cstdio>
#include <string>

namespace zoff {

// Note [No filesystem::remove_all]
// The pip LibTorch 2.x (the GPU machine's) exports its own copy of std::filesystem::remove_all,
// which crashes (jumps to address 0) when our binaries call it; linking libstdc++ first did not
// change which copy is bound. zoff removes folders with nftw(3) instead. Never call remove_all.
inline void remove_tree(const std::string& path) {
  nftw(path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return std::remove(p); }, 16,
       FTW_DEPTH | FTW_PHYS);
}

}  // namespace zoff
