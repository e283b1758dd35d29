// The data-movement and pointwise kernels of the CUDA tiny decoder (TAEHV taew2_1 / LightTAE
// lighttaew2_1, pipeline-spec.md §3); its convolutions are cudnn_conv.h's ConvRunner.
//
// Activations are channels-last bf16 [frames, height, width, channels], one video, no batch axis,
// with channel counts padded to a multiple of 8 (the padded channels hold zeros; 16-byte vectors
// of 8 bf16 per access). The fp32 CPU reference is fastar/model/taehv_decoder.cpp (TaehvStream),
// channel-first [C, T, H, W]; what each kernel does there is named below. tests/cuda/taehv_check.cpp
// checks every kernel against host loops and the whole decoder against TaehvStream.
// Everything is asynchronous on `stream`; bad arguments and launch errors throw fastar::Error.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <array>
#include <cstdint>

namespace fastar::cuda {

// The float dtypes a latent may come in on the device.
enum class LatentDType { F32, BF16, F16 };

// taehv_decoder_input: the decoder's first step.
struct TaehvInputParams {
  int64_t channels = 16;          // C of the latent
  int64_t padded_channels = 16;   // Cp ≥ C, a multiple of 8: channels [C, Cp) of the output are 0
  int64_t frames = 0, height = 0, width = 0;
  LatentDType dtype = LatentDType::F32;
  // LightTAE's denormalisation z · std[c] + mean[c] (pipeline-spec.md §3.2, §2.6), for C ≤ 16.
  bool denormalise = false;
  std::array<float, 16> mean{}, std{};
};

// out[t, y, x, c] = bf16(3 · tanh(z / 3)),  z = latent[c, t, y, x] (· std[c] + mean[c] if denormalise)
//   latent: contiguous [C, T, H, W] of p.dtype;  out: [T, H, W, Cp]
// TaehvStream: denormalise_wan_latent (LightTAE's decode_chunk), then soft_clamp (decoder.0).
void taehv_decoder_input(__nv_bfloat16* out, const void* latent, const TaehvInputParams& p, cudaStream_t stream);

// MemBlock's input (decoder.3–5, 9–11, 15–17): cat[x, past] on channels, past = the block's input one
// step earlier (its state before the chunk's first frame).
//   x: [T, P, C] (P = height · width pixels), state: [P, C] -> cat: [T, P, 2C],
//   cat[t, p, 0:C] = x[t, p, :],  cat[t, p, C:2C] = (t == 0 ? state[p, :] : x[t − 1, p, :]).
// C must be a multiple of 8. TaehvStream::mem_block's cat (the state update is a plain copy).
void taehv_memblock_concat(__nv_bfloat16* cat, const __nv_bfloat16* x, const __nv_bfloat16* state, int64_t frames,
                           int64_t pixels, int64_t channels, cudaStream_t stream);

// TGrow's channels into frames, and the nearest ×2 upsample (decoder.6+7, 12+13, 18+19). TGrow is a
// 1×1 conv, so it commutes with the upsample and runs before it, at a quarter of the pixels:
//   y: [n, H, W, s·C] (the 1×1 conv's output) -> out: [s·n, 2H, 2W, C],
//   out[s·τ + k, Y, X, c] = y[τ, ⌊Y/2⌋, ⌊X/2⌋, k·C + c]  (channel group k of step τ is frame s·τ + k).
// C must be a multiple of 8. TaehvStream's upsample_tgrow after its conv.
void taehv_tgrow_upsample(__nv_bfloat16* out, const __nv_bfloat16* y, int64_t frames, int64_t height, int64_t width,
                          int64_t channels, int64_t stride, cudaStream_t stream);

// The stream's 8-bit frames: drop the trimmed raw frames, clamp to [0, 1], round(255 · v).
//   raw: [first_frame + frames, P, Craw] bf16 (Craw ≥ 3, a multiple of 8; channels 0..2 are RGB)
//   -> rgb: [frames, P, 3] uint8,  rgb[f, p, c] = lround(255 · clamp(raw[first_frame + f, p, c], 0, 1)), NaN → 0.
// TaehvStream::decode_chunk's trim and clamp, then video_frame_to_rgb (rollout/video_frame.h).
void taehv_frames_to_rgb8(uint8_t* rgb, const __nv_bfloat16* raw, int64_t first_frame, int64_t frames, int64_t pixels,
                          int64_t raw_channels, cudaStream_t stream);

// The raw decoder output in TaehvStream::decode_chunk_raw's layout:
//   raw: [F, P, Craw] bf16 -> out: [F, C, P] fp32 (channel planes), C ≤ Craw, Craw a multiple of 8.
void taehv_raw_to_planar(float* out, const __nv_bfloat16* raw, int64_t frames, int64_t pixels, int64_t raw_channels,
                         int64_t channels, cudaStream_t stream);

}  // namespace fastar::cuda
