// The tiny Wan2.1 decoders TAEHV (taew2_1) and LightTAE (lighttaew2_1), streaming, fp32 CPU
// reference (pipeline-spec.md §3).
//
// A TaehvStream decodes a video chunk after chunk. Its only state between chunks is one frame per
// MemBlock: the block's last input (9 slots, §3.3); TGrow, Upsample and the convs are stateless.
// Hence decoding any chunking of a clip equals decoding the whole clip, and the memory held between
// chunks is bounded (state_bytes(): 67 MB in bf16, 134 MB in fp32 at 480×832).
//
// Frame accounting (§1, §3.2): every latent gives 4 raw frames (two stride-2 TGrows); the first 3
// raw frames of the stream are dropped, so T latents give 1 + 4(T − 1) frames, aligned with the Wan
// VAE: with 3-latent chunks the first chunk yields 9 frames and every later one 12.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "fastar/core/tensor.h"
#include "fastar/model/taehv_weights.h"

namespace fastar {

struct TaehvStreamOptions {
  // Latents decoded per pass through the layers. 1 (the default) holds the activations of one
  // latent (4 frames at full resolution) at a time, whatever the chunk length; 0 runs the whole
  // chunk in one pass. The output is the same bit for bit (every GEMM runs per frame).
  int64_t latents_per_pass = 1;
};

// Frames the stream outputs for `chunk_latents` latents after `latents_before` (§1): 4 per latent,
// less the 3 trimmed at the start of the stream.
int64_t taehv_output_frames(int64_t latents_before, int64_t chunk_latents);

class TaehvStream {
 public:
  explicit TaehvStream(std::shared_ptr<const TaehvDecoderWeights> weights, TaehvStreamOptions options = {});

  // latent [16, T, h, w], normalised as the DiT outputs it (any float dtype)
  //   -> frames [T', 3, 8h, 8w] fp32 RGB in [0, 1], T' = taehv_output_frames(latents_decoded(), T).
  // taew2_1 decodes the latent as is, LightTAE denormalises it first (z_n · std + mean, §3.2); then
  // the decoder, the first 3 raw frames of the stream dropped, clamp to [0, 1].
  // Every chunk of a stream must have the same h, w.
  Tensor decode_chunk(const Tensor& latent);

  // The decoder alone: its input [16, T, h, w] exactly as the layers take it (already scaled for the
  // variant) -> raw frames [4T, 3, 8h, 8w]: no trim, no clamp. Advances the stream like decode_chunk.
  Tensor decode_chunk_raw(const Tensor& decoder_input);

  // Forget the stream (MemBlock state, frame counts); the next chunk starts a new video.
  void reset();

  int64_t latents_decoded() const { return latents_decoded_; }
  int64_t raw_frames_decoded() const { return raw_frames_decoded_; }
  // Bytes held between chunks: one frame per MemBlock (0 before the first chunk).
  int64_t state_bytes() const;
  const TaehvDecoderWeights& weights() const { return *weights_; }

 private:
  // x[16, n, h, w] (decoder input) -> raw [3, 4n, 8h, 8w] in one pass; advances the MemBlock state.
  Tensor decode_pass(const Tensor& x);
  // x[C, n, H, W] -> ReLU(conv3(ReLU(conv2(ReLU(conv1(cat[x, past]))))) + x); state ← x's last frame.
  Tensor mem_block(const TaehvMemBlockWeights& block, Tensor& state, const Tensor& x);

  std::shared_ptr<const TaehvDecoderWeights> weights_;
  TaehvStreamOptions options_;
  std::array<Tensor, 9> states_;  // per MemBlock (stage-major): its last input frame [C, 1, H, W]
  int64_t latents_decoded_ = 0;
  int64_t raw_frames_decoded_ = 0;
  int64_t latent_height_ = 0, latent_width_ = 0;
};

}  // namespace fastar
