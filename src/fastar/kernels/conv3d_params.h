// The parameters of a channels-last convolution of the video decoders (pipeline-spec.md §2.8), shared
// by the CPU reference (kernels/cpu/conv3d_channels_last.h) and the cuDNN runner
// (kernels/cuda/cudnn_conv.h). CUDA-free.
//
//   out[Tout, Ho, Wo, Cout] = act( conv(in[Tin, H, W, Cin], weight[Cout, kt, kh, kw, Cin]) + bias[Cout]
//                                  + residual[Tout, Ho, Wo, Cout] )
//
//   Time: 'valid', Tout = Tin − kernel_t + 1 (the caller prepends the causal context, 2 frames for
//   kernel_t = 3). Space: kernel_hw × kernel_hw, stride 1, no dilation, `padding()` zeros on every side,
//   Ho = H + 2·padding() − kernel_hw + 1 (= H for the default 'same' padding of an odd kernel).
//   kernel_t = 1 is a 2-D conv applied to each of the Tin frames.
//
// kernel_hw = 2 with pad_hw = 1 is the nearest-×2-upsample + 3×3 conv of the Wan VAE's resample layer
// rewritten as a sub-pixel conv on the low-resolution frame (the Wan VAE CUDA decoder does this; see
// wan_vae_decoder_cuda.h): Ho = H + 1, Wo = W + 1.
#pragma once

#include <cstdint>

#include "fastar/core/error.h"

namespace fastar {

enum class ConvActivation { None, Relu };

struct Conv3dParams {
  int64_t frames_in = 0;       // Tin, the causal context included
  int64_t height = 0, width = 0;
  int64_t in_channels = 0, out_channels = 0;
  int kernel_t = 1;            // 1 or 3 ('valid' in time)
  int kernel_hw = 3;           // 1, 2 or 3
  ConvActivation activation = ConvActivation::None;
  int pad_hw = -1;             // zeros on every spatial side; −1 = kernel_hw / 2 ('same' for an odd kernel)

  int64_t frames_out() const { return frames_in - kernel_t + 1; }
  int padding() const { return pad_hw < 0 ? kernel_hw / 2 : pad_hw; }
  int64_t height_out() const { return height + 2 * padding() - kernel_hw + 1; }
  int64_t width_out() const { return width + 2 * padding() - kernel_hw + 1; }
};

// Throws fastar::Error naming the shape when p is not a convolution both paths run: sizes and
// channels > 0, kernel_t 1 or 3, kernel_hw 1–3, padding < kernel_hw, at least one output frame.
inline void check_conv3d_params(const Conv3dParams& p, const char* who) {
  FASTAR_CHECK(p.frames_in > 0 && p.height > 0 && p.width > 0 && p.in_channels > 0 && p.out_channels > 0 &&
                   (p.kernel_t == 1 || p.kernel_t == 3) && p.kernel_hw >= 1 && p.kernel_hw <= 3 &&
                   p.padding() < p.kernel_hw && p.frames_out() >= 1 && p.height_out() >= 1 && p.width_out() >= 1,
               who << ": unsupported convolution: " << p.frames_in << " frames of " << p.height << "x" << p.width
                   << "x" << p.in_channels << " -> " << p.out_channels << " channels, kernel " << p.kernel_t << "x"
                   << p.kernel_hw << "x" << p.kernel_hw << ", padding " << p.padding()
                   << " (needs sizes > 0, kernel_t 1 or 3, kernel_hw 1-3, padding < kernel_hw, frames_in >= "
                      "kernel_t)");
}

}  // namespace fastar
