// A model loaded once and shared by any number of sessions (a server's sessions, a Python process's
// streams): the DiT's weights and whatever else its folder holds (pipeline-spec.md §6): the
// model's own small text encoder (the world model), or umT5 with its tokenizer, and the Wan VAE.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "fastar/core/tensor.h"
#include "fastar/model/text_encoder.h"
#include "fastar/model/umt5_text_pipeline.h"
#include "fastar/model/wan_dit.h"
#include "fastar/model/wan_model_folder.h"
#include "fastar/model/taehv_weights.h"
#include "fastar/model/wan_vae_weights.h"

namespace fastar {

class GpuTextEncoder;  // gpu_text_encoder.h

class LoadedModel {
 public:
  // path: a model folder (config.json + safetensors; a Wan2.1 folder of the original or the diffusers
  // layout, wan_model_folder.h) or a weights file; with random_weights_seed the DiT's config alone,
  // with deterministic random weights (benchmarks, smoke tests; the folder's other parts still load).
  // Throws fastar::Error naming the file on anything missing, malformed or mismatched (a umT5 whose
  // width is not the DiT's text_dim, a VAE whose z_dim is not the DiT's out_dim).
  static std::shared_ptr<const LoadedModel> load(const std::string& path, std::optional<uint64_t> random_weights_seed = {});
  // A model built in memory (tests, random-weight shapes); `name` is what describe() shows.
  static std::shared_ptr<const LoadedModel> from(WanModel model, std::string name, std::optional<TextEncoder> encoder = {},
                                                 std::shared_ptr<const WanVaeDecoderWeights> vae = {},
                                                 std::shared_ptr<const TaehvDecoderWeights> tiny_decoder = {});

  ~LoadedModel();

  const WanModel& dit() const { return *model_; }
  const WanConfig& config() const { return model_->config(); }
  const std::string& name() const { return name_; }
  // The folder's parts as found (layout, files); File layout for models built in memory.
  const WanModelFolder& folder() const { return folder_; }
  // A text prompt works: the model's own encoder or umT5.
  bool has_text_encoder() const { return encoder_.has_value() || umt5_ != nullptr; }
  bool has_umt5() const { return umt5_ != nullptr; }
  const Umt5TextPipeline* umt5() const { return umt5_.get(); }                 // null = none
  const TextEncoder* own_text_encoder() const { return encoder_ ? &*encoder_ : nullptr; }  // null = none
  // Words of the model's own vocabulary, or any text through umT5 -> [text_len, text_dim] zero-padded;
  // a fastar::Error for unknown words or a model without a text encoder (saying what to add).
  // device CUDA: umT5 runs on the GPU (uploaded on first use, then shared by every GPU session of this
  // model; the same tokens, bf16 GEMMs); the model's own small encoder always runs on the host.
  Tensor encode_prompt(const std::string& text, Device device = Device::CPU) const;
  // A prompt embedding [rows, text_dim] (e.g. umT5's output) checked and zero-padded to text_len.
  Tensor pad_prompt(const Tensor& context, const std::string& source) const;

  // The Wan VAE decoder's weights, shared by the sessions' streams; null = the folder has none.
  const std::shared_ptr<const WanVaeDecoderWeights>& vae() const { return vae_; }
  bool has_vae() const { return vae_ != nullptr; }
  // The tiny decoder's weights (TAEHV taew2_1 / LightTAE; pipeline-spec.md §3); null = none.
  const std::shared_ptr<const TaehvDecoderWeights>& tiny_decoder() const { return tiny_decoder_; }
  bool has_tiny_decoder() const { return tiny_decoder_ != nullptr; }

 private:
  LoadedModel() = default;
  std::unique_ptr<WanModel> model_;
  std::optional<TextEncoder> encoder_;
  std::unique_ptr<const Umt5TextPipeline> umt5_;
  std::shared_ptr<const WanVaeDecoderWeights> vae_;
  std::shared_ptr<const TaehvDecoderWeights> tiny_decoder_;
  WanModelFolder folder_;
  std::string name_;
  mutable std::mutex gpu_umt5_mutex_;
  mutable std::unique_ptr<GpuTextEncoder> gpu_umt5_;  // made by the first GPU prompt
};

}  // namespace fastar
