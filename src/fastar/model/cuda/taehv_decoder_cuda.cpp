#include "fastar/model/cuda/taehv_decoder_cuda.h"

#include <algorithm>
#include <utility>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/cudnn_conv.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/taehv_ops.h"
#include "fastar/model/video_activations.h"
#include "fastar/model/wan_vae_decoder.h"  // kWanLatentMean / kWanLatentStd (pipeline-spec.md §2.6)
#include "fastar/kernels/cuda/cuda_check.h"

namespace fastar::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr const char* kMemoryHint =
    "decode fewer latents per pass (TaehvStreamOptions::latents_per_pass = 1) or a smaller frame size";
constexpr int64_t kChannelAlign = 8;  // channels-last bf16: 16-byte pixels for cuDNN's tensor cores and our kernels

int64_t pad_channels(int64_t c) { return (c + kChannelAlign - 1) / kChannelAlign * kChannelAlign; }

// Where channel i of a layer lands once padded: the channels come in groups of `group` (a conv's one
// group, MemBlock's [x, past], TGrow's frames), each group starting at a multiple of `padded_group`.
struct ChannelMap {
  int64_t count = 0;         // real channels
  int64_t group = 0;         // real channels per group
  int64_t padded_group = 0;  // padded channels per group
  int64_t padded() const { return count / group * padded_group; }
  int64_t operator()(int64_t i) const { return i / group * padded_group + i % group; }
};

ChannelMap plain_channels(int64_t count) { return {count, count, pad_channels(count)}; }
ChannelMap grouped_channels(int64_t groups, int64_t per_group) {
  return {groups * per_group, per_group, pad_channels(per_group)};
}

}  // namespace

// ---- buffers -----------------------------------------------------------------------------------

void* CudaTaehvStream::Buffer::ensure(int64_t needed, cudaStream_t stream) {
  if (bytes < needed) {
    // The stream's queued work may still use the old buffer; its contents are not needed after that.
    FASTAR_CUDA_CHECK(cudaStreamSynchronize(stream));
    storage.reset();  // free first: the peak stays lower
    storage = allocate_device(needed, kMemoryHint);
    bytes = needed;
  }
  return storage->data();
}

// ---- weights -----------------------------------------------------------------------------------

namespace {

// PyTorch [out, in, k, k] fp32 -> bf16 [out_p, 1, k, k, in_p] on the device (the padded rows and
// columns zero), bias [out] -> bf16 [out_p].
struct UploadedConv {
  Tensor weight, bias;
};

UploadedConv upload_conv(const TaehvConv& c, const ChannelMap& out_map, const ChannelMap& in_map, const char* name) {
  const Tensor w = video::contiguous_f32(c.weight);
  const int64_t k = c.kernel;
  FASTAR_CHECK(w.dim() == 4 && w.size(0) == out_map.count && w.size(1) == in_map.count && w.size(2) == k &&
                   w.size(3) == k,
               "CUDA TAEHV decoder: " << name << " weight is " << w.describe() << ", expected [" << out_map.count << ", "
                                      << in_map.count << ", " << k << ", " << k << "]");
  const int64_t out_p = out_map.padded(), in_p = in_map.padded();
  Tensor packed = Tensor::zeros({out_p, 1, k, k, in_p});
  const float* src = w.data<float>();
  float* dst = packed.data<float>();
  for (int64_t o = 0; o < out_map.count; ++o)
    for (int64_t i = 0; i < in_map.count; ++i)
      for (int64_t y = 0; y < k; ++y)
        for (int64_t x = 0; x < k; ++x)
          dst[((out_map(o) * k + y) * k + x) * in_p + in_map(i)] = src[((o * in_map.count + i) * k + y) * k + x];
  UploadedConv u;
  u.weight = to_device(packed.to_dtype(DType::BF16));
  if (c.bias.defined()) {
    const Tensor b = video::contiguous_f32(c.bias);
    FASTAR_CHECK(b.numel() == out_map.count, "CUDA TAEHV decoder: " << name << " bias is " << b.describe());
    Tensor padded = Tensor::zeros({out_p});
    for (int64_t o = 0; o < out_map.count; ++o) padded.data<float>()[out_map(o)] = b.data<float>()[o];
    u.bias = to_device(padded.to_dtype(DType::BF16));
  }
  return u;
}

}  // namespace

CudaTaehvStream::CudaTaehvStream(std::shared_ptr<const TaehvDecoderWeights> weights, cudaStream_t stream,
                                 TaehvStreamOptions options)
    : weights_(std::move(weights)), stream_(stream), options_(options) {
  FASTAR_CHECK(weights_ != nullptr, "CudaTaehvStream: no weights given");
  FASTAR_CHECK(options_.latents_per_pass >= 0, "CudaTaehvStream: latents_per_pass is "
                                                   << options_.latents_per_pass << "; use 0 (whole chunk) or more");
  const TaehvDecoderWeights& w = *weights_;
  const TaehvConfig& config = w.config;
  FASTAR_CHECK(config.time_upscale() == 4, "CudaTaehvStream: the weights' time strides give "
                                               << config.time_upscale() << " frames per latent; the Wan2.1 decoders give 4");
  runner_ = std::make_unique<ConvRunner>(stream_);

  auto make = [&](const TaehvConv& c, const ChannelMap& out_map, const ChannelMap& in_map, const char* name) {
    UploadedConv u = upload_conv(c, out_map, in_map, name);
    DeviceConv d;
    d.weight = u.weight;
    d.bias = u.bias;
    d.in_channels = in_map.padded();
    d.out_channels = out_map.padded();
    d.kernel = static_cast<int>(c.kernel);
    weight_bytes_ += d.weight.nbytes() + (d.bias.defined() ? d.bias.nbytes() : 0);
    return d;
  };
  const auto& widths = config.widths;
  in_channels_ = pad_channels(config.latent_channels);
  out_channels_ = pad_channels(config.out_channels);
  conv_in_ = make(w.conv_in, plain_channels(widths[0]), plain_channels(config.latent_channels), "decoder.1");
  for (size_t s = 0; s < stages_.size(); ++s) {
    const TaehvStageWeights& hs = w.stages[s];
    DeviceStage& ds = stages_[s];
    const int64_t C = widths[s];
    ds.channels = pad_channels(C);
    ds.time_stride = hs.time_stride;
    FASTAR_CHECK(hs.time_stride == config.time_strides[s], "CudaTaehvStream: stage " << s << " has time stride "
                                                                                    << hs.time_stride);
    for (size_t b = 0; b < 3; ++b) {
      ds.blocks[b][0] = make(hs.blocks[b].convs[0], plain_channels(C), grouped_channels(2, C), "MemBlock conv.0");
      ds.blocks[b][1] = make(hs.blocks[b].convs[1], plain_channels(C), plain_channels(C), "MemBlock conv.2");
      ds.blocks[b][2] = make(hs.blocks[b].convs[2], plain_channels(C), plain_channels(C), "MemBlock conv.4");
    }
    ds.tgrow = make(hs.tgrow, grouped_channels(hs.time_stride, C), plain_channels(C), "TGrow");
    ds.conv = make(hs.conv, plain_channels(widths[s + 1]), plain_channels(C), "stage conv");
    if (s + 1 == stages_.size() && !ds.conv.bias.defined()) {
      // decoder.20 has no bias but is followed by decoder.21's ReLU; cuDNN fuses an activation only
      // together with a bias, so it gets a zero one (exact) instead of a separate epilogue pass.
      ds.conv.bias = to_device(Tensor::zeros({ds.conv.out_channels}, DType::BF16));
      weight_bytes_ += ds.conv.bias.nbytes();
    }
  }
  conv_out_ = make(w.conv_out, plain_channels(config.out_channels), plain_channels(widths[3]), "decoder.22");
}

CudaTaehvStream::~CudaTaehvStream() = default;

// ---- stream state ------------------------------------------------------------------------------

void CudaTaehvStream::reset() {
  started_ = false;
  latents_decoded_ = 0;
  raw_frames_decoded_ = 0;
  latent_height_ = latent_width_ = 0;
}

int64_t CudaTaehvStream::state_bytes() const {
  if (!started_) return 0;
  int64_t elements = 0, pixels = latent_height_ * latent_width_;
  for (const DeviceStage& s : stages_) {
    elements += 3 * pixels * s.channels;
    pixels *= 4;
  }
  return elements * static_cast<int64_t>(sizeof(bf16));
}

int64_t CudaTaehvStream::device_bytes() const {
  int64_t bytes = weight_bytes_ + runner_->workspace_bytes() + (rgb_ ? rgb_->nbytes() : 0);
  for (const Buffer* b : {&latent_f32_, &input_, &ping_, &pong_, &wide_, &raw_, &planar_, &state_}) bytes += b->bytes;
  return bytes;
}

std::string CudaTaehvStream::describe_convolutions() const { return runner_->describe_plans(); }

// ---- forward -----------------------------------------------------------------------------------

void CudaTaehvStream::conv(const DeviceConv& c, const bf16* in, int64_t frames, int64_t height, int64_t width, bf16* out,
                           bool relu, const bf16* residual) {
  Conv3dParams p;
  p.frames_in = frames;
  p.height = height;
  p.width = width;
  p.in_channels = c.in_channels;
  p.out_channels = c.out_channels;
  p.kernel_t = 1;  // every TAEHV conv is per frame (§3.1)
  p.kernel_hw = c.kernel;
  p.activation = relu ? ConvActivation::Relu : ConvActivation::None;
  runner_->forward(p, in, c.weight.data<bf16>(), c.bias.defined() ? c.bias.data<bf16>() : nullptr, residual, out);
}

void CudaTaehvStream::decode_pass(const bf16* input, int64_t n, bf16* raw) {
  const int64_t h = latent_height_, w = latent_width_;
  // Sizes of this pass: activations (ping/pong) and the 2C-wide MemBlock cat / TGrow output (wide).
  int64_t act = n * h * w * conv_in_.out_channels, wide = 0;
  {
    int64_t f = n, pixels = h * w;
    for (size_t s = 0; s < stages_.size(); ++s) {
      const DeviceStage& st = stages_[s];
      act = std::max(act, f * pixels * st.channels);
      wide = std::max({wide, 2 * f * pixels * st.channels, f * pixels * st.time_stride * st.channels});
      f *= st.time_stride;
      pixels *= 4;
      act = std::max({act, f * pixels * st.channels, f * pixels * st.conv.out_channels});
    }
  }
  const int64_t e = sizeof(bf16);
  bf16* x = static_cast<bf16*>(ping_.ensure(act * e, stream_));
  bf16* other = static_cast<bf16*>(pong_.ensure(act * e, stream_));
  bf16* cat = static_cast<bf16*>(wide_.ensure(wide * e, stream_));
  bf16* state = static_cast<bf16*>(state_.storage->data());

  int64_t f = n, H = h, W = w;
  conv(conv_in_, input, f, H, W, x, /*relu=*/true);  // decoder.1, 2
  for (size_t s = 0; s < stages_.size(); ++s) {
    const DeviceStage& st = stages_[s];
    const int64_t C = st.channels, P = H * W;
    for (size_t b = 0; b < 3; ++b) {  // MemBlocks: ReLU(conv3(ReLU(conv2(ReLU(conv1(cat[x, past]))))) + x)
      bf16* slot = state + state_offsets_[3 * s + b];
      taehv_memblock_concat(cat, x, slot, f, P, C, stream_);  // [f, P, 2C]
      FASTAR_CUDA_CHECK(cudaMemcpyAsync(slot, x + (f - 1) * P * C, static_cast<size_t>(P * C * e),
                                           cudaMemcpyDeviceToDevice, stream_));  // state ← the last input frame
      conv(st.blocks[b][0], cat, f, H, W, other, true);
      conv(st.blocks[b][1], other, f, H, W, cat, true);
      conv(st.blocks[b][2], cat, f, H, W, other, true, /*residual=*/x);
      std::swap(x, other);
    }
    conv(st.tgrow, x, f, H, W, cat, false);                            // [f, H, W, s·C], TGrow's 1×1 conv
    taehv_tgrow_upsample(other, cat, f, H, W, C, st.time_stride, stream_);  // [s·f, 2H, 2W, C]
    f *= st.time_stride;
    H *= 2;
    W *= 2;
    // decoder.8 / 14 / 20; the ReLU after the last one is decoder.21
    conv(st.conv, other, f, H, W, x, /*relu=*/s + 1 == stages_.size());
  }
  conv(conv_out_, x, f, H, W, raw, false);  // decoder.22: [4n, 8h, 8w, out_p]
}

void CudaTaehvStream::check_chunk(const Tensor& latent, const char* what) {
  video::check_video_latent(latent, weights_->config.latent_channels, "CUDA TAEHV decoder", what, what);
  if (latents_decoded_ > 0)
    FASTAR_CHECK(latent.size(2) == latent_height_ && latent.size(3) == latent_width_,
                 "CUDA TAEHV decoder: this chunk's latent is " << latent.size(2) << "x" << latent.size(3)
                                                               << " but the stream started at " << latent_height_ << "x"
                                                               << latent_width_ << "; call reset() to start a new video");
  if (latent.device() == Device::CUDA) {
    FASTAR_CHECK(latent.is_contiguous(), "CUDA TAEHV decoder: the device " << what << " must be contiguous");
    FASTAR_CHECK(latent.dtype() == DType::F32 || latent.dtype() == DType::BF16 || latent.dtype() == DType::F16,
                 "CUDA TAEHV decoder: the device " << what << " has dtype " << dtype_name(latent.dtype())
                                                   << "; give F32, BF16 or F16 (or a host tensor)");
  }
}

void CudaTaehvStream::decode_to_raw(const Tensor& latent, bool denormalise) {
  const TaehvConfig& config = weights_->config;
  const int64_t T = latent.size(1), h = latent.size(2), w = latent.size(3), e = sizeof(bf16);
  latent_height_ = h;
  latent_width_ = w;
  if (!started_) {  // a new stream: zero MemBlock state ("past" is zeros at t = 0, §3.1)
    int64_t offset = 0, pixels = h * w;
    for (size_t s = 0; s < stages_.size(); ++s) {
      for (size_t b = 0; b < 3; ++b) {
        state_offsets_[3 * s + b] = offset;
        offset += pixels * stages_[s].channels;
      }
      pixels *= 4;
    }
    void* state = state_.ensure(offset * e, stream_);
    FASTAR_CUDA_CHECK(cudaMemsetAsync(state, 0, static_cast<size_t>(offset * e), stream_));
    started_ = true;
  }

  // The decoder input: soft clamp (decoder.0), after LightTAE's denormalisation, channels-last bf16.
  TaehvInputParams in;
  in.channels = config.latent_channels;
  in.padded_channels = in_channels_;
  in.frames = T;
  in.height = h;
  in.width = w;
  in.denormalise = denormalise;
  for (int c = 0; c < 16; ++c) {
    in.mean[c] = kWanLatentMean[c];
    in.std[c] = kWanLatentStd[c];
  }
  const void* source = nullptr;
  Tensor host_f32;  // kept until the upload below has been staged
  if (latent.device() == Device::CUDA) {
    source = latent.raw_data();
    in.dtype = latent.dtype() == DType::BF16 ? LatentDType::BF16
               : latent.dtype() == DType::F16 ? LatentDType::F16
                                              : LatentDType::F32;
  } else {
    host_f32 = video::contiguous_f32(latent);
    void* staging = latent_f32_.ensure(host_f32.nbytes(), stream_);
    FASTAR_CUDA_CHECK(cudaMemcpyAsync(staging, host_f32.raw_data(), static_cast<size_t>(host_f32.nbytes()),
                                         cudaMemcpyHostToDevice, stream_));
    source = staging;
    in.dtype = LatentDType::F32;
  }
  const int64_t per_pass = options_.latents_per_pass == 0 ? T : std::min(options_.latents_per_pass, T);
  const int64_t out_pixels = 64 * h * w, up = config.time_upscale();
  bf16* input = static_cast<bf16*>(input_.ensure(T * h * w * in_channels_ * e, stream_));
  bf16* raw = static_cast<bf16*>(raw_.ensure(up * T * out_pixels * out_channels_ * e, stream_));
  taehv_decoder_input(input, source, in, stream_);
  // Latent by latent by default: every layer is per frame except MemBlock, whose state carries the
  // past, so any pass size gives the same frames.
  for (int64_t t = 0; t < T; t += per_pass) {
    const int64_t n = std::min(per_pass, T - t);
    decode_pass(input + t * h * w * in_channels_, n, raw + up * t * out_pixels * out_channels_);
  }
  latents_decoded_ += T;
  raw_frames_decoded_ += up * T;
}

Tensor CudaTaehvStream::decode_chunk(const Tensor& latent) {
  check_chunk(latent, "normalised latent");
  const TaehvConfig& config = weights_->config;
  const int64_t raw_before = raw_frames_decoded_;
  decode_to_raw(latent, weights_->variant == TaehvVariant::LightTae);
  const int64_t raw_frames = config.time_upscale() * latent.size(1);
  // The first 3 raw frames of the stream are dropped (§3.2): raw frame 3 is pixel frame 0.
  const int64_t trim = std::clamp<int64_t>(config.frames_to_trim() - raw_before, 0, raw_frames);
  const int64_t frames = raw_frames - trim, H = 8 * latent_height_, W = 8 * latent_width_;
  const int64_t bytes = std::max<int64_t>(frames * H * W * 3, 1);
  if (!rgb_ || rgb_.use_count() > 1 || rgb_->nbytes() < bytes) rgb_ = allocate_device(bytes, kMemoryHint);
  taehv_frames_to_rgb8(static_cast<uint8_t*>(rgb_->data()), static_cast<const bf16*>(raw_.storage->data()), trim,
                       frames, H * W, out_channels_, stream_);
  return Tensor::from_storage(rgb_, 0, {frames, H, W, 3}, DType::U8);
}

Tensor CudaTaehvStream::decode_chunk_raw(const Tensor& decoder_input) {
  check_chunk(decoder_input, "decoder input");
  const TaehvConfig& config = weights_->config;
  decode_to_raw(decoder_input, /*denormalise=*/false);
  const int64_t frames = config.time_upscale() * decoder_input.size(1), H = 8 * latent_height_, W = 8 * latent_width_;
  const int64_t C = config.out_channels;
  Tensor host = Tensor::zeros({frames, C, H, W});
  float* planar = static_cast<float*>(planar_.ensure(host.nbytes(), stream_));
  taehv_raw_to_planar(planar, static_cast<const bf16*>(raw_.storage->data()), frames, H * W, out_channels_, C, stream_);
  FASTAR_CUDA_CHECK(cudaMemcpyAsync(host.raw_data(), planar, static_cast<size_t>(host.nbytes()),
                                       cudaMemcpyDeviceToHost, stream_));
  FASTAR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return host;
}

}  // namespace fastar::cuda
