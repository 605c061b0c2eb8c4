// Test helper: zoff::remove_tree under the name the tests use (Note [No filesystem::remove_all]).
#pragma once

#include "zoff/remove_tree.h"

namespace zoff::testing {
using zoff::remove_tree;
}  // namespace zoff::testing
