// How a Session turns a chunk's clean latent into 8-bit video frames (SessionOptions::decoder;
// pipeline-spec.md §1): the Wan VAE ("wan", §2) or the tiny decoder ("tiny", TAEHV / LightTAE, §3),
// each streaming — its causal state spans the session's chunks, so decoding chunk after chunk equals
// decoding the whole clip. Both give 1 + 4(T − 1) frames for the first chunk of T latents and 4T
// after. The CPU decoders are the fp32 references; the CUDA ones (cuda/chunk_decoder_cuda.cpp) run
// bf16 on a stream of their own.
#pragma once

#include <memory>
#include <string>

#include "fastar/core/tensor.h"
#include "fastar/session/loaded_model.h"

namespace fastar {

class ChunkDecoder {
 public:
  virtual ~ChunkDecoder() = default;
  // latent [out_dim, T, h, w] fp32 on the host, normalised as the DiT outputs it
  //   -> frames U8 [T', 8h, 8w, 3] on the host (RGB, video_frame.h's rounding).
  // device_frames: when given, a GPU decoder also hands out its device copy of the frames (a fresh
  // buffer per chunk, complete when decode returns); a CPU decoder leaves it undefined.
  virtual Tensor decode(const Tensor& latent, Tensor* device_frames = nullptr) = 0;
  // Forget the stream: the next chunk starts a new video.
  virtual void reset() = 0;
  // Frames the first `latents` latents of a stream decode to.
  virtual int64_t frames_for(int64_t latents) const = 0;
  // "Wan VAE FILE (CPU fp32)", for Session::describe().
  virtual std::string describe() const = 0;
  // Bytes held between chunks (the causal cache / MemBlock state).
  virtual int64_t state_bytes() const = 0;
};

// kind "wan" or "tiny"; the model must have that part (Session checks first).
std::unique_ptr<ChunkDecoder> make_cpu_chunk_decoder(const LoadedModel& model, const std::string& kind);
// The GPU twins; a build without CUDA (or, for "wan"/"tiny", without cuDNN) throws a fastar::Error saying so.
std::unique_ptr<ChunkDecoder> make_cuda_chunk_decoder(const LoadedModel& model, const std::string& kind);

}  // namespace fastar
