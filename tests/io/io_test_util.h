// Shared helpers for the io tests: a self-deleting temp folder and an InputError matcher.
#pragma once

#include "common/remove_tree.h"
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <string>

#include "zoff/error.h"

namespace zoff::iotest {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/zoff_io_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { zoff::testing::remove_tree(path); }
  std::string file(const std::string& n) const { return path + "/" + n; }
};

// Runs f and expects a zoff::InputError whose message holds every string in `parts`.
// ZOFF_SHOW_ERRORS=1 prints the messages (to review their wording).
template <typename F>
void expect_input_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no InputError thrown";
  } catch (const InputError& e) {
    const std::string m = e.what();
    if (std::getenv("ZOFF_SHOW_ERRORS")) std::printf("  InputError: %s\n", m.c_str());
    for (const std::string& p : parts)
      EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected InputError, got: " << e.what();
  }
}

}  // namespace zoff::iotest
