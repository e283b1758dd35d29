#include "fastar/model/cuda/wan_vae_decoder_cuda.h"

#include <cublas_v2.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/cudnn_conv.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/wan_vae_ops.h"
#include "fastar/model/video_activations.h"
#include "fastar/kernels/cuda/cuda_check.h"

namespace fastar::cuda {

namespace {

// A 3-tap causal conv's cached input frames (pipeline-spec.md §2.4), and the room every activation
// buffer keeps in front of its data for them.
constexpr int64_t kContextFrames = 2;
// The head conv's 3 output channels, padded with zero weights for cuDNN's tensor-core kernels.
constexpr int64_t kHeadChannels = 8;

// The working buffers allocate() takes in turn (0, 1, 2) and the one holding the low-resolution stages'
// output while the high-resolution passes run.
constexpr int kWorkingBuffers = 3;
constexpr int kStagedBuffer = 3;
// The up block whose residual blocks end the low-resolution stages (2× latent resolution) and whose
// upsample starts the high-resolution ones.
constexpr size_t kSplitBlock = 1;
// Low-resolution passes take this many times latents_per_pass latents: a latent's activations there
// (2 frames at 2h×2w×384 at most) are 8× smaller than at the output resolution (4 frames at 8h×8w×96).
constexpr int64_t kLowResolutionPassFactor = 8;

constexpr const char* kMemoryHint =
    "decode fewer latents per pass (WanVaeStreamOptions::latents_per_pass = 1) or a smaller frame size";

std::shared_ptr<Storage> upload_bytes(const void* host, int64_t bytes) {
  std::shared_ptr<Storage> s = allocate_device(bytes, "the Wan VAE decoder's weights need this much GPU memory");
  FASTAR_CUDA_CHECK(cudaMemcpy(s->data(), host, static_cast<size_t>(bytes), cudaMemcpyHostToDevice));
  return s;
}

// How a checkpoint conv is laid out for cuDNN.
enum class ConvForm {
  Plain,       // [Cout, kt, kh, kw, Cin]
  PaddedOut,   // the same with Cout rounded up to kHeadChannels (zero weights and bias)
  SubPixel,    // a Conv2d 3×3 after nearest ×2, as a 2×2 conv (padding 1) with 4·Cout outputs (see below)
};

// Rows of a 3×3 kernel that land on low-resolution tap t ∈ {0, 1} of the 2×2 sub-pixel kernel for
// output parity a ∈ {0, 1}. Output row 2i + a of upsample-then-conv reads upsampled rows 2i + a − 1 + d
// (d = 0, 1, 2), i.e. low-resolution rows ⌊(2i + a − 1 + d) / 2⌋: for a = 0 rows i − 1 (d = 0) and
// i (d = 1, 2); for a = 1 rows i (d = 0, 1) and i + 1 (d = 2). The 2×2 conv with padding 1 at output
// index o reads rows o − 1 (t = 0) and o (t = 1); parity a is read at o = i + a. Zero padding agrees on
// both sides: upsampled row −1 / 2H is low-resolution row −1 / H.
constexpr int kSubPixelTapFirst[2][2] = {{0, 1}, {0, 2}};  // [a][t]: first d
constexpr int kSubPixelTapLast[2][2] = {{0, 2}, {1, 2}};   // [a][t]: last d

}  // namespace

struct CudaWanVaeStream::DeviceConv {
  const __nv_bfloat16* weight = nullptr;  // [out_channels, kernel_t, kernel_hw, kernel_hw, in_channels]
  const __nv_bfloat16* bias = nullptr;    // [out_channels]
  int64_t in_channels = 0, out_channels = 0;  // as run: padded, or 4·Cout for the sub-pixel form
  int kernel_t = 1, kernel_hw = 1, padding = 0;

  Conv3dParams params(int64_t frames_in, int64_t height, int64_t width) const {
    Conv3dParams p;
    p.frames_in = frames_in;
    p.height = height;
    p.width = width;
    p.in_channels = in_channels;
    p.out_channels = out_channels;
    p.kernel_t = kernel_t;
    p.kernel_hw = kernel_hw;
    p.pad_hw = padding;
    return p;
  }
};

struct CudaWanVaeStream::DeviceResBlock {
  const float* gamma1 = nullptr;  // [in] fp32
  DeviceConv conv1;
  const float* gamma2 = nullptr;  // [out] fp32
  DeviceConv conv2;
  DeviceConv shortcut;  // 1×1×1 when in != out
  bool has_shortcut = false;
};

struct CudaWanVaeStream::DeviceWeights {
  struct UpBlock {
    std::vector<DeviceResBlock> resnets;
    bool has_upsample = false, temporal = false;
    DeviceConv time_conv;       // (3,1,1) C -> 2C
    DeviceConv resample;        // sub-pixel form: 2×2, C -> 4·(C/2)
    int64_t resample_out = 0;   // C/2
  };

  std::vector<std::shared_ptr<Storage>> storage;
  int64_t bytes = 0;
  DeviceConv post_quant, conv_in, conv_out;
  DeviceResBlock mid0, mid1;
  const float* attention_gamma = nullptr;
  DeviceConv to_qkv, proj;
  std::vector<UpBlock> up_blocks;
  const float* norm_out_gamma = nullptr;
  const float* latent_mean = nullptr;  // [16] fp32 (§2.6), nullptr unless z_dim == 16
  const float* latent_std = nullptr;

  const void* keep(const void* host, int64_t size) {
    storage.push_back(upload_bytes(host, size));
    bytes += size;
    return storage.back()->data();
  }
  const float* gamma(const Tensor& g) {
    FASTAR_ASSERT(g.dtype() == DType::F32 && g.is_contiguous(), "Wan VAE gamma must be contiguous fp32");
    return static_cast<const float*>(keep(g.data<float>(), g.nbytes()));
  }
  DeviceConv conv(const VaeConvWeights& c, ConvForm form);
  DeviceResBlock res_block(const VaeResBlockWeights& r) {
    DeviceResBlock d;
    d.gamma1 = gamma(r.norm1_gamma);
    d.conv1 = conv(r.conv1, ConvForm::Plain);
    d.gamma2 = gamma(r.norm2_gamma);
    d.conv2 = conv(r.conv2, ConvForm::Plain);
    d.has_shortcut = r.has_shortcut();
    if (d.has_shortcut) d.shortcut = conv(r.shortcut, ConvForm::Plain);
    return d;
  }
};

CudaWanVaeStream::DeviceConv CudaWanVaeStream::DeviceWeights::conv(const VaeConvWeights& c, ConvForm form) {
  FASTAR_ASSERT(c.weight.dtype() == DType::F32 && c.weight.is_contiguous() && c.kernel_h == c.kernel_w,
                "Wan VAE conv weight must be contiguous fp32 with a square kernel");
  const int64_t Ci = c.in_channels, Co = c.out_channels, kt = c.kernel_t, k = c.kernel_h;
  const float* W = c.weight.data<float>();  // [Co, Ci, kt, k, k] (a Conv2d is kt = 1)
  const float* B = c.bias.data<float>();
  DeviceConv d;
  d.in_channels = Ci;
  std::vector<float> w, b;
  if (form == ConvForm::SubPixel) {
    FASTAR_ASSERT(kt == 1 && k == 3, "the sub-pixel form is for the resample's 3x3 Conv2d");
    d.out_channels = 4 * Co;
    d.kernel_t = 1;
    d.kernel_hw = 2;
    d.padding = 1;
    w.assign(static_cast<size_t>(4 * Co * 4 * Ci), 0.0f);  // [(2a + b)·Co + o, ty, tx, i]
    b.resize(static_cast<size_t>(4 * Co));
    for (int a = 0; a < 2; ++a)
      for (int bb = 0; bb < 2; ++bb)
        for (int64_t o = 0; o < Co; ++o) {
          const int64_t row = (2 * a + bb) * Co + o;
          b[static_cast<size_t>(row)] = B[o];
          for (int ty = 0; ty < 2; ++ty)
            for (int tx = 0; tx < 2; ++tx)
              for (int64_t i = 0; i < Ci; ++i) {
                double sum = 0;
                for (int dy = kSubPixelTapFirst[a][ty]; dy <= kSubPixelTapLast[a][ty]; ++dy)
                  for (int dx = kSubPixelTapFirst[bb][tx]; dx <= kSubPixelTapLast[bb][tx]; ++dx)
                    sum += W[((o * Ci + i) * 3 + dy) * 3 + dx];
                w[static_cast<size_t>(((row * 2 + ty) * 2 + tx) * Ci + i)] = static_cast<float>(sum);
              }
        }
  } else {
    d.out_channels = form == ConvForm::PaddedOut ? (Co + kHeadChannels - 1) / kHeadChannels * kHeadChannels : Co;
    d.kernel_t = static_cast<int>(kt);
    d.kernel_hw = static_cast<int>(k);
    d.padding = static_cast<int>(k / 2);
    const int64_t taps = kt * k * k;
    w.assign(static_cast<size_t>(d.out_channels * taps * Ci), 0.0f);  // [o, tap, i]
    b.assign(static_cast<size_t>(d.out_channels), 0.0f);
    for (int64_t o = 0; o < Co; ++o) {
      b[static_cast<size_t>(o)] = B[o];
      for (int64_t i = 0; i < Ci; ++i)
        for (int64_t tap = 0; tap < taps; ++tap)
          w[static_cast<size_t>((o * taps + tap) * Ci + i)] = W[(o * Ci + i) * taps + tap];
    }
  }
  std::vector<uint16_t> wb(w.size()), bb(b.size());
  for (size_t i = 0; i < w.size(); ++i) wb[i] = f32_to_bf16(w[i]);
  for (size_t i = 0; i < b.size(); ++i) bb[i] = f32_to_bf16(b[i]);
  d.weight = static_cast<const __nv_bfloat16*>(keep(wb.data(), static_cast<int64_t>(wb.size() * 2)));
  d.bias = static_cast<const __nv_bfloat16*>(keep(bb.data(), static_cast<int64_t>(bb.size() * 2)));
  return d;
}

CudaWanVaeStream::CudaWanVaeStream(std::shared_ptr<const WanVaeDecoderWeights> weights, cudaStream_t stream,
                                   WanVaeStreamOptions options)
    : host_weights_(std::move(weights)), stream_(stream), options_(options) {
  FASTAR_CHECK(host_weights_ != nullptr, "CudaWanVaeStream: no weights given");
  FASTAR_CHECK(options_.latents_per_pass >= 0, "CudaWanVaeStream: latents_per_pass is "
                                                   << options_.latents_per_pass << "; use 0 (whole chunk) or more");
  const WanVaeDecoderWeights& hw = *host_weights_;
  FASTAR_CHECK(hw.config.out_channels <= kHeadChannels && hw.config.out_channels >= 3,
               "CudaWanVaeStream: the decoder has " << hw.config.out_channels << " output channels; 3 (RGB) expected");
  runner_ = std::make_unique<ConvRunner>(stream_);  // throws first when the build has no cuDNN
  const cublasStatus_t created = cublasCreate(&cublas_);
  FASTAR_CHECK(created == CUBLAS_STATUS_SUCCESS, "CudaWanVaeStream: cublasCreate failed: " << cublasGetStatusName(created));

  w_ = std::make_unique<DeviceWeights>();
  DeviceWeights& d = *w_;
  d.post_quant = d.conv(hw.post_quant_conv, ConvForm::Plain);
  d.conv_in = d.conv(hw.conv_in, ConvForm::Plain);
  d.mid0 = d.res_block(hw.mid_res0);
  d.attention_gamma = d.gamma(hw.mid_attention.norm_gamma);
  d.to_qkv = d.conv(hw.mid_attention.to_qkv, ConvForm::Plain);
  d.proj = d.conv(hw.mid_attention.proj, ConvForm::Plain);
  d.mid1 = d.res_block(hw.mid_res1);
  d.up_blocks.resize(hw.up_blocks.size());
  for (size_t i = 0; i < hw.up_blocks.size(); ++i) {
    const VaeUpBlockWeights& src = hw.up_blocks[i];
    DeviceWeights::UpBlock& dst = d.up_blocks[i];
    for (const VaeResBlockWeights& r : src.resnets) dst.resnets.push_back(d.res_block(r));
    dst.has_upsample = src.has_upsample;
    if (!src.has_upsample) continue;
    dst.temporal = src.upsample.temporal;
    if (dst.temporal) dst.time_conv = d.conv(src.upsample.time_conv, ConvForm::Plain);
    dst.resample = d.conv(src.upsample.resample, ConvForm::SubPixel);
    dst.resample_out = src.upsample.resample.out_channels;
  }
  d.norm_out_gamma = d.gamma(hw.norm_out_gamma);
  d.conv_out = d.conv(hw.conv_out, ConvForm::PaddedOut);
  if (hw.config.z_dim == static_cast<int64_t>(kWanLatentMean.size())) {
    d.latent_mean = static_cast<const float*>(d.keep(kWanLatentMean.data(), sizeof(float) * kWanLatentMean.size()));
    d.latent_std = static_cast<const float*>(d.keep(kWanLatentStd.data(), sizeof(float) * kWanLatentStd.size()));
  }
  FASTAR_CHECK(d.up_blocks.size() > kSplitBlock + 1 && d.up_blocks[kSplitBlock].has_upsample,
               "CudaWanVaeStream: the decoder has " << d.up_blocks.size() << " up blocks; the Wan2.1 layout has 4");
  time_upsample_started_.assign(d.up_blocks.size(), false);
  weight_bytes_ = d.bytes;
  // The uploads above are from pageable memory: their last DMA may still run when cudaMemcpy returns,
  // and a non-blocking stream would not wait for it.
  FASTAR_CUDA_CHECK(cudaDeviceSynchronize());
}

CudaWanVaeStream::~CudaWanVaeStream() {
  cudaStreamSynchronize(stream_);  // queued kernels may still read the buffers freed below
  if (cublas_) cublasDestroy(cublas_);
}

void CudaWanVaeStream::reset() {
  FASTAR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  caches_.clear();
  time_upsample_started_.assign(time_upsample_started_.size(), false);
  latents_decoded_ = 0;
  frames_decoded_ = 0;
  latent_height_ = latent_width_ = 0;
}

int64_t CudaWanVaeStream::cache_bytes() const {
  int64_t bytes = 0;
  for (const auto& [conv, cache] : caches_) bytes += cache.bytes;
  return bytes;
}

int64_t CudaWanVaeStream::working_bytes() const {
  int64_t bytes = scores_.bytes + latent_f32_.bytes + latent_bf16_.bytes + runner_->workspace_bytes();  // + buffers
  for (const Buffer& b : buffers_) bytes += b.bytes;
  return bytes;
}

void CudaWanVaeStream::ensure(Buffer& buffer, int64_t bytes, const char* what) {
  if (buffer.bytes >= bytes) return;
  // What the buffer held is dead, but queued kernels may still be reading it.
  FASTAR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  buffer.storage.reset();
  buffer.bytes = 0;
  buffer.storage = allocate_device(bytes, std::string("Wan VAE decoder ") + what + ": " + kMemoryHint);
  buffer.bytes = bytes;
  peak_working_bytes_ = std::max(peak_working_bytes_, working_bytes());
}

__nv_bfloat16* CudaWanVaeStream::data(const Activation& a) const {
  return static_cast<__nv_bfloat16*>(buffers_[a.buffer].storage->data()) +
         (kContextFrames + a.first_frame) * a.frame_elements();
}

CudaWanVaeStream::Activation CudaWanVaeStream::allocate(int64_t frames, int64_t height, int64_t width,
                                                        int64_t channels, std::initializer_list<int> busy) {
  int index = 0;
  while (std::find(busy.begin(), busy.end(), index) != busy.end()) ++index;
  FASTAR_ASSERT(index < kWorkingBuffers, "Wan VAE decoder: no free activation buffer");
  Activation a{index, frames, height, width, channels, 0};
  ensure(buffers_[index], (kContextFrames + frames) * a.frame_elements() * 2, "activations");
  return a;
}

CudaWanVaeStream::Activation CudaWanVaeStream::rms_norm(const Activation& x, const float* gamma, bool silu,
                                                        std::initializer_list<int> busy) {
  Activation out = allocate(x.frames, x.height, x.width, x.channels, busy);
  channel_rms_norm_bf16(data(out), data(x), gamma, x.frames * x.height * x.width, x.channels, silu, stream_);
  return out;
}

CudaWanVaeStream::Activation CudaWanVaeStream::conv_per_frame(const DeviceConv& c, const Activation& x,
                                                              const __nv_bfloat16* residual,
                                                              std::initializer_list<int> busy) {
  FASTAR_ASSERT(c.kernel_t == 1 && x.channels == c.in_channels, "Wan VAE: per-frame conv on the wrong input");
  const Conv3dParams p = c.params(x.frames, x.height, x.width);
  Activation out = allocate(x.frames, p.height_out(), p.width_out(), c.out_channels, busy);
  runner_->forward(p, data(x), c.weight, c.bias, residual, data(out));
  return out;
}

CudaWanVaeStream::Activation CudaWanVaeStream::causal_conv(const DeviceConv& c, __nv_bfloat16* input, int64_t frames,
                                                           int64_t height, int64_t width,
                                                           const __nv_bfloat16* residual,
                                                           std::initializer_list<int> busy) {
  FASTAR_ASSERT(c.kernel_t == 3, "Wan VAE: causal conv without a 3-tap kernel");
  const int64_t frame = height * width * c.in_channels;
  const size_t context_bytes = static_cast<size_t>(kContextFrames * frame) * 2;
  Buffer& cache = caches_[&c];
  if (!cache.storage) {  // zero frames before the stream's first frame (§2.4)
    cache.storage = allocate_device(static_cast<int64_t>(context_bytes), std::string("Wan VAE cache: ") + kMemoryHint);
    cache.bytes = static_cast<int64_t>(context_bytes);
    FASTAR_CUDA_CHECK(cudaMemsetAsync(cache.storage->data(), 0, context_bytes, stream_));
  }
  FASTAR_ASSERT(cache.bytes == static_cast<int64_t>(context_bytes), "Wan VAE: cached context of another size");
  __nv_bfloat16* with_context = input - kContextFrames * frame;  // [2 + frames, H, W, Cin]
  FASTAR_CUDA_CHECK(
      cudaMemcpyAsync(with_context, cache.storage->data(), context_bytes, cudaMemcpyDeviceToDevice, stream_));
  Activation out = allocate(frames, height, width, c.out_channels, busy);
  runner_->forward(c.params(kContextFrames + frames, height, width), with_context, c.weight, c.bias, residual,
                   data(out));
  // The next chunk's context: the last 2 frames of [context, input] (§2.5).
  FASTAR_CUDA_CHECK(cudaMemcpyAsync(cache.storage->data(), with_context + frames * frame, context_bytes,
                                        cudaMemcpyDeviceToDevice, stream_));
  return out;
}

CudaWanVaeStream::Activation CudaWanVaeStream::res_block(const DeviceResBlock& r, const Activation& x) {
  // h = shortcut(x) or x; RMS → SiLU → conv1 → RMS → SiLU → conv2, + h (§2.2).
  const Activation h = r.has_shortcut ? conv_per_frame(r.shortcut, x, nullptr, {x.buffer}) : x;
  const Activation s1 = rms_norm(x, r.gamma1, true, {x.buffer, h.buffer});
  const Activation y = causal_conv(r.conv1, data(s1), s1.frames, s1.height, s1.width, nullptr, {s1.buffer, h.buffer});
  const Activation s2 = rms_norm(y, r.gamma2, true, {y.buffer, h.buffer});
  return causal_conv(r.conv2, data(s2), s2.frames, s2.height, s2.width, data(h), {s2.buffer, h.buffer});
}

CudaWanVaeStream::Activation CudaWanVaeStream::attention(const Activation& x) {
  const DeviceWeights& d = *w_;
  const int64_t C = x.channels, tokens = x.height * x.width;
  const Activation normed = rms_norm(x, d.attention_gamma, false, {x.buffer});
  const Activation qkv = conv_per_frame(d.to_qkv, normed, nullptr, {normed.buffer, x.buffer});  // [T, H, W, 3C]
  const Activation attended = allocate(x.frames, x.height, x.width, C, {qkv.buffer, x.buffer});
  ensure(scores_, tokens * tokens * static_cast<int64_t>(sizeof(float)), "attention scores");
  for (int64_t t = 0; t < x.frames; ++t)  // per frame, over its h·w pixels (§2.2)
    frame_attention_bf16(cublas_, data(attended) + t * tokens * C, data(qkv) + t * tokens * 3 * C,
                         static_cast<float*>(scores_.storage->data()), C, tokens, stream_);
  return conv_per_frame(d.proj, attended, data(x), {attended.buffer, x.buffer});
}

CudaWanVaeStream::Activation CudaWanVaeStream::upsample(size_t block, const Activation& x) {
  const DeviceWeights::UpBlock& up = w_->up_blocks[block];
  Activation frames = x;
  if (up.temporal) {
    // The 'Rep' rule (§2.4): the stream's first frame bypasses time_conv and never enters its history.
    const bool bypass = !time_upsample_started_[block] && options_.first_latent == WanVaeFirstLatent::Bypass;
    time_upsample_started_[block] = true;
    const int64_t passed = bypass ? 1 : 0, convolved = x.frames - passed;
    const int64_t frame = x.frame_elements();
    frames = allocate(passed + 2 * convolved, x.height, x.width, x.channels, {x.buffer});
    if (passed)
      FASTAR_CUDA_CHECK(
          cudaMemcpyAsync(data(frames), data(x), static_cast<size_t>(frame) * 2, cudaMemcpyDeviceToDevice, stream_));
    if (convolved > 0) {
      // x[passed:] with its context written in front (over x[0] when it was passed: copied already).
      const Activation y = causal_conv(up.time_conv, data(x) + passed * frame, convolved, x.height, x.width, nullptr,
                                       {x.buffer, frames.buffer});  // [convolved, H, W, 2C]
      interleave_time_conv_bf16(data(frames) + passed * frame, data(y), convolved, x.height * x.width, x.channels,
                                stream_);
    }
  }
  // Nearest ×2 + 3×3 conv as the sub-pixel 2×2 conv, then the shuffle to [T, 2H, 2W, C/2].
  const Activation phases = conv_per_frame(up.resample, frames, nullptr, {frames.buffer});
  const Activation out = allocate(frames.frames, 2 * frames.height, 2 * frames.width, up.resample_out, {phases.buffer});
  pixel_shuffle_subpixel_bf16(data(out), data(phases), frames.frames, frames.height, frames.width, up.resample_out,
                              stream_);
  return out;
}

CudaWanVaeStream::Activation CudaWanVaeStream::decode_low_resolution(const __nv_bfloat16* z, int64_t n) {
  const DeviceWeights& d = *w_;
  // conv2 (pointwise) reads the latent where it is; every later conv reads a working buffer.
  const Conv3dParams pq = d.post_quant.params(n, latent_height_, latent_width_);
  Activation x = allocate(n, latent_height_, latent_width_, d.post_quant.out_channels, {});
  runner_->forward(pq, z, d.post_quant.weight, d.post_quant.bias, nullptr, data(x));
  x = causal_conv(d.conv_in, data(x), x.frames, x.height, x.width, nullptr, {x.buffer});
  x = res_block(d.mid0, x);
  x = attention(x);
  x = res_block(d.mid1, x);
  for (size_t i = 0; i <= kSplitBlock; ++i) {
    for (const DeviceResBlock& r : d.up_blocks[i].resnets) x = res_block(r, x);
    if (i < kSplitBlock && d.up_blocks[i].has_upsample) x = upsample(i, x);
  }
  return x;
}

CudaWanVaeStream::Activation CudaWanVaeStream::decode_high_resolution(const Activation& staged) {
  const DeviceWeights& d = *w_;
  Activation x = upsample(kSplitBlock, staged);
  for (size_t i = kSplitBlock + 1; i < d.up_blocks.size(); ++i) {
    for (const DeviceResBlock& r : d.up_blocks[i].resnets) x = res_block(r, x);
    if (d.up_blocks[i].has_upsample) x = upsample(i, x);
  }
  const Activation s = rms_norm(x, d.norm_out_gamma, true, {x.buffer});
  return causal_conv(d.conv_out, data(s), s.frames, s.height, s.width, nullptr, {s.buffer});  // [T', H, W, 8]
}

void CudaWanVaeStream::decode_into(const Tensor& latent, bool denormalise, FrameSink& sink) {
  const int64_t Z = host_weights_->config.z_dim;
  const int64_t T = latent.size(1), hw = latent_height_ * latent_width_;
  const void* source = nullptr;
  DType dtype = latent.dtype();
  if (latent.device() == Device::CPU) {
    const Tensor host = video::contiguous_f32(latent);
    ensure(latent_f32_, host.nbytes(), "latent upload");
    FASTAR_CUDA_CHECK(cudaMemcpyAsync(latent_f32_.storage->data(), host.raw_data(),
                                          static_cast<size_t>(host.nbytes()), cudaMemcpyHostToDevice, stream_));
    source = latent_f32_.storage->data();
    dtype = DType::F32;
  } else {
    FASTAR_CHECK(latent.is_contiguous() && (dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16),
                 "Wan VAE (CUDA): a device latent must be contiguous F32, BF16 or F16; it is " << latent.describe());
    source = latent.raw_data();
  }
  ensure(latent_bf16_, T * hw * Z * 2, "latent");
  auto* z = static_cast<__nv_bfloat16*>(latent_bf16_.storage->data());
  latent_to_channels_last(z, source, dtype, denormalise ? w_->latent_mean : nullptr,
                          denormalise ? w_->latent_std : nullptr, Z, T, hw, stream_);

  const int64_t H = 8 * latent_height_, W = 8 * latent_width_;
  const bool bypass = options_.first_latent == WanVaeFirstLatent::Bypass;
  const int64_t high_pass = options_.latents_per_pass == 0 ? T : options_.latents_per_pass;
  const int64_t low_pass = options_.latents_per_pass == 0 ? T : kLowResolutionPassFactor * options_.latents_per_pass;
  for (int64_t t = 0; t < T; t += low_pass) {
    const int64_t n = std::min(low_pass, T - t);
    const int64_t before = latents_decoded_;
    // Frames at the split (2× latent resolution) of `count` latents after `latents_before`: 2 each, the
    // stream's first one 1 under the 'Rep' rule (it bypassed up_blocks[0]'s time_conv).
    auto split_frames = [&](int64_t latents_before, int64_t count) {
      return latents_before == 0 && bypass ? 2 * count - 1 : 2 * count;
    };
    const Activation low = decode_low_resolution(z + t * hw * Z, n);
    FASTAR_ASSERT(low.frames == split_frames(before, n), "Wan VAE (CUDA): " << n << " latents gave " << low.frames
                                                                            << " frames at the split");
    // Keep it where the high-resolution passes leave it alone (with the room for time_conv's context).
    const int64_t frame = low.frame_elements();
    ensure(buffers_[kStagedBuffer], (kContextFrames + low.frames) * frame * 2, "staged activations");
    Activation staged{kStagedBuffer, low.frames, low.height, low.width, low.channels, 0};
    FASTAR_CUDA_CHECK(cudaMemcpyAsync(data(staged), data(low), static_cast<size_t>(low.frames * frame) * 2,
                                          cudaMemcpyDeviceToDevice, stream_));
    int64_t first_frame = 0;
    for (int64_t g = 0; g < n; g += high_pass) {
      const int64_t m = std::min(high_pass, n - g);
      Activation group = staged;
      group.first_frame = first_frame;
      group.frames = split_frames(before + g, m);
      first_frame += group.frames;
      const int64_t expected = wan_vae_output_frames(before + g, m, options_.first_latent);
      const Activation out = decode_high_resolution(group);
      FASTAR_ASSERT(out.frames == expected && out.height == H && out.width == W,
                    "Wan VAE (CUDA): " << m << " latents decoded to " << out.frames << " frames of " << out.height
                                       << "x" << out.width);
      if (sink.rgb8)
        frames_to_rgb8(sink.rgb8 + sink.written * H * W * 3, data(out), out.frames, H * W, out.channels, stream_);
      else
        frames_to_f32_planar(sink.planar, data(out), out.frames, H * W, out.channels, sink.written,
                             sink.total_frames, stream_);
      sink.written += out.frames;
      frames_decoded_ += out.frames;
      peak_working_bytes_ = std::max(peak_working_bytes_, working_bytes());
    }
    FASTAR_ASSERT(first_frame == staged.frames, "Wan VAE (CUDA): the high-resolution passes took "
                                                    << first_frame << " of " << staged.frames << " frames");
    latents_decoded_ += n;
  }
  FASTAR_ASSERT(sink.written == sink.total_frames, "Wan VAE (CUDA): wrote " << sink.written << " of "
                                                                            << sink.total_frames << " frames");
}

namespace {

// The latent's shape against the stream's (every chunk of one video has the same h, w).
void check_chunk(const Tensor& latent, int64_t z_dim, const char* what, int64_t latents_decoded, int64_t height,
                 int64_t width) {
  video::check_video_latent(latent, z_dim, "Wan VAE (CUDA)", std::string(what) + " latent", "latent");
  if (latents_decoded > 0)
    FASTAR_CHECK(latent.size(2) == height && latent.size(3) == width,
                 "Wan VAE (CUDA): this chunk's latent is " << latent.size(2) << "x" << latent.size(3)
                                                          << " but the stream started at " << height << "x" << width
                                                          << "; call reset() to start a new video");
}

}  // namespace

Tensor CudaWanVaeStream::decode_chunk(const Tensor& latent) {
  FASTAR_CHECK(w_->latent_mean != nullptr,
               "Wan VAE (CUDA): the weights take " << host_weights_->config.z_dim
                                                   << " latent channels; the Wan2.1 latent statistics are for 16");
  check_chunk(latent, host_weights_->config.z_dim, "normalised", latents_decoded_, latent_height_, latent_width_);
  latent_height_ = latent.size(2);
  latent_width_ = latent.size(3);
  const int64_t T = wan_vae_output_frames(latents_decoded_, latent.size(1), options_.first_latent);
  const int64_t H = 8 * latent_height_, W = 8 * latent_width_, bytes = T * H * W * 3;
  if (!rgb_out_ || rgb_out_.use_count() > 1 || rgb_out_->nbytes() < bytes) {
    rgb_out_.reset();
    rgb_out_ = allocate_device(bytes, std::string("Wan VAE decoded frames: ") + kMemoryHint);
  }
  FrameSink sink;
  sink.rgb8 = static_cast<uint8_t*>(rgb_out_->data());
  sink.total_frames = T;
  decode_into(latent, /*denormalise=*/true, sink);
  return Tensor::from_storage(rgb_out_, 0, {T, H, W, 3}, DType::U8);
}

Tensor CudaWanVaeStream::decode_chunk_unclamped(const Tensor& latent) {
  check_chunk(latent, host_weights_->config.z_dim, "denormalised", latents_decoded_, latent_height_, latent_width_);
  latent_height_ = latent.size(2);
  latent_width_ = latent.size(3);
  const int64_t T = wan_vae_output_frames(latents_decoded_, latent.size(1), options_.first_latent);
  const int64_t H = 8 * latent_height_, W = 8 * latent_width_;
  Tensor out = Tensor::zeros({3, T, H, W});
  ensure(planar_out_, out.nbytes(), "decoded frames");
  FrameSink sink;
  sink.planar = static_cast<float*>(planar_out_.storage->data());
  sink.total_frames = T;
  decode_into(latent, /*denormalise=*/false, sink);
  FASTAR_CUDA_CHECK(cudaMemcpyAsync(out.raw_data(), planar_out_.storage->data(), static_cast<size_t>(out.nbytes()),
                                        cudaMemcpyDeviceToHost, stream_));
  FASTAR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return out;
}

}  // namespace fastar::cuda
