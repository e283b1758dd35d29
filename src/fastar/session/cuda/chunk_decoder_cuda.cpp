// The GPU chunk decoders (chunk_decoder.h): CudaWanVaeStream and CudaTaehvStream, bf16, each on a
// CUDA stream of its own (pipeline-spec.md §2.8, §3), so that decoding never waits behind the DiT's
// stream; the 8-bit frames come back to the host once the chunk is decoded.
#include <cuda_runtime.h>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/cudnn_conv.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/model/cuda/taehv_decoder_cuda.h"
#include "fastar/model/cuda/wan_vae_decoder_cuda.h"
#include "fastar/model/taehv_decoder.h"
#include "fastar/model/wan_vae_decoder.h"
#include "fastar/session/chunk_decoder.h"

namespace fastar {

namespace {

// A non-blocking stream (no implicit ordering with the DiT's stream or the legacy default stream).
class DecoderStream {
 public:
  DecoderStream() {
    FASTAR_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) == cudaSuccess,
                 "could not create the decoder's CUDA stream");
  }
  ~DecoderStream() { cudaStreamDestroy(stream_); }
  DecoderStream(const DecoderStream&) = delete;
  DecoderStream& operator=(const DecoderStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// Device U8 [T', H, W, 3] -> host, after the decoder's stream has finished the chunk.
Tensor frames_to_host(const Tensor& device_rgb, cudaStream_t stream) {
  FASTAR_CHECK(cudaStreamSynchronize(stream) == cudaSuccess, "the video decoder failed on the GPU: "
                                                                 << cudaGetErrorString(cudaGetLastError()));
  return cuda::to_host(device_rgb);
}

template <typename Stream>
class CudaChunkDecoder final : public ChunkDecoder {
 public:
  template <typename Weights, typename Options>
  CudaChunkDecoder(const Weights& weights, Options options, std::string name, int64_t (*frames_for)(int64_t, int64_t))
      : stream_(), decoder_(weights, stream_.get(), options), name_(std::move(name)), frames_for_(frames_for) {}
  Tensor decode(const Tensor& latent, Tensor* device_frames) override {
    Tensor frames = decoder_.decode_chunk(latent);  // device U8 [T', 8h, 8w, 3]; reused only once unshared
    Tensor host = frames_to_host(frames, stream_.get());
    if (device_frames) *device_frames = std::move(frames);
    return host;
  }
  void reset() override { decoder_.reset(); }
  int64_t frames_for(int64_t latents) const override { return frames_for_(0, latents); }
  std::string describe() const override { return name_ + " (CUDA bf16, own stream)"; }
  int64_t state_bytes() const override { return state_bytes_of(decoder_); }

 private:
  static int64_t state_bytes_of(const cuda::CudaWanVaeStream& d) { return d.cache_bytes(); }
  static int64_t state_bytes_of(const cuda::CudaTaehvStream& d) { return d.state_bytes(); }
  DecoderStream stream_;  // declared first: the decoder uses it from construction to destruction
  Stream decoder_;
  std::string name_;
  int64_t (*frames_for_)(int64_t, int64_t);
};

int64_t wan_frames(int64_t before, int64_t latents) { return wan_vae_output_frames(before, latents); }

}  // namespace

std::unique_ptr<ChunkDecoder> make_cuda_chunk_decoder(const LoadedModel& model, const std::string& kind) {
  FASTAR_CHECK(cuda::have_cudnn(), "the GPU video decoders need cuDNN, which this build lacks: pip install nvidia-cudnn-cu13 "
                                   "(or apt install cudnn9-cuda-13), reconfigure and rebuild; or --decoder latents");
  if (kind == "wan") {
    FASTAR_ASSERT(model.has_vae(), "make_cuda_chunk_decoder: no Wan VAE");
    // One latent per pass: 1.4 GiB of activations at 480×832 (pipeline-spec.md §2.7), within the 2 GiB budget.
    WanVaeStreamOptions options;
    options.latents_per_pass = 1;
    return std::make_unique<CudaChunkDecoder<cuda::CudaWanVaeStream>>(model.vae(), options, "Wan VAE " + model.folder().vae,
                                                                      &wan_frames);
  }
  FASTAR_ASSERT(kind == "tiny" && model.has_tiny_decoder(), "make_cuda_chunk_decoder: no decoder '" << kind << "'");
  // The whole chunk per pass: 2394 against 1595 frames/s at 480×832 on an H200, for 0.9 GiB more.
  TaehvStreamOptions options;
  options.latents_per_pass = 0;
  return std::make_unique<CudaChunkDecoder<cuda::CudaTaehvStream>>(
      model.tiny_decoder(), options, std::string(taehv_variant_name(model.tiny_decoder()->variant)) + " " + model.folder().tiny_decoder,
      &taehv_output_frames);
}

}  // namespace fastar
