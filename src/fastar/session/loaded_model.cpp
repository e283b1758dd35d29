#include "fastar/session/loaded_model.h"

#include <filesystem>

#include "fastar/core/error.h"

namespace fastar {

std::shared_ptr<const LoadedModel> LoadedModel::load(const std::string& path, std::optional<uint64_t> random_weights_seed) {
  FASTAR_CHECK(!path.empty(), "no model path given");
  std::shared_ptr<LoadedModel> out(new LoadedModel());
  if (random_weights_seed) {
    std::string config_path = path;
    if (std::filesystem::is_directory(path)) config_path = locate_model_files(path).config;
    WanConfig config = WanConfig::load(config_path);
    out->model_ = std::make_unique<WanModel>(config, random_wan_weights(config, *random_weights_seed));
    out->name_ = config_path + " (random weights, seed " + std::to_string(*random_weights_seed) + ")";
  } else {
    out->model_ = std::make_unique<WanModel>(WanModel::load(path));
    out->name_ = path;
  }
  if (TextEncoder::available(path)) out->encoder_.emplace(TextEncoder::load(path));
  return out;
}

std::shared_ptr<const LoadedModel> LoadedModel::from(WanModel model, std::string name, std::optional<TextEncoder> encoder) {
  std::shared_ptr<LoadedModel> out(new LoadedModel());
  out->model_ = std::make_unique<WanModel>(std::move(model));
  out->encoder_ = std::move(encoder);
  out->name_ = std::move(name);
  return out;
}

Tensor LoadedModel::encode_prompt(const std::string& text) const {
  FASTAR_CHECK(encoder_, "a text prompt needs a model with its own text encoder (a 'text_encoder' section in config.json); "
                             << name_ << " takes umT5 embeddings: pass them as a prompt embedding (--prompt-embeds FILE)");
  return encoder_->encode(text);
}

Tensor LoadedModel::pad_prompt(const Tensor& context, const std::string& source) const {
  return pad_prompt_context(context, model_->config(), source);
}

}  // namespace fastar
