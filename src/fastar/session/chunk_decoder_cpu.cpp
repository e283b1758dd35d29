// The CPU chunk decoders (chunk_decoder.h): WanVaeStream and TaehvStream, fp32.
#include <cstring>

#include "fastar/core/error.h"
#include "fastar/model/taehv_decoder.h"
#include "fastar/model/wan_vae_decoder.h"
#include "fastar/rollout/video_frame.h"
#include "fastar/session/chunk_decoder.h"
#include "fastar/session/gpu_text_encoder.h"

namespace fastar {

namespace {

// [T, 3, H, W] fp32 in [0, 1] -> U8 [T, H, W, 3].
Tensor pack_rgb8(const Tensor& video) {
  const int64_t frames = video.size(0), height = video.size(2), width = video.size(3);
  Tensor out = Tensor::zeros({frames, height, width, 3}, DType::U8);
  for (int64_t f = 0; f < frames; ++f) {
    const RgbFrame frame = video_frame_to_rgb(video, f);
    std::memcpy(out.data<uint8_t>() + f * height * width * 3, frame.rgb.data(), frame.rgb.size());
  }
  return out;
}

class CpuWanVaeDecoder final : public ChunkDecoder {
 public:
  explicit CpuWanVaeDecoder(const LoadedModel& model) : stream_(model.vae()), file_(model.folder().vae) {}
  Tensor decode(const Tensor& latent, Tensor*) override { return pack_rgb8(stream_.decode_chunk(latent)); }
  void reset() override { stream_.reset(); }
  int64_t frames_for(int64_t latents) const override { return wan_vae_output_frames(0, latents); }
  std::string describe() const override { return "Wan VAE " + file_ + " (CPU fp32)"; }
  int64_t state_bytes() const override { return stream_.cache_bytes(); }

 private:
  WanVaeStream stream_;
  std::string file_;
};

class CpuTinyDecoder final : public ChunkDecoder {
 public:
  explicit CpuTinyDecoder(const LoadedModel& model) : stream_(model.tiny_decoder()), file_(model.folder().tiny_decoder) {}
  Tensor decode(const Tensor& latent, Tensor*) override { return pack_rgb8(stream_.decode_chunk(latent)); }
  void reset() override { stream_.reset(); }
  int64_t frames_for(int64_t latents) const override { return taehv_output_frames(0, latents); }
  std::string describe() const override {
    return std::string(taehv_variant_name(stream_.weights().variant)) + " " + file_ + " (CPU fp32)";
  }
  int64_t state_bytes() const override { return stream_.state_bytes(); }

 private:
  TaehvStream stream_;
  std::string file_;
};

}  // namespace

std::unique_ptr<ChunkDecoder> make_cpu_chunk_decoder(const LoadedModel& model, const std::string& kind) {
  if (kind == "wan") {
    FASTAR_ASSERT(model.has_vae(), "make_cpu_chunk_decoder: no Wan VAE");
    return std::make_unique<CpuWanVaeDecoder>(model);
  }
  FASTAR_ASSERT(kind == "tiny" && model.has_tiny_decoder(), "make_cpu_chunk_decoder: no decoder '" << kind << "'");
  return std::make_unique<CpuTinyDecoder>(model);
}

#ifndef FASTAR_HAVE_CUDA
std::unique_ptr<GpuTextEncoder> make_gpu_umt5(const Umt5Encoder&) {
  FASTAR_FAIL("--device cuda is not available: this build has no CUDA backend (install the CUDA toolkit and rebuild; "
              "CMake turns FASTAR_CUDA on when nvcc is found)");
}

std::unique_ptr<ChunkDecoder> make_cuda_chunk_decoder(const LoadedModel&, const std::string&) {
  FASTAR_FAIL("--device cuda is not available: this build has no CUDA backend (install the CUDA toolkit and rebuild; "
              "CMake turns FASTAR_CUDA on when nvcc is found)");
}
#endif

}  // namespace fastar
