// Shared helpers for the test suite: seeded random tensors and named tolerances.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

// The comparator (max_scaled_error, peak_relative_error) lives with the attention oracle.
#include "reference/scaled_error.h"

namespace fastar::testing {

// Tolerances, named and scaled to the precision under test.
// fp32 kernels against a double-precision loop: a few ulps times the reduction length.
constexpr double kF32RelTol = 2e-5;
constexpr double kF32AbsTol = 2e-5;

// Deterministic normal(0, scale) values.
std::vector<float> random_normal(int64_t count, uint64_t seed, float scale = 1.0f);
std::vector<double> to_double(const std::vector<float>& values);

// A fresh, empty directory under the build tree's temporary folder.
std::string make_temp_dir(const std::string& name);
// Path to a file in the source tree.
std::string source_path(const std::string& relative);

// Runs the fastar binary of this build with `args` (a shell command line); stdout + stderr together.
struct CliResult {
  int exit_code = -1;
  std::string output;
};
CliResult run_fastar(const std::string& args);
bool contains(const std::string& text, const std::string& part);

}  // namespace fastar::testing
