// A small random Wan model folder in both layouts users have (pipeline-spec.md §6), written in the
// test set-up so that CI needs no torch:
//
//   original (Wan2.1 repo + a converted forcing .pt)     diffusers (…-Diffusers repo)
//   config.json, diffusion_pytorch_model.safetensors      transformer/{config.json, diffusion_pytorch_model.safetensors}
//   google/umt5-xxl/ (spiece.model, ...)                  tokenizer/
//   models_t5_umt5-xxl-enc-bf16.safetensors (Wan names)   text_encoder/{config.json, model.safetensors} (HF names)
//   Wan2.1_VAE.safetensors (original names)               vae/{config.json, diffusion_pytorch_model.safetensors}
//   taew2_1.safetensors (the tiny decoder, at the root of both)
//
// The same values in both: a random DiT (2 layers, dim 128, in/out 16 = the VAE's z_dim, text_dim 64
// = the tiny umT5's d_model, text_len 16, 4×6 latents → 32×48 frames), the tiny umT5 golden
// (tests/model/golden/umt5_tiny: its BF16 Wan-named weights, renamed for the diffusers copy) and the
// tiny VAE golden (base_dim 8, the real topology), a narrow random taew2_1 (widths 16/8/8/8, the real
// layer structure). Hence both layouts must give identical frames.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "fastar/core/safetensors.h"
#include "fastar/model/taehv_weights.h"
#include "fastar/model/wan_vae_weights.h"
#include "fastar/model/wan_weights.h"
#include "test_util.h"

namespace fastar::testing {

struct TinyWanFolders {
  std::string original, diffusers;
};

// The DiT's config as Wan writes it (plus fastar's text_len and latent size), or as diffusers does.
inline std::string tiny_wan_dit_config(bool diffusers_layout, int64_t in_out = 16, int64_t text_dim = 64) {
  const std::string common = "\"ffn_dim\": 256, \"freq_dim\": 256, \"num_layers\": 2, \"text_dim\": " + std::to_string(text_dim) +
                             ", \"text_len\": 16, \"patch_size\": [1, 2, 2], \"eps\": 1e-06, \"cross_attn_norm\": true, "
                             "\"latent_height\": 4, \"latent_width\": 6";
  const std::string io = std::to_string(in_out);
  if (diffusers_layout)
    return "{\"_class_name\": \"WanTransformer3DModel\", \"attention_head_dim\": 64, \"num_attention_heads\": 2, "
           "\"in_channels\": " + io + ", \"out_channels\": " + io +
           ", \"qk_norm\": \"rms_norm_across_heads\", \"image_dim\": null, \"added_kv_proj_dim\": null, "
           "\"rope_max_seq_len\": 1024, " + common + "}\n";
  return "{\"_class_name\": \"WanModel\", \"model_type\": \"t2v\", \"dim\": 128, \"num_heads\": 2, \"in_dim\": " + io +
         ", \"out_dim\": " + io + ", \"qk_norm\": true, " + common + "}\n";
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// Wan's umT5 names → Hugging Face's (umt5_weights.h has the table).
inline std::string umt5_hf_name(const std::string& wan) {
  if (wan == "token_embedding.weight") return "shared.weight";
  if (wan == "norm.weight") return "encoder.final_layer_norm.weight";
  const size_t dot = wan.find('.', 7);  // "blocks.N."
  const std::string n = wan.substr(7, dot - 7), rest = wan.substr(dot + 1);
  const std::string block = "encoder.block." + n + ".layer.";
  const std::pair<const char*, const char*> map[] = {
      {"norm1.weight", "0.layer_norm.weight"},          {"attn.q.weight", "0.SelfAttention.q.weight"},
      {"attn.k.weight", "0.SelfAttention.k.weight"},    {"attn.v.weight", "0.SelfAttention.v.weight"},
      {"attn.o.weight", "0.SelfAttention.o.weight"},
      {"pos_embedding.embedding.weight", "0.SelfAttention.relative_attention_bias.weight"},
      {"norm2.weight", "1.layer_norm.weight"},          {"ffn.gate.0.weight", "1.DenseReluDense.wi_0.weight"},
      {"ffn.fc1.weight", "1.DenseReluDense.wi_1.weight"}, {"ffn.fc2.weight", "1.DenseReluDense.wo.weight"},
  };
  for (const auto& [from, to] : map)
    if (rest == from) return block + to;
  return "unmapped." + wan;
}

// The DiT's random weights with `layout` names (F32).
inline void write_tiny_dit(const std::string& config_json, const std::filesystem::path& folder, WanNameLayout layout,
                           const std::string& config_name = "config.json") {
  write_text(folder / config_name, config_json);
  const WanConfig config = WanConfig::load((folder / config_name).string());
  write_safetensors((folder / "diffusion_pytorch_model.safetensors").string(),
                    wan_weights_to_named(random_wan_weights(config, 7), config, layout));
}

// Writes both layouts under `dir` (fresh folders).
inline TinyWanFolders write_tiny_wan_folders(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path golden = source_path("tests/model/golden");
  const fs::path original = fs::path(dir) / "wan_original", diffusers = fs::path(dir) / "wan_diffusers";
  fs::remove_all(original);
  fs::remove_all(diffusers);
  // DiT.
  write_tiny_dit(tiny_wan_dit_config(false), original, WanNameLayout::Original);
  write_tiny_dit(tiny_wan_dit_config(true), diffusers / "transformer", WanNameLayout::Diffusers);
  // umT5: tokenizer folder copied; BF16 Wan-named weights, renamed to HF names for diffusers.
  for (const fs::path& to : {original / "google" / "umt5-xxl", diffusers / "tokenizer"}) {
    fs::create_directories(to);
    fs::copy(golden / "umt5_tiny" / "tokenizer", to, fs::copy_options::recursive);
  }
  const fs::path wan_t5 = golden / "umt5_tiny" / "wan_text_encoder_bf16.safetensors";
  fs::copy_file(wan_t5, original / "models_t5_umt5-xxl-enc-bf16.safetensors");
  {
    const Checkpoint t5 = Checkpoint::open(wan_t5.string());
    std::vector<std::pair<std::string, Tensor>> renamed;
    for (const std::string& name : t5.names()) renamed.emplace_back(umt5_hf_name(name), t5.tensor(name));
    fs::create_directories(diffusers / "text_encoder");
    fs::copy_file(golden / "umt5_tiny" / "text_encoder" / "config.json", diffusers / "text_encoder" / "config.json");
    write_safetensors((diffusers / "text_encoder" / "model.safetensors").string(), renamed);
  }
  // VAE: the golden's original names; the same values under diffusers names.
  const fs::path wan_vae = golden / "wan_vae_tiny_original.safetensors";
  fs::copy_file(wan_vae, original / "Wan2.1_VAE.safetensors");
  write_text(diffusers / "vae" / "config.json",
             "{\"_class_name\": \"AutoencoderKLWan\", \"base_dim\": 8, \"z_dim\": 16, \"dim_mult\": [1, 2, 4, 4], "
             "\"num_res_blocks\": 2, \"temperal_downsample\": [false, true, true]}\n");
  write_safetensors((diffusers / "vae" / "diffusion_pytorch_model.safetensors").string(),
                    wan_vae_weights_to_named(load_wan_vae_decoder_weights(wan_vae.string()), WanVaeNameLayout::Diffusers));
  write_text(diffusers / "model_index.json", "{\"_class_name\": \"WanPipeline\"}\n");
  // The tiny decoder: the same file at the root of both.
  TaehvConfig tiny;
  tiny.widths = {16, 8, 8, 8};
  const auto tiny_weights = taehv_weights_to_named(random_taehv_decoder_weights(tiny, 11));
  for (const fs::path& root : {original, diffusers}) write_safetensors((root / "taew2_1.safetensors").string(), tiny_weights);
  return {original.string(), diffusers.string()};
}

}  // namespace fastar::testing
