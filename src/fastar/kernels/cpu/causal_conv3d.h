// The causal 3-D convolution of the Wan VAE, streaming (pipeline-spec.md §2.2, §2.5).
//
// A chunk of T frames is convolved with the kernel_t − 1 frames before it (its "context"): zero
// frames before the first frame of the stream, afterwards the last input frames of the previous
// chunk. In space the input is zero-padded by kernel/2 on every side; stride 1; output T frames of
// the input's height and width. Decoding chunk after chunk with the context carried over therefore
// equals one convolution over the whole clip (up to summation order).
//
// A Conv2d applied per frame (the VAE's resample conv) is the same function with kernel_t = 1, and
// a pointwise Conv3d (1×1×1, the shortcut and `conv2`) is kernel 1×1×1. All buffers are fp32,
// channel-first and contiguous: [channels, frames, height, width].
//
// Algorithm (CPU reference): for each output frame, the kernel_t input frames are copied once into
// a zero-bordered window [in, kernel_t, H+2ph, W+2pw]; each kernel tap (dt, dy, dx) is then one
// OpenBLAS GEMM  out[out, N] += W_tap[out, in] · window[in, N] shifted by (dt, dy, dx),  over the
// padded-width pixel grid (N = (H−1)·(W+2pw) + W columns; the 2pw columns per row that wrap around
// are computed and dropped). No im2col, so the extra memory is one window and one output frame.
#pragma once

#include <cstdint>

namespace fastar::cpu {

struct CausalConv3dParams {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel_t = 1;  // 1 or 3 in the VAE; the context holds kernel_t − 1 frames
  int64_t kernel_h = 1;  // odd; zero padding kernel_h / 2 above and below
  int64_t kernel_w = 1;  // odd; zero padding kernel_w / 2 left and right
  int64_t frames = 0;    // T of this chunk (input and output)
  int64_t height = 0;
  int64_t width = 0;

  int64_t context_frames() const { return kernel_t - 1; }
  int64_t taps() const { return kernel_t * kernel_h * kernel_w; }
};

// Throws fastar::Error when a size is non-positive or a spatial kernel size is even.
void check_causal_conv3d_params(const CausalConv3dParams& p);

// weight[out, in, kt, kh, kw] (PyTorch Conv3d layout; Conv2d [out, in, kh, kw] is the kt = 1 case)
// -> packed[kt·kh·kw, out, in]: one row-major GEMM matrix per tap, tap index (dt·kh + dy)·kw + dx.
void causal_conv3d_pack_weight(float* packed, const float* weight, const CausalConv3dParams& p);

// out[out_channels, T, H, W] = bias + causal conv of concat(context, in) along T.
//   in:      [in_channels, T, H, W]
//   context: [in_channels, kernel_t − 1, H, W], oldest frame first; nullptr when kernel_t == 1
//   packed:  causal_conv3d_pack_weight's output;  bias: [out_channels] or nullptr
// `out` must not alias `in` or `context`.
void causal_conv3d_forward(float* out, const float* in, const float* context, const float* packed, const float* bias,
                           const CausalConv3dParams& p);

// The context for the next chunk, in place: context ← last kernel_t − 1 frames of concat(context, in).
// (The Wan VAE's feature cache: "the last 2 frames of this conv's input", pipeline-spec.md §2.4.)
void causal_conv3d_advance_context(float* context, const float* in, const CausalConv3dParams& p);

}  // namespace fastar::cpu
