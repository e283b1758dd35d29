#include "fastar/model/umt5_text_pipeline.h"

#include <filesystem>

#include "fastar/core/error.h"
#include "fastar/model/wan_model_folder.h"

namespace fastar {

namespace fs = std::filesystem;

namespace {

std::string find_tokenizer(const fs::path& folder) {
  for (const fs::path& candidate : {folder / "tokenizer", folder / "google" / "umt5-xxl", folder})
    if (fs::exists(candidate / "spiece.model")) return candidate.string();
  FASTAR_FAIL(folder.string() << ": no umT5 tokenizer (looked for tokenizer/spiece.model, google/umt5-xxl/spiece.model "
                                 "and spiece.model); copy the model's tokenizer folder there");
}

std::string find_encoder(const fs::path& folder) {
  const fs::path diffusers = folder / "text_encoder";
  if (fs::is_directory(diffusers)) return diffusers.string();
  for (const char* name : {"text_encoder.safetensors", "models_t5_umt5-xxl-enc-bf16.safetensors"})
    if (fs::exists(folder / name)) return (folder / name).string();
  const fs::path pth = folder / "models_t5_umt5-xxl-enc-bf16.pth";
  FASTAR_CHECK(!fs::exists(pth), pth.string() << ": fastar reads safetensors only; convert it once, keeping its names:\n  "
                                              << convert_wan_t5_command(pth.string(),
                                                                        (folder / "models_t5_umt5-xxl-enc-bf16.safetensors").string()));
  FASTAR_FAIL(folder.string() << ": no umT5 text encoder (looked for text_encoder/, text_encoder.safetensors and "
                                 "models_t5_umt5-xxl-enc-bf16.safetensors)");
}

}  // namespace

Umt5TextPipeline::Umt5TextPipeline(Umt5Tokenizer tokenizer, Umt5Encoder encoder, int64_t text_len)
    : tokenizer_(std::move(tokenizer)), encoder_(std::move(encoder)), text_len_(text_len) {
  FASTAR_CHECK(text_len_ >= 1, "umT5 text_len " << text_len_ << " must be at least 1");
  FASTAR_CHECK(tokenizer_.id_limit() <= encoder_.config().vocab_size,
               tokenizer_.model_path() << ": the tokenizer emits ids up to " << tokenizer_.id_limit() - 1
                                       << " but the encoder " << encoder_.source() << " has "
                                       << encoder_.config().vocab_size
                                       << " embedding rows; use the tokenizer shipped with these weights");
}

Umt5TextPipeline Umt5TextPipeline::load(const std::string& folder, int64_t text_len) {
  FASTAR_CHECK(fs::is_directory(folder), folder << ": not a folder; give the model folder holding the umT5 tokenizer "
                                                   "and text encoder");
  Umt5Tokenizer tokenizer = Umt5Tokenizer::load(find_tokenizer(folder));
  Umt5Encoder encoder = Umt5Encoder::load(find_encoder(folder));
  return Umt5TextPipeline(std::move(tokenizer), std::move(encoder), text_len);
}

Tensor Umt5TextPipeline::encode(const std::string& prompt) const {
  const Umt5Tokens tokens = tokenize(prompt);
  return encoder_.encode(tokens.ids, tokens.length);
}

}  // namespace fastar
