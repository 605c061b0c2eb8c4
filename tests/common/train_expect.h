// Test helpers for trainer runs: weights equal bit for bit, and configs refused naming their key.
#pragma once

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "common/remove_tree.h"
#include "zoff/error.h"
#include "zoff/trainer.h"

namespace zoff::testing {

// Every group of `a` equals `b`'s bit for bit (the message names the group and the largest gap).
inline void expect_same_weights(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b,
                                const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t g = 0; g < a.size(); ++g)
    EXPECT_TRUE(at::equal(a[g], b[g])) << what << ": group " << g << " differs, max |diff| "
                                       << (a[g].to(at::kFloat) - b[g].to(at::kFloat)).abs().max().item<double>();
}

// Building a Trainer from c fails with a zoff::Error whose message names `key`; c's output
// folder is removed either way.
inline void expect_config_error(const RunConfig& c, const std::string& key) {
  try {
    Trainer t(c);
    ADD_FAILURE() << "accepted; expected an error about " << key;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
  remove_tree(c.train.output_dir);
}

}  // namespace zoff::testing
