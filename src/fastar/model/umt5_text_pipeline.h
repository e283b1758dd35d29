// Prompt -> DiT context rows with umT5 (pipeline-spec.md §1 steps 1-3): Wan's cleaning and the umT5
// tokenizer (umt5_tokenizer.h), then the encoder on the real tokens (umt5_encoder.h), zero-padded to
// text_len rows. Loads from a model folder in any of these layouts:
//
//   layout                      tokenizer                 encoder weights
//   diffusers (Wan-*-Diffusers) tokenizer/spiece.model    text_encoder/ (config.json + model*.safetensors, HF names)
//   fastar converted            tokenizer/spiece.model    text_encoder.safetensors (Wan names; config from shapes)
//   Wan original                google/umt5-xxl/          models_t5_umt5-xxl-enc-bf16.safetensors (the .pth,
//                                                         converted to safetensors with its names kept)
#pragma once

#include <cstdint>
#include <string>

#include "fastar/core/tensor.h"
#include "fastar/model/umt5_encoder.h"
#include "fastar/model/umt5_tokenizer.h"

namespace fastar {

class Umt5TextPipeline {
 public:
  // text_len: the DiT's context length (Wan: 512).
  Umt5TextPipeline(Umt5Tokenizer tokenizer, Umt5Encoder encoder, int64_t text_len);
  static Umt5TextPipeline load(const std::string& folder, int64_t text_len = 512);

  Umt5Tokens tokenize(const std::string& prompt) const { return tokenizer_.encode(prompt, text_len_); }
  // [text_len, d_model] F32; rows >= the number of real tokens (</s> included) are zero.
  Tensor encode(const std::string& prompt) const;

  const Umt5Tokenizer& tokenizer() const { return tokenizer_; }
  const Umt5Encoder& encoder() const { return encoder_; }
  int64_t text_len() const { return text_len_; }

 private:
  Umt5Tokenizer tokenizer_;
  Umt5Encoder encoder_;
  int64_t text_len_;
};

}  // namespace fastar
