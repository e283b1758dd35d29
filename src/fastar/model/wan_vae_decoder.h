// The Wan2.1 VAE decoder, streaming, fp32 CPU reference (pipeline-spec.md §2).
//
// A WanVaeStream decodes a video chunk after chunk. It keeps the causal feature cache between
// chunks: for every causal 3³ or (3,1,1) conv the last 2 frames of its input (32 slots, §2.3), and
// whether the first latent of the stream has gone through (§2.4 'Rep' rule). Hence decoding any
// chunking of a clip equals decoding the whole clip, frame for frame (§2.5), and the memory held
// between chunks is bounded (cache_bytes()), whatever the length of the stream.
//
// Frame accounting (§1): the first latent of the stream decodes to 1 frame (it bypasses the two
// temporal upsamplers), every later latent to 4; so T latents give 1 + 4(T − 1) frames and with
// 3-latent chunks the first chunk yields 9 frames and every later one 12.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>

#include "fastar/core/tensor.h"
#include "fastar/model/wan_vae_weights.h"

namespace fastar {

// Wan2.1's per-channel latent statistics (pipeline-spec.md §2.6; wan-spec.md §6): the DiT works on
// z_n = (z − mean) / std, the decoder on z = z_n · std + mean.
inline constexpr std::array<float, 16> kWanLatentMean = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,
                                                         -0.1517f, 1.5508f,  0.4134f,  -0.0715f, 0.5517f,  -0.3632f,
                                                         -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
inline constexpr std::array<float, 16> kWanLatentStd = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f,
                                                        2.6052f, 2.0743f, 3.2687f, 2.1526f, 2.8652f, 1.5579f,
                                                        1.6382f, 1.1253f, 2.8251f, 1.9160f};

// z[16, T, h, w] = z_n · std_c + mean_c (fp32, per channel c). Throws unless z_n has 16 channels.
Tensor denormalise_wan_latent(const Tensor& normalised);

// How the first latent of a stream meets the temporal upsamplers.
enum class WanVaeFirstLatent {
  // The reference ([WAN] / diffusers 'Rep' rule, §2.4): latent 0 skips both time_convs and gives
  // 1 frame; the time_convs' history starts at latent 1.
  Bypass,
  // The Self-Forcing demo's start from an all-zero cache (§2.5, "Where it is NOT equal", item 1):
  // latent 0 goes through the time_convs and gives 4 frames (the demo drops 3). Not the reference;
  // kept for comparisons with that demo and to show what the rule changes.
  ThroughTimeConv,
};

struct WanVaeStreamOptions {
  WanVaeFirstLatent first_latent = WanVaeFirstLatent::Bypass;
  // Latents decoded per pass through the layers. 1 (the default, [WAN]'s loop) holds the
  // activations of one latent at a time, whatever the chunk length; 0 runs the whole chunk in one
  // pass (what a GPU path does). The output is the same bit for bit (§2.5; every GEMM runs per frame).
  int64_t latents_per_pass = 1;
};

// Frames produced by decoding `chunk_latents` latents after `latents_before` (§1).
int64_t wan_vae_output_frames(int64_t latents_before, int64_t chunk_latents,
                              WanVaeFirstLatent rule = WanVaeFirstLatent::Bypass);

class WanVaeStream {
 public:
  explicit WanVaeStream(std::shared_ptr<const WanVaeDecoderWeights> weights, WanVaeStreamOptions options = {});

  // latent [16, T, h, w], normalised as the DiT outputs it (any float dtype)
  //   -> frames [T', 3, 8h, 8w] fp32 RGB in [0, 1]: denormalise (§2.6), decode, clamp to [−1, 1], ·0.5 + 0.5.
  // T' = wan_vae_output_frames(latents_decoded(), T). Every chunk of a stream must have the same h, w.
  Tensor decode_chunk(const Tensor& latent);

  // The decoder alone: latent [16, T, h, w] already denormalised -> [3, T', 8h, 8w], not clamped
  // (diffusers' AutoencoderKLWan.decode without the batch axis and before its clamp).
  Tensor decode_chunk_unclamped(const Tensor& latent);

  // Forget the stream (cache and first-latent state); the next chunk starts a new video.
  void reset();

  int64_t latents_decoded() const { return latents_decoded_; }
  int64_t frames_decoded() const { return frames_decoded_; }
  // Bytes held between chunks: 2 frames per causal conv with kernel_t = 3 (the feature cache).
  int64_t cache_bytes() const;
  // Causal convs holding a context (32 for the Wan2.1 decoder once a latent after the first went through).
  int64_t cache_slots() const { return static_cast<int64_t>(contexts_.size()); }
  const WanVaeDecoderWeights& weights() const { return *weights_; }

 private:
  // Latents z[16, n, h, w] (denormalised) -> [3, n', 8h, 8w] in one pass; advances the stream.
  Tensor decode_pass(const Tensor& z);
  // x[C, T, H, W] -> [C', T, H, W]; convs with kernel_t = 3 read and advance their cached context.
  Tensor conv(const VaeConvWeights& c, const Tensor& x);
  Tensor res_block(const VaeResBlockWeights& r, const Tensor& x);
  Tensor attention(const VaeAttentionWeights& a, const Tensor& x);
  Tensor time_upsample(const VaeConvWeights& time_conv, const Tensor& x);    // [C, T] -> [C, T'] (T' = 2T, or 2T − 1)
  Tensor spatial_upsample(const VaeConvWeights& resample, const Tensor& x);  // [C, T, H, W] -> [C/2, T, 2H, 2W]

  std::shared_ptr<const WanVaeDecoderWeights> weights_;
  WanVaeStreamOptions options_;
  std::map<const VaeConvWeights*, Tensor> contexts_;  // per causal conv: [in, 2, H, W]
  int64_t latents_decoded_ = 0;
  int64_t frames_decoded_ = 0;
  int64_t latent_height_ = 0, latent_width_ = 0;
};

}  // namespace fastar
