#include "reference/scaled_error.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace fastar::testing {

double max_scaled_error(const float* actual, const double* expected, int64_t count, double rel_tol, double abs_tol) {
  double worst = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    // A NaN or an infinity on either side is a failure (NaN would otherwise compare as "within").
    if (!std::isfinite(actual[i]) || !std::isfinite(expected[i])) return INFINITY;
    const double err = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    const double allowed = abs_tol + rel_tol * std::fabs(expected[i]);
    worst = std::max(worst, err / allowed);
  }
  return worst;
}

double peak_relative_error(const float* actual, const double* expected, int64_t count) {
  double peak = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(expected[i])) return INFINITY;
    peak = std::max(peak, std::fabs(expected[i]));
  }
  if (peak == 0.0) return INFINITY;
  // max |a − e| / (0 + 1 · peak) == max |a − e| / peak.
  return max_scaled_error(actual, expected, count, 0.0, peak);
}

double peak_relative_error(const float* actual, const float* expected, int64_t count) {
  const std::vector<double> widened(expected, expected + count);
  return peak_relative_error(actual, widened.data(), count);
}

}  // namespace fastar::testing
