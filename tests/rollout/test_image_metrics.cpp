// PSNR and SSIM of 8-bit frames against closed forms and exact identities.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "fastar/core/error.h"
#include "fastar/rollout/image_metrics.h"

namespace fastar {
namespace {

RgbFrame frame(int w, int h, int seed) {
  RgbFrame f;
  f.width = w;
  f.height = h;
  f.rgb.resize(static_cast<size_t>(w) * h * 3);
  uint32_t state = 2463534242u + static_cast<uint32_t>(seed);
  for (uint8_t& v : f.rgb) {
    state ^= state << 13, state ^= state >> 17, state ^= state << 5;
    v = static_cast<uint8_t>(40 + state % 170);
  }
  return f;
}

TEST(ImageMetrics, IdenticalFramesAreInfinitePsnrAndUnitSsim) {
  const RgbFrame a = frame(32, 24, 1);
  EXPECT_EQ(mse_rgb(a, a), 0.0);
  EXPECT_TRUE(std::isinf(psnr_of_mse(mse_rgb(a, a))));
  EXPECT_NEAR(ssim_rgb(a, a), 1.0, 1e-12);
}

TEST(ImageMetrics, PsnrOfAConstantOffsetIsTheClosedForm) {
  const RgbFrame a = frame(16, 16, 2);
  RgbFrame b = a;
  for (uint8_t& v : b.rgb) v = static_cast<uint8_t>(v + 5);  // values stay below 255 (40..214 + 5)
  EXPECT_DOUBLE_EQ(mse_rgb(a, b), 25.0);
  EXPECT_NEAR(psnr_of_mse(mse_rgb(a, b)), 10.0 * std::log10(255.0 * 255.0 / 25.0), 1e-12);
}

TEST(ImageMetrics, SsimIsSymmetricBelowOneAndOrdersDistortions) {
  const RgbFrame a = frame(40, 40, 3), noise = frame(40, 40, 4);
  RgbFrame slight = a, heavy = a;
  for (size_t i = 0; i < a.rgb.size(); ++i) {
    slight.rgb[i] = static_cast<uint8_t>((9 * a.rgb[i] + noise.rgb[i]) / 10);
    heavy.rgb[i] = static_cast<uint8_t>((a.rgb[i] + noise.rgb[i]) / 2);
  }
  const double s1 = ssim_rgb(a, slight), s2 = ssim_rgb(a, heavy);
  EXPECT_NEAR(s1, ssim_rgb(slight, a), 1e-12);
  EXPECT_LT(s1, 1.0);
  EXPECT_GT(s1, s2);
  // A luminance shift leaves structure intact: SSIM stays far above that of added noise.
  RgbFrame shifted = a;
  for (uint8_t& v : shifted.rgb) v = static_cast<uint8_t>(v + 3);
  EXPECT_GT(ssim_rgb(a, shifted), s2);
}

TEST(ImageMetrics, MismatchedFramesAreErrors) {
  EXPECT_THROW(mse_rgb(frame(8, 8, 1), frame(8, 9, 1)), Error);
  EXPECT_THROW(ssim_rgb(frame(8, 8, 1), frame(8, 8, 2)), Error);  // smaller than the 11x11 window
}

}  // namespace
}  // namespace fastar
