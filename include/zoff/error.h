// zoff::Error and ZOFF_CHECK: every failure below main() is an exception with context, never exit().
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace zoff {

// The one exception type zoff throws. what() holds the message the user sees; where() the
// source location that raised it (for bug reports, not for users).
class Error : public std::runtime_error {
 public:
  Error(std::string msg, std::string where)
      : std::runtime_error(std::move(msg)), where_(std::move(where)) {}
  const std::string& where() const noexcept { return where_; }

 private:
  std::string where_;
};

// A user-facing error in the input (config, checkpoint, data, CLI): the CLI exits with code 2.
class InputError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void fail(const char* file, int line, const char* cond, const std::string& msg);
[[noreturn]] void fail_input(const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace zoff

// ZOFF_CHECK(cond, parts...): throws zoff::Error("parts...") when cond is false.
#define ZOFF_CHECK(cond, ...)                                                          \
  do {                                                                                 \
    if (!(cond)) ::zoff::detail::fail(__FILE__, __LINE__, #cond, ::zoff::detail::cat(__VA_ARGS__)); \
  } while (0)

// ZOFF_INPUT_CHECK(cond, parts...): like ZOFF_CHECK but for bad user input (zoff::InputError).
// The message must name the file and the field at fault.
#define ZOFF_INPUT_CHECK(cond, ...)                                                    \
  do {                                                                                 \
    if (!(cond)) ::zoff::detail::fail_input(__FILE__, __LINE__, ::zoff::detail::cat(__VA_ARGS__)); \
  } while (0)

#define ZOFF_FAIL(...) ::zoff::detail::fail(__FILE__, __LINE__, nullptr, ::zoff::detail::cat(__VA_ARGS__))
#define ZOFF_INPUT_FAIL(...) ::zoff::detail::fail_input(__FILE__, __LINE__, ::zoff::detail::cat(__VA_ARGS__))
