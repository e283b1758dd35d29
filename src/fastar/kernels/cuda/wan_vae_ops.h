// The Wan2.1 VAE decoder's non-convolution ops on the GPU (pipeline-spec.md §2.2, §2.8), for
// model/cuda/wan_vae_decoder_cuda.h. Activations are channels-last bf16 [T, H, W, C] (a position is
// one pixel of one frame, its C channels contiguous); arithmetic is fp32 with one rounding per output.
// Each op mirrors a step of the fp32 CPU reference (model/wan_vae_decoder.cpp and kernels/cpu/
// channel_rms_norm.h, frame_attention.h); the check program tests/cuda/wan_vae_check.cpp compares the
// whole decoder. Everything is asynchronous on `stream`; a launch error throws fastar::Error.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "fastar/core/dtype.h"

namespace fastar::cuda {

// latent[channels, frames, hw] (F32, BF16 or F16, contiguous, device) -> out[frames, hw, channels] bf16,
// with z = z · stddev[c] + mean[c] (fp32, §2.6) when mean and stddev (device fp32 [channels]) are given.
void latent_to_channels_last(__nv_bfloat16* out, const void* latent, DType dtype, const float* mean,
                             const float* stddev, int64_t channels, int64_t frames, int64_t hw, cudaStream_t stream);

// RMS_norm over channels, then SiLU if `silu` (cpu::channel_rms_norm_forward, channels-last):
//   out[p, c] = y · sigmoid(y) (or y),  y = in[p, c] / max(‖in[p, :]‖₂, 1e-12) · √channels · gamma[c]
// in, out: [positions, channels] bf16 (out may be another tensor's frames, e.g. a conv's input after
// its cached context); gamma fp32 [channels]. Sum of squares in fp32; out must not alias in.
void channel_rms_norm_bf16(__nv_bfloat16* out, const __nv_bfloat16* in, const float* gamma, int64_t positions,
                           int64_t channels, bool silu, cudaStream_t stream);

// upsample3d's reshape after time_conv (§2.2): in[steps, positions, 2·channels] ->
// out[2·steps, positions, channels], channels [0, C) of step τ becoming frame 2τ and [C, 2C) frame 2τ + 1.
void interleave_time_conv_bf16(__nv_bfloat16* out, const __nv_bfloat16* in, int64_t steps, int64_t positions,
                               int64_t channels, cudaStream_t stream);

// The sub-pixel form of nearest-×2 + 3×3 conv (conv3d_params.h; the decoder's resample layers): the 2×2
// conv with padding 1 gives in[frames, H + 1, W + 1, 4·channels], phase (a, b) in channels
// [(2a + b)·C, (2a + b + 1)·C); out[frames, 2H, 2W, channels][2i + a, 2j + b] = in[i + a, j + b, phase (a, b)].
void pixel_shuffle_subpixel_bf16(__nv_bfloat16* out, const __nv_bfloat16* in, int64_t frames, int64_t height,
                                 int64_t width, int64_t channels, cudaStream_t stream);

// The mid-block attention of one frame (cpu::frame_attention_forward, channels-last; §2.2 steps 4–5):
//   qkv[tokens, 3·channels] bf16 (q, k, v = columns [0, C), [C, 2C), [2C, 3C));
//   out[tokens, channels] bf16 = softmax(q·kᵀ / √C) · v, one head, no mask.
// scores: device scratch of tokens² fp32 (the fp32 logits; the bf16 probabilities overwrite each row's
// first half). Two cuBLAS GEMMs (bf16 in, fp32 accumulation) around a row softmax in fp32.
// Throws when a row of `tokens` fp32 does not fit in one block's shared memory (tokens > ~58000).
void frame_attention_bf16(cublasHandle_t cublas, __nv_bfloat16* out, const __nv_bfloat16* qkv, float* scores,
                          int64_t channels, int64_t tokens, cudaStream_t stream);

// The decoder's output, as WanVaeStream::decode_chunk + video_frame_to_rgb make it (§2.6):
//   in[frames, hw, in_stride] bf16, channels 0..2 = RGB in about [−1, 1]
//   -> out[frames, hw, 3] uint8 = lround(clamp(255 · (clamp(v, −1, 1) · 0.5 + 0.5), 0, 255)).
void frames_to_rgb8(uint8_t* out, const __nv_bfloat16* in, int64_t frames, int64_t hw, int64_t in_stride,
                    cudaStream_t stream);

// The decoder's output unclamped, channel-first as WanVaeStream::decode_chunk_unclamped returns it:
//   in[frames, hw, in_stride] bf16 -> out[3, total_frames, hw] fp32 at frames [first_frame, first_frame + frames).
void frames_to_f32_planar(float* out, const __nv_bfloat16* in, int64_t frames, int64_t hw, int64_t in_stride,
                          int64_t first_frame, int64_t total_frames, cudaStream_t stream);

}  // namespace fastar::cuda
