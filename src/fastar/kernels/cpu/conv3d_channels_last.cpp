#include "fastar/kernels/cpu/conv3d_channels_last.h"

#include <algorithm>

namespace fastar::cpu {

void conv3d_channels_last(const Conv3dParams& p, const float* in, const float* weight, const float* bias,
                          const float* residual, float* out) {
  check_conv3d_params(p, "conv3d_channels_last");
  const int64_t T = p.frames_out(), H = p.height, W = p.width, Ho = p.height_out(), Wo = p.width_out();
  const int64_t Ci = p.in_channels, Co = p.out_channels, kt = p.kernel_t, k = p.kernel_hw, pad = p.padding();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t t = 0; t < T; ++t)
    for (int64_t y = 0; y < Ho; ++y)
      for (int64_t x = 0; x < Wo; ++x) {
        const int64_t o = ((t * Ho + y) * Wo + x) * Co;
        for (int64_t co = 0; co < Co; ++co) {
          double acc = bias ? bias[co] : 0.0;
          for (int64_t dt = 0; dt < kt; ++dt)
            for (int64_t dy = 0; dy < k; ++dy) {
              const int64_t yi = y + dy - pad;
              if (yi < 0 || yi >= H) continue;
              for (int64_t dx = 0; dx < k; ++dx) {
                const int64_t xi = x + dx - pad;
                if (xi < 0 || xi >= W) continue;
                const float* a = in + (((t + dt) * H + yi) * W + xi) * Ci;  // in[t + dt, yi, xi, :]
                const float* w = weight + (((co * kt + dt) * k + dy) * k + dx) * Ci;  // weight[co, dt, dy, dx, :]
                for (int64_t ci = 0; ci < Ci; ++ci) acc += static_cast<double>(a[ci]) * w[ci];
              }
            }
          if (residual) acc += residual[o + co];
          if (p.activation == ConvActivation::Relu) acc = std::max(acc, 0.0);
          out[o + co] = static_cast<float>(acc);
        }
      }
}

}  // namespace fastar::cpu
