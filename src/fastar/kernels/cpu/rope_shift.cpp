#include "fastar/kernels/cpu/rope_shift.h"

#include <cmath>
#include <vector>

#include "fastar/core/error.h"

namespace fastar::cpu {

void rope_time_shift(float* k, int64_t row_stride, int64_t tokens, int64_t heads, int64_t head_dim,
                     int64_t delta_frames) {
  FASTAR_ASSERT(head_dim % 2 == 0, "rope_time_shift: odd head_dim " << head_dim);
  if (delta_frames == 0 || tokens == 0) return;
  const int64_t c = head_dim / 2;
  const int64_t pairs_t = c - 2 * (c / 3);
  const double n = 2.0 * static_cast<double>(pairs_t);
  std::vector<double> cs(static_cast<size_t>(pairs_t)), sn(static_cast<size_t>(pairs_t));
  for (int64_t j = 0; j < pairs_t; ++j) {
    const double angle = static_cast<double>(delta_frames) * std::pow(10000.0, -2.0 * static_cast<double>(j) / n);
    cs[static_cast<size_t>(j)] = std::cos(angle);
    sn[static_cast<size_t>(j)] = std::sin(angle);
  }
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tokens; ++t) {
    float* row = k + t * row_stride;
    for (int64_t head = 0; head < heads; ++head) {
      float* v = row + head * head_dim;
      for (int64_t j = 0; j < pairs_t; ++j) {
        const double a = v[2 * j], b = v[2 * j + 1];
        v[2 * j] = static_cast<float>(a * cs[static_cast<size_t>(j)] - b * sn[static_cast<size_t>(j)]);
        v[2 * j + 1] = static_cast<float>(a * sn[static_cast<size_t>(j)] + b * cs[static_cast<size_t>(j)]);
      }
    }
  }
}

}  // namespace fastar::cpu
