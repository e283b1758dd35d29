#include "fastar/kernels/cpu/nearest_upsample.h"

#include <cstdint>

namespace fastar::cpu {

// Loops over fewer elements than this run on one thread: at the narrow test widths a parallel
// region costs more than the work, and far more when the cores are shared.
constexpr int64_t kParallelMinElements = int64_t{1} << 16;

void nearest_upsample2x_forward(float* out, const float* in, int64_t planes, int64_t height, int64_t width) {
  const int64_t out_w = 2 * width;
#pragma omp parallel for schedule(static) if (planes * height * width >= kParallelMinElements)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t y = 0; y < height; ++y) {
      const float* src = in + (p * height + y) * width;
      float* row0 = out + (p * 2 * height + 2 * y) * out_w;
      float* row1 = row0 + out_w;
      for (int64_t x = 0; x < width; ++x) row0[2 * x] = row0[2 * x + 1] = src[x];
      for (int64_t x = 0; x < out_w; ++x) row1[x] = row0[x];
    }
}

}  // namespace fastar::cpu
