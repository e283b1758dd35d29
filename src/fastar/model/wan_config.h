// The Wan2.1 DiT configuration, read from a checkpoint's own config file (Wan's or diffusers').
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace fastar {

struct WanConfig {
  int64_t dim = 1536;
  int64_t ffn_dim = 8960;
  int64_t num_heads = 12;
  int64_t num_layers = 30;
  int64_t in_dim = 16;    // latent channels in
  int64_t out_dim = 16;   // latent channels out
  int64_t text_dim = 4096;
  int64_t text_len = 512;  // prompts are zero-padded to this many rows before the text MLP
  int64_t freq_dim = 256;
  int64_t patch_t = 1, patch_h = 2, patch_w = 2;
  float eps = 1e-6f;
  bool qk_norm = true;          // RMSNorm over the full dim on q and k
  bool cross_attn_norm = true;  // affine LayerNorm before cross-attention
  // fastar extension, off by default: per-frame conditioning vector (world-model actions) of this
  // width, embedded by Linear → SiLU → Linear and added to the time embedding. 0 = off.
  int64_t action_dim = 0;
  // fastar extension: default latent frame size for generation when the CLI gives none.
  int64_t latent_height = 60;
  int64_t latent_width = 104;
  // ARL² (docs/arl2.md): indices of the hybrid layers (softmax inside the chunk + a gated delta-rule
  // state as cross-frame memory), config.json's "hybrid_layers"; empty = none. LoRA deltas found in
  // the checkpoint are merged at load time with scale hybrid_lora_alpha / rank ("hybrid_lora_alpha";
  // ARL²'s release uses 32 with rank 16; the checkpoint does not store it).
  std::vector<int64_t> hybrid_layers;
  float hybrid_lora_alpha = 32.0f;
  // fastar extension: the generation defaults a model ships with, config.json's "fastar_defaults":
  // {"policy": "window", "window": 9, "sink": 0} (what the model was trained to roll out with; the
  // CLI's options override them). Empty / −1 = the CLI's own defaults; a negative value in the
  // file is an error.
  std::string default_policy;
  int64_t default_window = -1, default_sink = -1;
  // "ann_layers": the layers AnnSA/AnnCA sparsify by default (FAST-AR sparsifies the ~70% of layers
  // that are empirically sparse; chosen by measurement per model), as --ann-layers takes it ("0,2,5-7").
  std::string default_ann_layers;
  bool is_hybrid(int64_t layer) const;

  int64_t head_dim() const { return dim / num_heads; }
  int64_t patch_features_in() const { return in_dim * patch_t * patch_h * patch_w; }
  int64_t patch_features_out() const { return out_dim * patch_t * patch_h * patch_w; }

  // Accepts Wan's config ("dim", "num_heads", "in_dim", ...) and diffusers' ("num_attention_heads",
  // "attention_head_dim", "in_channels", ...). `source` names the file in error messages.
  static WanConfig from_json(const nlohmann::json& json, const std::string& source);
  // Reads a config.json file.
  static WanConfig load(const std::string& path);
  // Throws fastar::Error if the values cannot describe a Wan DiT that fastar runs, or if a size that
  // allocations are made from (dim, ffn_dim, num_heads, num_layers, text_len, ...) is outside its
  // range: far above every released Wan2.1 DiT, and low enough that no product of sizes overflows.
  void validate(const std::string& source) const;
  std::string summary() const;  // one line per field, for `fastar inspect`
};

}  // namespace fastar
