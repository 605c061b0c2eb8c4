// Logging: thin wrappers over spdlog so the rest of zoff does not depend on its setup.
#pragma once

#include <spdlog/spdlog.h>

namespace zoff::log {
using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;
// Sets the global level from a name (trace, debug, info, warn, error, off).
void set_level(const std::string& level);
}  // namespace zoff::log
