#include "fastar/model/wan_vae_decoder.h"

#include <algorithm>
#include <cstring>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/causal_conv3d.h"
#include "fastar/kernels/cpu/channel_rms_norm.h"
#include "fastar/kernels/cpu/frame_attention.h"
#include "fastar/kernels/cpu/nearest_upsample.h"
#include "fastar/model/video_activations.h"

namespace fastar {

namespace {

// Loops over fewer elements than this run on one thread (see the kernels: parallel regions cost
// more than the work at the narrow test widths).
constexpr int64_t kParallelMinElements = int64_t{1} << 16;

// Activations are contiguous fp32 [C, T, H, W] (video_activations.h).
using video::channels_of;
using video::contiguous_f32;
using video::frames_of;
using video::height_of;
using video::slice_frames;
using video::width_of;

// RMS_norm over channels (pipeline-spec.md §2.2), optionally followed by SiLU.
Tensor rms_norm(const Tensor& x, const Tensor& gamma, bool silu) {
  Tensor out = Tensor::zeros(x.shape());
  cpu::channel_rms_norm_forward(out.data<float>(), x.data<float>(), gamma.data<float>(), channels_of(x),
                                x.numel() / channels_of(x), silu);
  return out;
}

void add_in_place(Tensor& x, const Tensor& y) {
  float* a = x.data<float>();
  const float* b = y.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void check_latent(const Tensor& latent, int64_t z_dim, const char* what) {
  video::check_video_latent(latent, z_dim, "Wan VAE", std::string(what) + " latent", "latent");
}

}  // namespace

Tensor denormalise_wan_latent(const Tensor& normalised) {
  check_latent(normalised, static_cast<int64_t>(kWanLatentMean.size()), "normalised");
  Tensor z = contiguous_f32(normalised).clone();
  const int64_t per_channel = z.numel() / z.size(0);
  for (int64_t c = 0; c < z.size(0); ++c) {
    float* p = z.data<float>() + c * per_channel;
    for (int64_t i = 0; i < per_channel; ++i) p[i] = p[i] * kWanLatentStd[c] + kWanLatentMean[c];
  }
  return z;
}

int64_t wan_vae_output_frames(int64_t latents_before, int64_t chunk_latents, WanVaeFirstLatent rule) {
  if (chunk_latents <= 0) return 0;
  const bool first = latents_before == 0 && rule == WanVaeFirstLatent::Bypass;
  return first ? 1 + 4 * (chunk_latents - 1) : 4 * chunk_latents;
}

WanVaeStream::WanVaeStream(std::shared_ptr<const WanVaeDecoderWeights> weights, WanVaeStreamOptions options)
    : weights_(std::move(weights)), options_(options) {
  FASTAR_CHECK(weights_ != nullptr, "WanVaeStream: no weights given");
  FASTAR_CHECK(options_.latents_per_pass >= 0,
               "WanVaeStream: latents_per_pass is " << options_.latents_per_pass << "; use 0 (whole chunk) or more");
}

void WanVaeStream::reset() {
  contexts_.clear();
  latents_decoded_ = 0;
  frames_decoded_ = 0;
  latent_height_ = latent_width_ = 0;
}

int64_t WanVaeStream::cache_bytes() const {
  int64_t bytes = 0;
  for (const auto& [conv, context] : contexts_) bytes += context.nbytes();
  return bytes;
}

Tensor WanVaeStream::conv(const VaeConvWeights& c, const Tensor& x) {
  FASTAR_ASSERT(channels_of(x) == c.in_channels,
                "Wan VAE conv: " << channels_of(x) << " channels in, weight takes " << c.in_channels);
  const cpu::CausalConv3dParams p = c.params(frames_of(x), height_of(x), width_of(x));
  Tensor out = Tensor::zeros({c.out_channels, p.frames, p.height, p.width});
  float* context = nullptr;
  if (p.context_frames() > 0) {
    Tensor& slot = contexts_[&c];
    if (!slot.defined())
      slot = Tensor::zeros({c.in_channels, p.context_frames(), p.height, p.width});  // zeros before frame 0
    FASTAR_ASSERT(slot.size(2) == p.height && slot.size(3) == p.width, "Wan VAE: cached context has another size");
    context = slot.data<float>();
  }
  cpu::causal_conv3d_forward(out.data<float>(), x.data<float>(), context, c.packed.data<float>(), c.bias.data<float>(),
                             p);
  if (context) cpu::causal_conv3d_advance_context(context, x.data<float>(), p);
  return out;
}

Tensor WanVaeStream::res_block(const VaeResBlockWeights& r, const Tensor& x) {
  Tensor h = r.has_shortcut() ? conv(r.shortcut, x) : x;
  Tensor y = conv(r.conv1, rms_norm(x, r.norm1_gamma, /*silu=*/true));
  y = conv(r.conv2, rms_norm(y, r.norm2_gamma, /*silu=*/true));  // dropout is identity at inference
  add_in_place(y, h);
  return y;
}

Tensor WanVaeStream::attention(const VaeAttentionWeights& a, const Tensor& x) {
  const int64_t C = channels_of(x), T = frames_of(x), tokens = height_of(x) * width_of(x);
  Tensor qkv = conv(a.to_qkv, rms_norm(x, a.norm_gamma, /*silu=*/false));  // [3C, T, H, W]
  Tensor attended = Tensor::zeros(x.shape());                              // [C, T, H, W]
  for (int64_t t = 0; t < T; ++t)                                          // per frame, over its h·w pixels
    cpu::frame_attention_forward(attended.data<float>() + t * tokens, T * tokens, qkv.data<float>() + t * tokens,
                                 T * tokens, C, tokens);
  Tensor out = conv(a.proj, attended);
  add_in_place(out, x);
  return out;
}

Tensor WanVaeStream::time_upsample(const VaeConvWeights& time_conv, const Tensor& x) {
  const int64_t C = channels_of(x), T = frames_of(x), hw = height_of(x) * width_of(x);
  // The 'Rep' rule (pipeline-spec.md §2.4): the stream's first frame bypasses time_conv and never
  // enters its history, so the conv runs on the frames after it with zero context.
  const bool bypass_first = latents_decoded_ == 0 && options_.first_latent == WanVaeFirstLatent::Bypass;
  const int64_t passed = bypass_first ? 1 : 0;
  const int64_t convolved = T - passed;
  Tensor out = Tensor::zeros({C, passed + 2 * convolved, height_of(x), width_of(x)});
  const int64_t out_t = frames_of(out);
  if (passed)
    for (int64_t c = 0; c < C; ++c)
      std::memcpy(out.data<float>() + c * out_t * hw, x.data<float>() + c * T * hw, sizeof(float) * hw);
  if (convolved == 0) return out;
  Tensor y = conv(time_conv, passed ? slice_frames(x, passed, T) : x);  // [2C, convolved, H, W]
  // Channels [0, C) of step τ become frame 2τ, channels [C, 2C) frame 2τ + 1 (§2.2 upsample3d).
#pragma omp parallel for collapse(2) schedule(static) if (out.numel() >= kParallelMinElements)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t tau = 0; tau < convolved; ++tau)
      for (int64_t s = 0; s < 2; ++s)
        std::memcpy(out.data<float>() + (c * out_t + passed + 2 * tau + s) * hw,
                    y.data<float>() + ((s * C + c) * convolved + tau) * hw, sizeof(float) * hw);
  return out;
}

Tensor WanVaeStream::spatial_upsample(const VaeConvWeights& resample, const Tensor& x) {
  const int64_t C = channels_of(x), T = frames_of(x), H = height_of(x), W = width_of(x), hw = H * W;
  const int64_t Co = resample.out_channels, out_hw = 4 * hw;
  Tensor out = Tensor::zeros({Co, T, 2 * H, 2 * W});
  // One frame at a time keeps the ×2 intermediate at one frame (§2.7 memory).
  Tensor frame = Tensor::zeros({C, 1, H, W});
  Tensor upsampled = Tensor::zeros({C, 1, 2 * H, 2 * W});
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < C; ++c)
      std::memcpy(frame.data<float>() + c * hw, x.data<float>() + (c * T + t) * hw, sizeof(float) * hw);
    cpu::nearest_upsample2x_forward(upsampled.data<float>(), frame.data<float>(), C, H, W);
    Tensor y = conv(resample, upsampled);  // Conv2d 3×3 (kernel_t = 1, no cache): [Co, 1, 2H, 2W]
    for (int64_t c = 0; c < Co; ++c)
      std::memcpy(out.data<float>() + (c * T + t) * out_hw, y.data<float>() + c * out_hw, sizeof(float) * out_hw);
  }
  return out;
}

Tensor WanVaeStream::decode_pass(const Tensor& z) {
  const WanVaeDecoderWeights& w = *weights_;
  Tensor x = conv(w.post_quant_conv, z);  // conv2, pointwise
  x = conv(w.conv_in, x);
  x = res_block(w.mid_res0, x);
  x = attention(w.mid_attention, x);
  x = res_block(w.mid_res1, x);
  for (const VaeUpBlockWeights& block : w.up_blocks) {
    for (const VaeResBlockWeights& r : block.resnets) x = res_block(r, x);
    if (!block.has_upsample) continue;
    if (block.upsample.temporal) x = time_upsample(block.upsample.time_conv, x);
    x = spatial_upsample(block.upsample.resample, x);
  }
  x = conv(w.conv_out, rms_norm(x, w.norm_out_gamma, /*silu=*/true));
  const int64_t latents = frames_of(z);
  FASTAR_ASSERT(frames_of(x) == wan_vae_output_frames(latents_decoded_, latents, options_.first_latent),
                "Wan VAE: " << latents << " latents decoded to " << frames_of(x) << " frames");
  latents_decoded_ += latents;
  frames_decoded_ += frames_of(x);
  return x;
}

Tensor WanVaeStream::decode_chunk_unclamped(const Tensor& latent) {
  check_latent(latent, weights_->config.z_dim, "denormalised");
  if (latents_decoded_ > 0)
    FASTAR_CHECK(latent.size(2) == latent_height_ && latent.size(3) == latent_width_,
                 "Wan VAE: this chunk's latent is " << latent.size(2) << "x" << latent.size(3)
                                                    << " but the stream started at " << latent_height_ << "x"
                                                    << latent_width_ << "; call reset() to start a new video");
  latent_height_ = latent.size(2);
  latent_width_ = latent.size(3);
  const Tensor z = contiguous_f32(latent);
  const int64_t T = z.size(1), H = 8 * latent_height_, W = 8 * latent_width_;
  const int64_t out_channels = weights_->config.out_channels;
  Tensor out = Tensor::zeros({out_channels, wan_vae_output_frames(latents_decoded_, T, options_.first_latent), H, W});
  // By default latent by latent, as [WAN] decodes (pipeline-spec.md §2.4): every op is causal or per
  // frame, so this equals one pass over the chunk bit for bit (every GEMM already runs per frame), and
  // the activations held at once are those of one latent (≤ 4 output frames) however long the chunk is.
  const int64_t per_pass = options_.latents_per_pass == 0 ? T : options_.latents_per_pass;
  int64_t written = 0;
  for (int64_t t = 0; t < T; t += per_pass) {
    const int64_t n_latents = std::min(per_pass, T - t);
    const Tensor frames = n_latents == T ? decode_pass(z) : decode_pass(slice_frames(z, t, t + n_latents));
    const int64_t n = frames_of(frames), total = frames_of(out);
    for (int64_t c = 0; c < out_channels; ++c)
      std::memcpy(out.data<float>() + (c * total + written) * H * W, frames.data<float>() + c * n * H * W,
                  sizeof(float) * n * H * W);
    written += n;
  }
  return out;
}

Tensor WanVaeStream::decode_chunk(const Tensor& latent) {
  FASTAR_CHECK(weights_->config.z_dim == static_cast<int64_t>(kWanLatentMean.size()),
               "Wan VAE: the weights take " << weights_->config.z_dim << " latent channels; the Wan2.1 latent "
                                            << "statistics are for 16");
  Tensor decoded = decode_chunk_unclamped(denormalise_wan_latent(latent));  // [3, T', H, W]
  const int64_t C = channels_of(decoded), T = frames_of(decoded), hw = height_of(decoded) * width_of(decoded);
  Tensor frames = Tensor::zeros({T, C, height_of(decoded), width_of(decoded)});
  // clamp to [−1, 1], then ·0.5 + 0.5 (§2.6); [C, T] -> [T, C]
#pragma omp parallel for collapse(2) schedule(static) if (frames.numel() >= kParallelMinElements)
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) {
      const float* src = decoded.data<float>() + (c * T + t) * hw;
      float* dst = frames.data<float>() + (t * C + c) * hw;
      for (int64_t i = 0; i < hw; ++i) dst[i] = std::clamp(src[i], -1.0f, 1.0f) * 0.5f + 0.5f;
    }
  return frames;
}

}  // namespace fastar
