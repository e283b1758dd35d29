// The test suite's comparator: how far computed values are from the values a reference expects.
//
// A NaN or an infinity on either side is a failure (the result is infinity), never a pass: a
// reference must state what it expects of entries it cannot compute as finite values (e.g. the
// attention oracle's empty rows are exact zeros, attention_oracle.h), and a test that expects a
// non-finite value checks it explicitly.
#pragma once

#include <cstdint>

namespace fastar::testing {

// max |a − e| / (abs_tol + rel_tol · |e|) over all entries; <= 1 means within tolerance.
double max_scaled_error(const float* actual, const double* expected, int64_t count, double rel_tol, double abs_tol);

// max |a − e| / max |e|: the error relative to the expected signal's peak, for whole-model outputs
// (golden files) whose small entries carry no meaning of their own. The same comparison as
// max_scaled_error with rel_tol 0 and abs_tol max|e|: infinity on any non-finite value, and on an
// expected tensor that is all zero (nothing to be relative to).
double peak_relative_error(const float* actual, const float* expected, int64_t count);
double peak_relative_error(const float* actual, const double* expected, int64_t count);

}  // namespace fastar::testing
