#include "fastar/kernels/cpu/channel_rms_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace fastar::cpu {

// Loops over fewer elements than this run on one thread: at the narrow test widths a parallel
// region costs more than the work, and far more when the cores are shared.
constexpr int64_t kParallelMinElements = int64_t{1} << 16;

void channel_rms_norm_forward(float* out, const float* in, const float* gamma, int64_t channels, int64_t positions,
                              bool apply_silu) {
  // Blocks of positions keep the channel loop streaming over contiguous rows.
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (positions + kBlock - 1) / kBlock;
  const double sqrt_c = std::sqrt(static_cast<double>(channels));
#pragma omp parallel for schedule(static) if (channels * positions >= kParallelMinElements)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kBlock, end = std::min(positions, begin + kBlock), n = end - begin;
    double sum_sq[kBlock] = {};
    for (int64_t c = 0; c < channels; ++c) {
      const float* x = in + c * positions + begin;
      for (int64_t j = 0; j < n; ++j) sum_sq[j] += static_cast<double>(x[j]) * x[j];
    }
    float factor[kBlock];
    for (int64_t j = 0; j < n; ++j) factor[j] = static_cast<float>(sqrt_c / std::max(std::sqrt(sum_sq[j]), 1e-12));
    for (int64_t c = 0; c < channels; ++c) {
      const float* x = in + c * positions + begin;
      float* y = out + c * positions + begin;
      const float g = gamma[c];
      for (int64_t j = 0; j < n; ++j) {
        float v = x[j] * factor[j] * g;
        if (apply_silu) v = v / (1.0f + std::exp(-v));
        y[j] = v;
      }
    }
  }
}

}  // namespace fastar::cpu
