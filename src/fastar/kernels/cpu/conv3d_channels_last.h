// The channels-last convolution of the video decoders in fp32 on the CPU: the reference the cuDNN
// path (kernels/cuda/cudnn_conv.h, same parameters and layouts in bf16) is checked against.
//
//   out[Tout, Ho, Wo, Cout] = act( conv(in[Tin, H, W, Cin], weight[Cout, kt, kh, kw, Cin]) + bias[Cout]
//                                  + residual[Tout, Ho, Wo, Cout] )
//
// Shapes and padding: kernels/conv3d_params.h. bias and residual may be nullptr. Plain loops with
// double accumulation (a reference for check programs, not a fast path); `out` must not alias an input.
#pragma once

#include "fastar/kernels/conv3d_params.h"

namespace fastar::cpu {

// Throws fastar::Error (check_conv3d_params) on a shape it does not run.
void conv3d_channels_last(const Conv3dParams& p, const float* in, const float* weight, const float* bias,
                          const float* residual, float* out);

}  // namespace fastar::cpu
