// Helpers for the config tests: a scratch folder of TOML files and "throws InputError mentioning".
#pragma once

#include "common/remove_tree.h"
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "zoff/error.h"

namespace zoff::testing {

// A fresh folder under the system temp dir, removed at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    static int counter = 0;
    root_ = std::filesystem::temp_directory_path() /
            ("zoff-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    zoff::testing::remove_tree(root_);
    std::filesystem::create_directories(root_);
  }
  ~ScratchDir() {
    std::error_code ec;
    zoff::testing::remove_tree(root_);
  }
  // Writes `text` to root/rel (creating folders) and returns the full path.
  std::string write(const std::string& rel, const std::string& text) const {
    std::filesystem::path p = root_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string path(const std::string& rel) const { return (root_ / rel).string(); }

 private:
  std::filesystem::path root_;
};

// The message of the InputError `fn` throws; fails the test when it throws nothing or another type.
inline std::string input_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected zoff::InputError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected zoff::InputError, nothing was thrown";
  return "";
}

// Asserts that `fn` throws InputError whose message contains every one of `parts`.
#define EXPECT_INPUT_ERROR(stmt, ...)                                                    \
  do {                                                                                   \
    std::string msg_ = ::zoff::testing::input_error_of([&] { stmt; });                   \
    for (const std::string& part_ : std::vector<std::string>{__VA_ARGS__})               \
      EXPECT_NE(msg_.find(part_), std::string::npos) << "message: " << msg_              \
                                                     << "\nmissing: " << part_;          \
  } while (0)

// configs/ in the source tree.
inline std::string configs_dir() { return std::string(ZOFF_SOURCE_DIR) + "/configs"; }
inline std::string fixture(const std::string& rel) { return std::string(ZOFF_TEST_DATA) + "/" + rel; }

}  // namespace zoff::testing
