#include "fastar/rollout/image_metrics.h"

#include <cmath>
#include <limits>
#include <vector>

#include "fastar/core/error.h"

namespace fastar {

namespace {

void check_same(const RgbFrame& a, const RgbFrame& b, const char* what) {
  check_rgb_frame(a, what);
  check_rgb_frame(b, what);
  FASTAR_CHECK(a.width == b.width && a.height == b.height,
               what << ": frames of different sizes (" << a.width << "x" << a.height << " vs " << b.width << "x" << b.height << ")");
}

std::vector<double> luma(const RgbFrame& f) {
  std::vector<double> y(static_cast<size_t>(f.width) * f.height);
  for (size_t i = 0; i < y.size(); ++i) y[i] = 0.299 * f.rgb[3 * i] + 0.587 * f.rgb[3 * i + 1] + 0.114 * f.rgb[3 * i + 2];
  return y;
}

}  // namespace

double mse_rgb(const RgbFrame& a, const RgbFrame& b) {
  check_same(a, b, "mse_rgb");
  double sum = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) {
    const double d = double(a.rgb[i]) - double(b.rgb[i]);
    sum += d * d;
  }
  return sum / static_cast<double>(a.rgb.size());
}

double psnr_of_mse(double mse) {
  return mse <= 0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(255.0 * 255.0 / mse);
}

double ssim_rgb(const RgbFrame& a, const RgbFrame& b) {
  check_same(a, b, "ssim_rgb");
  constexpr int kRadius = 5;  // 11×11
  constexpr double kSigma = 1.5, kC1 = (0.01 * 255) * (0.01 * 255), kC2 = (0.03 * 255) * (0.03 * 255);
  const std::vector<double> x = luma(a), y = luma(b);
  double w[2 * kRadius + 1], norm = 0;
  for (int i = -kRadius; i <= kRadius; ++i) norm += w[i + kRadius] = std::exp(-0.5 * i * i / (kSigma * kSigma));
  const int W = a.width, H = a.height;
  FASTAR_CHECK(W > 2 * kRadius && H > 2 * kRadius, "ssim_rgb: frames smaller than the 11x11 window");
  double total = 0;
  int64_t windows = 0;
  for (int cy = kRadius; cy < H - kRadius; ++cy)
    for (int cx = kRadius; cx < W - kRadius; ++cx) {
      double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
      for (int dy = -kRadius; dy <= kRadius; ++dy)
        for (int dx = -kRadius; dx <= kRadius; ++dx) {
          const double g = w[dy + kRadius] * w[dx + kRadius] / (norm * norm);
          const size_t i = static_cast<size_t>(cy + dy) * W + (cx + dx);
          mx += g * x[i];
          my += g * y[i];
          sxx += g * x[i] * x[i];
          syy += g * y[i] * y[i];
          sxy += g * x[i] * y[i];
        }
      const double vx = sxx - mx * mx, vy = syy - my * my, cxy = sxy - mx * my;
      total += ((2 * mx * my + kC1) * (2 * cxy + kC2)) / ((mx * mx + my * my + kC1) * (vx + vy + kC2));
      ++windows;
    }
  return total / static_cast<double>(windows);
}

}  // namespace fastar
