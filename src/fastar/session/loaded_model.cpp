#include "fastar/session/loaded_model.h"

#include <filesystem>

#include "fastar/core/error.h"
#include "fastar/session/gpu_text_encoder.h"

namespace fastar {

namespace {

// umT5 from the folder's tokenizer and encoder, checked against the DiT it feeds.
std::unique_ptr<const Umt5TextPipeline> load_umt5(const WanModelFolder& folder, const WanConfig& config) {
  auto pipeline = std::make_unique<const Umt5TextPipeline>(Umt5Tokenizer::load(folder.tokenizer),
                                                           Umt5Encoder::load(folder.text_encoder), config.text_len);
  const Umt5Config& t5 = pipeline->encoder().config();
  FASTAR_CHECK(t5.d_model == config.text_dim,
               pipeline->encoder().source() << ": this umT5 encoder outputs rows of " << t5.d_model << " but the DiT in "
                                            << folder.dit << " takes text_dim " << config.text_dim
                                            << "; use the text encoder released with this DiT (Wan2.1: umT5-XXL, 4096 wide)");
  return pipeline;
}

// The Wan VAE decoder, checked against the latents the DiT outputs.
std::shared_ptr<const WanVaeDecoderWeights> load_vae(const WanModelFolder& folder, const WanConfig& config) {
  auto vae = std::make_shared<const WanVaeDecoderWeights>(load_wan_vae_decoder_weights(folder.vae));
  FASTAR_CHECK(vae->config.z_dim == config.out_dim,
               folder.vae << ": this VAE decodes latents of " << vae->config.z_dim << " channels but the DiT in " << folder.dit
                          << " outputs " << config.out_dim << "; use the Wan2.1 VAE (Wan2.1_VAE.pth, z_dim 16) with a Wan2.1 DiT");
  return vae;
}

// The tiny decoder, checked against the latents the DiT outputs.
std::shared_ptr<const TaehvDecoderWeights> load_tiny_decoder(const std::string& path, const std::string& dit, const WanConfig& config) {
  auto tiny = std::make_shared<const TaehvDecoderWeights>(load_taehv_decoder_weights(path));
  FASTAR_CHECK(tiny->config.latent_channels == config.out_dim,
               path << ": this tiny decoder takes latents of " << tiny->config.latent_channels << " channels but the DiT in " << dit
                    << " outputs " << config.out_dim << "; use taew2_1 or lighttaew2_1 (16 channels) with a Wan2.1 DiT");
  return tiny;
}

// Runs `load`; a fastar::Error gets one more line: where the part comes from (a file that fails to
// parse was often cut short by a download or a conversion).
template <typename Load>
auto with_origin(Load&& load, const std::string& origin) {
  try {
    return load();
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "\n  (" + origin + ")");
  }
}

std::string vae_origin(const WanModelFolder& folder) {
  if (folder.layout == WanFolderLayout::Diffusers) return "vae/ comes from a Wan2.1 -Diffusers repo; download it again";
  return folder.vae + " is made from Wan2.1's Wan2.1_VAE.pth by " + convert_wan_vae_command("Wan2.1_VAE.pth", folder.vae);
}

std::string t5_origin(const WanModelFolder& folder) {
  if (folder.layout == WanFolderLayout::Diffusers)
    return "text_encoder/ and tokenizer/ come from a Wan2.1 -Diffusers repo; download them again";
  return folder.text_encoder + " is made from Wan2.1's models_t5_umt5-xxl-enc-bf16.pth by " +
         convert_wan_t5_command("models_t5_umt5-xxl-enc-bf16.pth", folder.text_encoder) +
         "; google/umt5-xxl/ is copied from Wan2.1's repo";
}

}  // namespace

std::shared_ptr<const LoadedModel> LoadedModel::load(const std::string& path, std::optional<uint64_t> random_weights_seed) {
  FASTAR_CHECK(!path.empty(), "no model path given");
  std::shared_ptr<LoadedModel> out(new LoadedModel());
  // Every part is located (and an unconverted .pth reported) before anything large is read.
  out->folder_ = locate_wan_model_folder(path);
  const std::string& dit = out->folder_.dit;
  if (random_weights_seed) {
    std::string config_path = dit;
    if (std::filesystem::is_directory(dit)) config_path = locate_model_files(dit).config;
    WanConfig config = WanConfig::load(config_path);
    out->model_ = std::make_unique<WanModel>(config, random_wan_weights(config, *random_weights_seed));
    out->name_ = config_path + " (random weights, seed " + std::to_string(*random_weights_seed) + ")";
  } else {
    out->model_ = std::make_unique<WanModel>(WanModel::load(dit));
    out->name_ = path;
  }
  if (TextEncoder::available(dit)) out->encoder_.emplace(TextEncoder::load(dit));  // the model's own beats umT5
  else if (out->folder_.has_umt5())
    out->umt5_ = with_origin([&] { return load_umt5(out->folder_, out->config()); }, t5_origin(out->folder_));
  if (out->folder_.has_vae()) out->vae_ = with_origin([&] { return load_vae(out->folder_, out->config()); }, vae_origin(out->folder_));
  if (out->folder_.has_tiny_decoder())
    out->tiny_decoder_ = with_origin([&] { return load_tiny_decoder(out->folder_.tiny_decoder, dit, out->config()); },
                                     out->folder_.tiny_decoder + " is made from taew2_1.pth / lighttaew2_1.pth by " +
                                         convert_taehv_command("taew2_1.pth", out->folder_.tiny_decoder));
  return out;
}

std::shared_ptr<const LoadedModel> LoadedModel::from(WanModel model, std::string name, std::optional<TextEncoder> encoder,
                                                     std::shared_ptr<const WanVaeDecoderWeights> vae,
                                                     std::shared_ptr<const TaehvDecoderWeights> tiny_decoder) {
  std::shared_ptr<LoadedModel> out(new LoadedModel());
  out->model_ = std::make_unique<WanModel>(std::move(model));
  out->encoder_ = std::move(encoder);
  out->name_ = std::move(name);
  out->folder_.root = out->folder_.dit = out->name_;
  if (vae) {
    FASTAR_CHECK(vae->config.z_dim == out->config().out_dim,
                 out->name_ << ": the VAE decodes " << vae->config.z_dim << " latent channels, the DiT outputs " << out->config().out_dim);
    out->vae_ = std::move(vae);
  }
  if (tiny_decoder) {
    FASTAR_CHECK(tiny_decoder->config.latent_channels == out->config().out_dim,
                 out->name_ << ": the tiny decoder takes " << tiny_decoder->config.latent_channels << " latent channels, the DiT outputs "
                            << out->config().out_dim);
    out->tiny_decoder_ = std::move(tiny_decoder);
  }
  return out;
}

LoadedModel::~LoadedModel() = default;

Tensor LoadedModel::encode_prompt(const std::string& text, Device device) const {
  if (encoder_) return encoder_->encode(text);
  FASTAR_CHECK(umt5_, "a text prompt needs a text encoder: the model's own (a 'text_encoder' section in config.json) or umT5 "
                      "beside the DiT (original Wan2.1 folder: models_t5_umt5-xxl-enc-bf16.safetensors + google/umt5-xxl/; "
                      "diffusers: text_encoder/ + tokenizer/); "
                          << name_ << " has neither: add one, or pass the prompt as an embedding (--prompt-embeds FILE)");
  if (device == Device::CUDA) {
    const Umt5Tokens tokens = umt5_->tokenize(text);
    GpuTextEncoder* gpu = nullptr;
    {
      std::lock_guard<std::mutex> lock(gpu_umt5_mutex_);
      if (!gpu_umt5_) gpu_umt5_ = make_gpu_umt5(umt5_->encoder());
      gpu = gpu_umt5_.get();
    }
    return pad_prompt(gpu->encode(tokens.ids, tokens.length), umt5_->encoder().source());
  }
  return pad_prompt(umt5_->encode(text), umt5_->encoder().source());
}

Tensor LoadedModel::pad_prompt(const Tensor& context, const std::string& source) const {
  return pad_prompt_context(context, model_->config(), source);
}

}  // namespace fastar
