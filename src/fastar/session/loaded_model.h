// A model loaded once and shared by any number of sessions (a server's sessions, a Python process's
// streams): the DiT's weights and, when the model folder has one, its text encoder.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "fastar/core/tensor.h"
#include "fastar/model/text_encoder.h"
#include "fastar/model/wan_dit.h"

namespace fastar {

class LoadedModel {
 public:
  // path: a model folder (config.json + safetensors) or a weights file; with random_weights_seed the
  // config alone, with deterministic random weights (benchmarks, smoke tests). Throws fastar::Error
  // naming the file on anything missing or malformed.
  static std::shared_ptr<const LoadedModel> load(const std::string& path, std::optional<uint64_t> random_weights_seed = {});
  // A model built in memory (tests, random-weight shapes); `name` is what describe() shows.
  static std::shared_ptr<const LoadedModel> from(WanModel model, std::string name, std::optional<TextEncoder> encoder = {});

  const WanModel& dit() const { return *model_; }
  const WanConfig& config() const { return model_->config(); }
  const std::string& name() const { return name_; }
  bool has_text_encoder() const { return encoder_.has_value(); }
  // Words of the model's own vocabulary; a fastar::Error for unknown words or a model without an encoder.
  Tensor encode_prompt(const std::string& text) const;
  // A prompt embedding [rows, text_dim] (e.g. umT5's output) checked and zero-padded to text_len.
  Tensor pad_prompt(const Tensor& context, const std::string& source) const;

 private:
  LoadedModel() = default;
  std::unique_ptr<WanModel> model_;
  std::optional<TextEncoder> encoder_;
  std::string name_;
};

}  // namespace fastar
