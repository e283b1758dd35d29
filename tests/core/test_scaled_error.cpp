// The suite's comparator (tests/reference/scaled_error.h: max_scaled_error, peak_relative_error): a
// NaN or an infinity on either side is a failure, never a pass; a test that expects a non-finite
// value must say so explicitly.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "test_util.h"

namespace fastar {
namespace {

using testing::max_scaled_error;
using testing::peak_relative_error;

TEST(MaxScaledError, WithinAndBeyondTolerance) {
  const std::vector<float> actual = {1.0f, -2.0f, 0.0f};
  const std::vector<double> close = {1.0, -2.0 + 1e-6, 1e-7};
  EXPECT_LE(max_scaled_error(actual.data(), close.data(), 3, 1e-5, 1e-5), 1.0);
  const std::vector<double> far = {1.0, -2.1, 0.0};
  EXPECT_GT(max_scaled_error(actual.data(), far.data(), 3, 1e-5, 1e-5), 1.0);
}

TEST(MaxScaledError, NonFiniteValuesOnEitherSideFail) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const std::vector<float> finite = {1.0f, 2.0f, 3.0f};
  for (const double bad : {nan, inf, -inf}) {
    SCOPED_TRACE(bad);
    std::vector<double> expected = {1.0, 2.0, 3.0};
    expected[1] = bad;  // the expected side
    EXPECT_GT(max_scaled_error(finite.data(), expected.data(), 3, 1e-5, 1e-5), 1.0);
    std::vector<float> actual = finite;
    actual[2] = static_cast<float>(bad);  // the actual side
    const std::vector<double> matching = {1.0, 2.0, 3.0};
    EXPECT_GT(max_scaled_error(actual.data(), matching.data(), 3, 1e-5, 1e-5), 1.0);
    // Both sides the same non-finite value: still not "within tolerance".
    std::vector<double> both = matching;
    both[2] = bad;
    EXPECT_GT(max_scaled_error(actual.data(), both.data(), 3, 1e-5, 1e-5), 1.0);
  }
}

TEST(PeakRelativeError, IsTheErrorOverTheExpectedPeak) {
  const std::vector<float> expected = {0.0f, -4.0f, 2.0f}, actual = {0.25f, -4.0f, 1.5f};
  EXPECT_EQ(peak_relative_error(actual.data(), expected.data(), 3), 0.5 / 4.0);  // max diff 0.5, peak 4
  const std::vector<double> expected_d(expected.begin(), expected.end());
  EXPECT_EQ(peak_relative_error(actual.data(), expected_d.data(), 3),
            peak_relative_error(actual.data(), expected.data(), 3));
}

TEST(PeakRelativeError, NonFiniteValuesAndAnAllZeroReferenceFail) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> finite = {1.0f, 2.0f, 3.0f};
  for (const float bad : {nan, inf, -inf}) {
    SCOPED_TRACE(bad);
    std::vector<float> broken = finite;
    broken[1] = bad;
    EXPECT_EQ(peak_relative_error(broken.data(), finite.data(), 3), INFINITY);  // actual side
    EXPECT_EQ(peak_relative_error(finite.data(), broken.data(), 3), INFINITY);  // expected side
  }
  const std::vector<float> zeros = {0.0f, 0.0f, 0.0f};
  EXPECT_EQ(peak_relative_error(zeros.data(), zeros.data(), 3), INFINITY);
}

}  // namespace
}  // namespace fastar
