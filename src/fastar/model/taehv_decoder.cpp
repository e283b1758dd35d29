#include "fastar/model/taehv_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/causal_conv3d.h"
#include "fastar/kernels/cpu/nearest_upsample.h"
#include "fastar/model/video_activations.h"
#include "fastar/model/wan_vae_decoder.h"  // denormalise_wan_latent (pipeline-spec.md §2.6)

namespace fastar {

namespace {

// Loops over fewer elements than this run on one thread (parallel regions cost more than the work
// at the narrow test widths).
constexpr int64_t kParallelMinElements = int64_t{1} << 16;

// Activations are contiguous fp32 [C, T, H, W], the conv kernel's layout (video_activations.h).
using video::channels_of;
using video::contiguous_f32;
using video::frames_of;
using video::height_of;
using video::slice_frames;
using video::width_of;

void relu_in_place(Tensor& x) {
  float* p = x.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) p[i] = std::max(p[i], 0.0f);
}

// x ← ReLU(x + skip)
void add_relu_in_place(Tensor& x, const Tensor& skip) {
  float* p = x.data<float>();
  const float* s = skip.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) p[i] = std::max(p[i] + s[i], 0.0f);
}

// decoder.0: tanh(x / 3) · 3, a soft clamp of the latent (§3.1).
Tensor soft_clamp(const Tensor& x) {
  Tensor out = Tensor::zeros(x.shape());
  const float* in = x.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) o[i] = std::tanh(in[i] / 3.0f) * 3.0f;
  return out;
}

// x[in, n, H, W] -> [out, n, H, W]: the conv on every frame, zero padding k/2.
Tensor conv(const TaehvConv& c, const Tensor& x) {
  FASTAR_ASSERT(channels_of(x) == c.in_channels,
                "TAEHV conv: " << channels_of(x) << " channels in, weight takes " << c.in_channels);
  const cpu::CausalConv3dParams p = c.params(frames_of(x), height_of(x), width_of(x));
  Tensor out = Tensor::zeros({c.out_channels, p.frames, p.height, p.width});
  cpu::causal_conv3d_forward(out.data<float>(), x.data<float>(), /*context=*/nullptr, c.packed.data<float>(),
                             c.bias.defined() ? c.bias.data<float>() : nullptr, p);
  return out;
}

// Upsample ×2 then TGrow(stride) (decoder.6+7, 12+13, 18+19): x[C, n, H, W] -> [C, stride·n, 2H, 2W],
// channel group k of step τ becoming frame stride·τ + k (§3.1). TGrow is a 1×1 conv, so it commutes
// with nearest upsampling; it runs first here, at a quarter of the pixels.
Tensor upsample_tgrow(const TaehvStageWeights& stage, const Tensor& x) {
  const int64_t C = channels_of(x), n = frames_of(x), H = height_of(x), W = width_of(x), hw = H * W;
  const int64_t s = stage.time_stride, frames = s * n;
  const Tensor y = conv(stage.tgrow, x);  // [s·C, n, H, W]
  Tensor grown = Tensor::zeros({C, frames, H, W});
#pragma omp parallel for collapse(2) schedule(static) if (grown.numel() >= kParallelMinElements)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t tau = 0; tau < n; ++tau)
      for (int64_t k = 0; k < s; ++k)
        std::memcpy(grown.data<float>() + (c * frames + s * tau + k) * hw,
                    y.data<float>() + ((k * C + c) * n + tau) * hw, sizeof(float) * hw);
  Tensor out = Tensor::zeros({C, frames, 2 * H, 2 * W});
  cpu::nearest_upsample2x_forward(out.data<float>(), grown.data<float>(), C * frames, H, W);
  return out;
}

void check_latent(const Tensor& latent, int64_t channels, const char* what) {
  video::check_video_latent(latent, channels, "TAEHV decoder", what, what);
}

}  // namespace

int64_t taehv_output_frames(int64_t latents_before, int64_t chunk_latents) {
  const TaehvConfig config;
  const int64_t raw_before = config.time_upscale() * std::max<int64_t>(latents_before, 0);
  const int64_t raw = config.time_upscale() * std::max<int64_t>(chunk_latents, 0);
  const int64_t trimmed = std::clamp<int64_t>(config.frames_to_trim() - raw_before, 0, raw);
  return raw - trimmed;
}

TaehvStream::TaehvStream(std::shared_ptr<const TaehvDecoderWeights> weights, TaehvStreamOptions options)
    : weights_(std::move(weights)), options_(options) {
  FASTAR_CHECK(weights_ != nullptr, "TaehvStream: no weights given");
  FASTAR_CHECK(options_.latents_per_pass >= 0,
               "TaehvStream: latents_per_pass is " << options_.latents_per_pass << "; use 0 (whole chunk) or more");
  FASTAR_CHECK(weights_->config.time_upscale() == 4,
               "TaehvStream: the weights' time strides give " << weights_->config.time_upscale()
                                                              << " frames per latent; the Wan2.1 decoders give 4");
}

void TaehvStream::reset() {
  for (Tensor& s : states_) s = Tensor();
  latents_decoded_ = 0;
  raw_frames_decoded_ = 0;
  latent_height_ = latent_width_ = 0;
}

int64_t TaehvStream::state_bytes() const {
  int64_t bytes = 0;
  for (const Tensor& s : states_)
    if (s.defined()) bytes += s.nbytes();
  return bytes;
}

Tensor TaehvStream::mem_block(const TaehvMemBlockWeights& block, Tensor& state, const Tensor& x) {
  const int64_t C = channels_of(x), n = frames_of(x), hw = height_of(x) * width_of(x);
  if (!state.defined()) state = Tensor::zeros({C, 1, height_of(x), width_of(x)});  // zeros before t = 0
  FASTAR_ASSERT(channels_of(state) == C && height_of(state) == height_of(x) && width_of(state) == width_of(x),
                "TAEHV MemBlock: the state has another size than its input");
  // cat[x, past] on channels: [2C, n, H, W], past = [state, x_0 … x_{n−2}] (§3.3).
  Tensor cat = Tensor::zeros({2 * C, n, height_of(x), width_of(x)});
  float* dst = cat.data<float>();
  const float* src = x.data<float>();
#pragma omp parallel for schedule(static) if (cat.numel() >= kParallelMinElements)
  for (int64_t c = 0; c < C; ++c) {
    std::memcpy(dst + c * n * hw, src + c * n * hw, sizeof(float) * n * hw);
    float* past = dst + (C + c) * n * hw;
    std::memcpy(past, state.data<float>() + c * hw, sizeof(float) * hw);
    std::memcpy(past + hw, src + c * n * hw, sizeof(float) * (n - 1) * hw);
  }
  for (int64_t c = 0; c < C; ++c)  // the state for the next step: this input's last frame
    std::memcpy(state.data<float>() + c * hw, src + (c * n + n - 1) * hw, sizeof(float) * hw);
  Tensor h = conv(block.convs[0], cat);  // [C, n, H, W]
  relu_in_place(h);
  h = conv(block.convs[1], h);
  relu_in_place(h);
  h = conv(block.convs[2], h);
  add_relu_in_place(h, x);  // identity skip (n_in == n_out in every decoder MemBlock)
  return h;
}

Tensor TaehvStream::decode_pass(const Tensor& input) {
  const TaehvDecoderWeights& w = *weights_;
  Tensor x = conv(w.conv_in, soft_clamp(input));  // decoder.0, 1
  relu_in_place(x);                                // decoder.2
  for (size_t s = 0; s < w.stages.size(); ++s) {
    const TaehvStageWeights& stage = w.stages[s];
    for (size_t b = 0; b < stage.blocks.size(); ++b) x = mem_block(stage.blocks[b], states_[3 * s + b], x);
    x = conv(stage.conv, upsample_tgrow(stage, x));
  }
  relu_in_place(x);          // decoder.21
  return conv(w.conv_out, x);  // decoder.22: [3, 4n, 8h, 8w]
}

Tensor TaehvStream::decode_chunk_raw(const Tensor& decoder_input) {
  const TaehvConfig& config = weights_->config;
  check_latent(decoder_input, config.latent_channels, "decoder input");
  if (latents_decoded_ > 0)
    FASTAR_CHECK(decoder_input.size(2) == latent_height_ && decoder_input.size(3) == latent_width_,
                 "TAEHV decoder: this chunk's latent is " << decoder_input.size(2) << "x" << decoder_input.size(3)
                                                          << " but the stream started at " << latent_height_ << "x"
                                                          << latent_width_ << "; call reset() to start a new video");
  latent_height_ = decoder_input.size(2);
  latent_width_ = decoder_input.size(3);
  const Tensor z = contiguous_f32(decoder_input);
  const int64_t T = z.size(1), H = 8 * latent_height_, W = 8 * latent_width_, hw = H * W;
  const int64_t C = config.out_channels, up = config.time_upscale();
  Tensor out = Tensor::zeros({up * T, C, H, W});
  // Latent by latent by default: every layer is per frame except MemBlock, whose state carries the
  // past, so this equals one pass over the chunk and holds one latent's activations at a time.
  const int64_t per_pass = options_.latents_per_pass == 0 ? T : options_.latents_per_pass;
  for (int64_t t = 0; t < T; t += per_pass) {
    const int64_t n = std::min(per_pass, T - t);
    const Tensor raw = decode_pass(n == T ? z : slice_frames(z, t, t + n));  // [C, up·n, H, W]
    const int64_t frames = up * n;
    FASTAR_ASSERT(frames_of(raw) == frames, "TAEHV: " << n << " latents decoded to " << frames_of(raw) << " frames");
#pragma omp parallel for collapse(2) schedule(static) if (raw.numel() >= kParallelMinElements)
    for (int64_t f = 0; f < frames; ++f)  // [C, frames] -> [frames, C]
      for (int64_t c = 0; c < C; ++c)
        std::memcpy(out.data<float>() + ((up * t + f) * C + c) * hw, raw.data<float>() + (c * frames + f) * hw,
                    sizeof(float) * hw);
    latents_decoded_ += n;
    raw_frames_decoded_ += frames;
  }
  return out;
}

Tensor TaehvStream::decode_chunk(const Tensor& latent) {
  const TaehvConfig& config = weights_->config;
  check_latent(latent, config.latent_channels, "normalised latent");
  const Tensor input = weights_->variant == TaehvVariant::LightTae ? denormalise_wan_latent(latent) : latent;
  const int64_t raw_before = raw_frames_decoded_;
  const Tensor raw = decode_chunk_raw(input);  // [4T, 3, H, W]
  const int64_t raw_frames = raw.size(0);
  // The first 3 raw frames of the stream are dropped (§3.2): raw frame 3 is pixel frame 0.
  const int64_t trim = std::clamp<int64_t>(config.frames_to_trim() - raw_before, 0, raw_frames);
  const int64_t frame_numel = raw.numel() / raw_frames;
  Tensor frames = Tensor::zeros({raw_frames - trim, raw.size(1), raw.size(2), raw.size(3)});
  const float* src = raw.data<float>() + trim * frame_numel;
  float* dst = frames.data<float>();
  const int64_t n = frames.numel();
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) dst[i] = std::clamp(src[i], 0.0f, 1.0f);
  return frames;
}

}  // namespace fastar
