// Global log level handling for zoff::log.
#include "zoff/log.h"

#include "zoff/error.h"

namespace zoff::log {
void set_level(const std::string& level) {
  auto l = spdlog::level::from_str(level);
  ZOFF_INPUT_CHECK(l != spdlog::level::off || level == "off", "unknown log level '", level,
                   "' (expected trace, debug, info, warn, error or off)");
  spdlog::set_level(l);
}
}  // namespace zoff::log
