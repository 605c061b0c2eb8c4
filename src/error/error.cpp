// Out-of-line throwing helpers for ZOFF_CHECK, kept here so the macro stays small at call sites.
#include "zoff/error.h"

namespace zoff::detail {

static std::string location(const char* file, int line) {
  std::string f(file);
  auto pos = f.rfind("/zoff/");
  if (pos == std::string::npos) pos = f.find_last_of('/');
  return f.substr(pos == std::string::npos ? 0 : pos + 1) + ":" + std::to_string(line);
}

void fail(const char* file, int line, const char* cond, const std::string& msg) {
  std::string m = msg.empty() && cond ? std::string("check failed: ") + cond : msg;
  throw Error(m, location(file, line));
}

void fail_input(const char* file, int line, const std::string& msg) {
  throw InputError(msg, location(file, line));
}

}  // namespace zoff::detail
