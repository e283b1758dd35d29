// The Wan2.1 VAE decoder on the GPU, streaming, bf16 (pipeline-spec.md §2, §2.5, §2.8): the twin of
// the fp32 CPU reference WanVaeStream (../wan_vae_decoder.h), with the same streaming semantics: the
// first-latent rule (WanVaeStreamOptions::first_latent, 'Rep' by default), a causal context of the
// last 2 input frames per 3-tap conv kept between chunks, and 1 + 4(T − 1) frames for T latents.
//
// Layout and precision. Weights are uploaded once as bf16 in the conv layout [Cout, kt, kh, kw, Cin]
// (norm gammas fp32); activations are channels-last bf16 [T, H, W, C]; convolutions run through cuDNN
// (kernels/cuda/cudnn_conv.h: fp32 accumulation, bias / residual fused where cuDNN allows); RMS_norm's
// statistics, SiLU, the softmax and the output conversion are fp32 (kernels/cuda/wan_vae_ops.h).
//
// How each layer runs (§2.8):
//   - every 3-tap causal conv is one 'valid' cuDNN conv over [2 cached frames, T chunk frames]: each
//     activation buffer keeps 2 frames of room in front of its data, the conv's cached context is
//     copied there, and the last 2 of those T + 2 frames are copied back to the cache afterwards;
//   - RMS_norm + SiLU is one kernel writing straight into the next conv's input buffer;
//   - the resample layers' nearest ×2 + 3×3 conv run as one 2×2 conv (padding 1) on the low-resolution
//     frame with 4·Cout outputs, one per output pixel parity, then a pixel shuffle: 4/9 of the MACs of
//     upsample-then-conv and no 4× upsampled intermediate (the weights are summed per parity on upload);
//   - time_conv (3,1,1) is a cuDNN conv to [T, H, W, 2C], interleaved to [2T, H, W, C];
//   - the mid attention (one head of dimension C per frame) is two cuBLAS GEMMs around an fp32 softmax;
//   - the head conv's 3 output channels are padded to 8 (zero weights) for cuDNN's tensor-core kernels.
// Three activation buffers are reused in turn (each grows to the largest activation it holds, the
// margin included). Passes: the low-resolution stages (latent and 2× latent resolution, up to and with
// up_blocks[1]'s residual blocks) run over 8·latents_per_pass latents at once, whose activations there
// take no more memory than latents_per_pass latents at the output resolution; their output is kept in a
// fourth buffer, and the high-resolution stages (up_blocks[1]'s upsample onwards) take it
// latents_per_pass latents at a time (default 1: at most 4 frames at the output resolution in flight
// whatever the chunk length; 0 = the whole chunk in one pass everywhere). Passes are exact (§2.5): every
// stage is causal or per frame, and each temporal upsampler keeps its own "first frame consumed" flag.
//
// Everything is asynchronous on the stream given to the constructor; one object per stream, not
// thread-safe.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/wan_vae_decoder.h"
#include "fastar/model/wan_vae_weights.h"

namespace fastar::cuda {

class ConvRunner;

class CudaWanVaeStream {
 public:
  // Uploads the weights (the host copy is not used afterwards, but kept alive with the shared_ptr).
  CudaWanVaeStream(std::shared_ptr<const WanVaeDecoderWeights> weights, cudaStream_t stream,
                   WanVaeStreamOptions options = {});
  ~CudaWanVaeStream();
  CudaWanVaeStream(const CudaWanVaeStream&) = delete;
  CudaWanVaeStream& operator=(const CudaWanVaeStream&) = delete;

  // latent [16, T, h, w] normalised as the DiT outputs it (host or device; F32, BF16 or F16)
  //   -> device U8 [T', 8h, 8w, 3] RGB: denormalise (§2.6), decode, clamp to [−1, 1], ·0.5 + 0.5,
  //      then round(255·v) as video_frame_to_rgb does for the CPU decoder's frames.
  // T' = wan_vae_output_frames(latents_decoded(), T, first_latent). Asynchronous: the frames are
  // ready once `stream` reaches this point. The output's device memory is reused by the next call
  // once the caller has dropped every Tensor sharing it.
  Tensor decode_chunk(const Tensor& latent);

  // The decoder alone: latent [16, T, h, w] already denormalised -> host F32 [3, T', 8h, 8w], not
  // clamped, as WanVaeStream::decode_chunk_unclamped (for checks; synchronises the stream).
  Tensor decode_chunk_unclamped(const Tensor& latent);

  // Forget the stream (cached contexts and the first-latent state); the next chunk starts a new video.
  void reset();

  int64_t latents_decoded() const { return latents_decoded_; }
  int64_t frames_decoded() const { return frames_decoded_; }
  // Device bytes held between chunks: 2 bf16 frames per causal conv with kernel_t = 3.
  int64_t cache_bytes() const;
  // Causal convs holding a context (32 for the Wan2.1 decoder once a latent after the first went through).
  int64_t cache_slots() const { return static_cast<int64_t>(caches_.size()); }
  // Device bytes of working memory held now (activation buffers, attention scores, latent staging,
  // cuDNN workspace) and the most held at once so far. Weights: weight_bytes().
  int64_t working_bytes() const;
  int64_t peak_working_bytes() const { return peak_working_bytes_; }
  int64_t weight_bytes() const { return weight_bytes_; }
  const WanVaeStreamOptions& options() const { return options_; }
  // The convolution runner (its plan descriptions, and set_fused_epilogue for comparisons).
  ConvRunner& conv_runner() { return *runner_; }

 private:
  struct DeviceConv;
  struct DeviceResBlock;
  struct DeviceWeights;
  // An activation in one of the working buffers: [frames, height, width, channels] bf16 starting
  // kContextFrames frames into the buffer (the room for a causal conv's cached context).
  struct Activation {
    int buffer = -1;
    int64_t frames = 0, height = 0, width = 0, channels = 0;
    int64_t first_frame = 0;  // frames of the buffer's activation before this one (a slice of the staged one)
    int64_t frame_elements() const { return height * width * channels; }
  };
  struct Buffer {
    std::shared_ptr<Storage> storage;
    int64_t bytes = 0;
  };

  // Where the decoded frames of a chunk go.
  struct FrameSink {
    uint8_t* rgb8 = nullptr;   // [total, H, W, 3]
    float* planar = nullptr;   // [3, total, H, W]
    int64_t total_frames = 0;
    int64_t written = 0;
  };

  void decode_into(const Tensor& latent, bool denormalise, FrameSink& sink);
  // z[n, h, w, z_dim] bf16 (channels-last) -> up_blocks[1]'s residual blocks' output [n'', 2h, 2w, C].
  Activation decode_low_resolution(const __nv_bfloat16* z, int64_t n);
  // That output (or frames of it) -> the head conv's output [n', 8h, 8w, 8] in a working buffer.
  Activation decode_high_resolution(const Activation& x);

  __nv_bfloat16* data(const Activation& a) const;
  // An activation of the given shape in a buffer other than those in `busy`; grows the buffer.
  Activation allocate(int64_t frames, int64_t height, int64_t width, int64_t channels, std::initializer_list<int> busy);
  void ensure(Buffer& buffer, int64_t bytes, const char* what);

  Activation rms_norm(const Activation& x, const float* gamma, bool silu, std::initializer_list<int> busy);
  // kernel_t = 1 convs (pointwise, and the resample's sub-pixel 2×2), frames as the batch.
  Activation conv_per_frame(const DeviceConv& c, const Activation& x, const __nv_bfloat16* residual,
                            std::initializer_list<int> busy);
  // A 3-tap causal conv over the `frames` frames at `input` (2 writable frames of room before it):
  // the cached context goes in front, the last 2 input frames become the new context.
  Activation causal_conv(const DeviceConv& c, __nv_bfloat16* input, int64_t frames, int64_t height, int64_t width,
                         const __nv_bfloat16* residual, std::initializer_list<int> busy);
  Activation res_block(const DeviceResBlock& r, const Activation& x);
  Activation attention(const Activation& x);
  Activation upsample(size_t block, const Activation& x);

  std::shared_ptr<const WanVaeDecoderWeights> host_weights_;
  cudaStream_t stream_;
  WanVaeStreamOptions options_;
  std::unique_ptr<DeviceWeights> w_;
  std::unique_ptr<ConvRunner> runner_;
  cublasHandle_t cublas_ = nullptr;
  int64_t weight_bytes_ = 0;

  Buffer buffers_[4];       // 0-2: working buffers taken in turn; kStagedBuffer: the low-resolution output
  std::vector<bool> time_upsample_started_;  // per up block: its time_conv's first frame went through
  Buffer scores_;          // attention logits, tokens² fp32
  Buffer latent_f32_;      // a host latent, uploaded
  Buffer latent_bf16_;     // the chunk's latent, channels-last bf16
  Buffer planar_out_;      // decode_chunk_unclamped's device output
  std::shared_ptr<Storage> rgb_out_;  // decode_chunk's output, reused when the caller released it
  std::map<const DeviceConv*, Buffer> caches_;  // per causal conv: [2, H, W, Cin] bf16
  int64_t peak_working_bytes_ = 0;

  int64_t latents_decoded_ = 0;
  int64_t frames_decoded_ = 0;
  int64_t latent_height_ = 0, latent_width_ = 0;
};

}  // namespace fastar::cuda
