// Fidelity of a frame against a reference, as the papers report it (PSNR, SSIM), on 8-bit RGB.
#pragma once

#include "fastar/rollout/png_writer.h"

namespace fastar {

// Mean squared difference over all pixels and channels (8-bit units).
double mse_rgb(const RgbFrame& a, const RgbFrame& b);
// 10·log10(255² / mse): the PSNR of a mean MSE (average MSEs over frames first, as a video's PSNR);
// +infinity for mse == 0 (identical frames).
double psnr_of_mse(double mse);
// SSIM of Wang et al. (2004) on the luma Y = 0.299R + 0.587G + 0.114B: 11×11 Gaussian window
// (σ 1.5), K1 = 0.01, K2 = 0.03, L = 255, averaged over the windows that fit inside the frame.
double ssim_rgb(const RgbFrame& a, const RgbFrame& b);

}  // namespace fastar
