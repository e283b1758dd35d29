// The tiny Wan2.1 decoders TAEHV (taew2_1) and LightTAE (lighttaew2_1) on the GPU, streaming, bf16
// (pipeline-spec.md §3): the twin of the fp32 CPU reference TaehvStream (model/taehv_decoder.h),
// same semantics, state and frame accounting.
//
// Layout: activations are channels-last bf16 [frames, height, width, channels]; the convolutions
// are cuDNN's (kernels/cuda/cudnn_conv.h, fp32 accumulation, bias / residual / ReLU fused), the rest
// is kernels/cuda/taehv_ops.h. Weights are uploaded once as bf16 [Cout, 1, kh, kw, Cin], every
// channel count padded with zeros to a multiple of 8 (the published widths 256/128/64/64 already
// are; the 3 output channels become 8). Zero channels stay zero through every layer, so the padding
// changes no value.
//
// State between chunks: one frame per MemBlock, its last input (9 slots, §3.3), bf16: 67 MB at
// 480×832. Working buffers are allocated for the largest pass seen and kept (no allocation in the
// steady state); a pass is `latents_per_pass` latents (TaehvStreamOptions; 0 = the whole chunk),
// which trades activation memory for larger, more efficient convolutions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "fastar/core/tensor.h"
#include "fastar/model/taehv_decoder.h"
#include "fastar/model/taehv_weights.h"

namespace fastar::cuda {

class ConvRunner;

class CudaTaehvStream {
 public:
  // Uploads the weights (bf16, padded). Throws fastar::Error on weights the decoder cannot run
  // (no weights, time strides that do not give 4 frames per latent, latents_per_pass < 0).
  CudaTaehvStream(std::shared_ptr<const TaehvDecoderWeights> weights, cudaStream_t stream,
                  TaehvStreamOptions options = {});
  ~CudaTaehvStream();
  CudaTaehvStream(const CudaTaehvStream&) = delete;
  CudaTaehvStream& operator=(const CudaTaehvStream&) = delete;

  // latent [16, T, h, w] normalised as the DiT outputs it, host or device (contiguous), F32 / BF16 /
  // F16 (a host F64 is converted)
  //   -> device uint8 RGB [T', 8h, 8w, 3], T' = taehv_output_frames(latents_decoded(), T):
  // TaehvStream::decode_chunk (taew2_1 as is, LightTAE denormalised; trim 3 raw frames at the stream's
  // start; clamp to [0, 1]) then the 8-bit rounding of video_frame_to_rgb (lround(255 · v)).
  // Asynchronous on the stream. The returned tensor's memory is reused by a later call only once
  // every copy of the tensor is gone; keep it until the work that reads it has run.
  Tensor decode_chunk(const Tensor& latent);

  // The decoder alone (for checks): its input [16, T, h, w] already scaled for the variant -> host
  // fp32 raw frames [4T, 3, 8h, 8w] (no trim, no clamp), like TaehvStream::decode_chunk_raw.
  // Advances the stream like decode_chunk; synchronises the stream.
  Tensor decode_chunk_raw(const Tensor& decoder_input);

  // Forget the stream (MemBlock state, frame counts); the next chunk starts a new video. Keeps the
  // buffers.
  void reset();

  int64_t latents_decoded() const { return latents_decoded_; }
  int64_t raw_frames_decoded() const { return raw_frames_decoded_; }
  // Bytes held between chunks: the 9 MemBlock frames, bf16, padded channels (0 before the first chunk).
  int64_t state_bytes() const;
  // All device memory this stream holds: weights, state, working buffers, output, cuDNN workspace.
  int64_t device_bytes() const;
  // cuDNN's algorithm per convolution shape planned so far, one line each (for benchmarks).
  std::string describe_convolutions() const;
  const TaehvDecoderWeights& weights() const { return *weights_; }
  cudaStream_t stream() const { return stream_; }

 private:
  struct DeviceConv {
    Tensor weight;  // bf16 [Cout_p, 1, k, k, Cin_p]
    Tensor bias;    // bf16 [Cout_p], undefined without bias
    int64_t in_channels = 0, out_channels = 0;  // padded
    int kernel = 3;
  };
  struct DeviceStage {
    std::array<std::array<DeviceConv, 3>, 3> blocks;  // MemBlocks' conv1 (2C_p -> C_p), conv2, conv3
    DeviceConv tgrow;                                 // 1×1, C_p -> stride·C_p
    DeviceConv conv;                                  // 3×3, C_p -> next C_p
    int64_t channels = 0;                             // C_p
    int64_t time_stride = 1;
  };
  // A device buffer that only grows.
  struct Buffer {
    std::shared_ptr<Storage> storage;
    int64_t bytes = 0;
    // At least `needed` bytes; growing waits for `stream` (whose work may use the old buffer).
    void* ensure(int64_t needed, cudaStream_t stream);
  };

  // Decodes a validated input chunk into raw_ ([4T, 8h, 8w, out_p] bf16) and advances the stream.
  void decode_to_raw(const Tensor& input, bool denormalise);
  // One pass of n latents: input [n, h, w, in_p] bf16 -> raw frames [4n, 8h, 8w, out_p] bf16.
  void decode_pass(const __nv_bfloat16* input, int64_t n, __nv_bfloat16* raw);
  void conv(const DeviceConv& c, const __nv_bfloat16* in, int64_t frames, int64_t height, int64_t width,
            __nv_bfloat16* out, bool relu, const __nv_bfloat16* residual = nullptr);
  void check_chunk(const Tensor& latent, const char* what);

  std::shared_ptr<const TaehvDecoderWeights> weights_;
  cudaStream_t stream_;
  TaehvStreamOptions options_;
  std::unique_ptr<ConvRunner> runner_;
  int64_t in_channels_ = 0, out_channels_ = 0;  // padded latent channels (16) and output channels (8)
  DeviceConv conv_in_, conv_out_;
  std::array<DeviceStage, 3> stages_;
  int64_t weight_bytes_ = 0;

  Buffer latent_f32_;          // a host latent's upload, fp32 [16, T, h, w]
  Buffer input_;               // decoder input, bf16 [T, h, w, in_p]
  Buffer ping_, pong_, wide_;  // activations; wide_ holds the MemBlock cat and TGrow's 1×1 output
  Buffer raw_;                 // bf16 [4T, 8h, 8w, out_p]
  Buffer planar_;              // fp32 [4T, 3, 8h, 8w] for decode_chunk_raw
  Buffer state_;               // the 9 MemBlock frames, bf16 [H_s·W_s·C_s] each, stage-major
  std::shared_ptr<Storage> rgb_;  // the last decode_chunk output, reused once unshared
  std::array<int64_t, 9> state_offsets_{};  // element offsets of the slots in state_

  bool started_ = false;  // the state holds a stream (zeroed at its first chunk)
  int64_t latents_decoded_ = 0;
  int64_t raw_frames_decoded_ = 0;
  int64_t latent_height_ = 0, latent_width_ = 0;
};

}  // namespace fastar::cuda
