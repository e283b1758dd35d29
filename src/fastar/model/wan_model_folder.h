// The parts of a Wan model folder (pipeline-spec.md §6, "Checkpoint files and loading"): where the
// DiT, the umT5 text encoder with its tokenizer and the Wan VAE are, in either layout users have.
//
//   layout     DiT                                   umT5 tokenizer      umT5 encoder                               VAE
//   original   config.json + diffusion_pytorch_      google/umt5-xxl/    models_t5_umt5-xxl-enc-bf16.safetensors    Wan2.1_VAE.safetensors
//   (Wan2.1)   model*.safetensors (a forcing .pt     (or tokenizer/)     (or text_encoder.safetensors)              (or vae.safetensors)
//              converted by convert_forcing_checkpoint.py)
//   diffusers  transformer/                          tokenizer/          text_encoder/                              vae/
//   either     the tiny decoder at the root: taew2_1.safetensors or lighttaew2_1.safetensors (tools/convert_taehv.py)
//
// The pickled `.pth` files Wan ships (the VAE, umT5) are read once converted to safetensors by
// tools/convert_wan_parts.py; a folder holding a `.pth` without its conversion is an error that
// gives the command. A part that is there in half (a tokenizer without its encoder, or the reverse)
// is an error naming what is missing. Parts that are absent altogether are simply absent: the DiT
// alone still runs on prompt embeddings and writes its latents.
#pragma once

#include <string>
#include <vector>

namespace fastar {

enum class WanFolderLayout {
  File,       // a weights file (config.json beside it): the DiT alone
  Original,   // a folder with config.json + the DiT's safetensors (Wan2.1's repo, a converted forcing .pt, fastar's models)
  Diffusers,  // a folder with transformer/ (a `…-Diffusers` repo)
};

struct WanModelFolder {
  WanFolderLayout layout = WanFolderLayout::File;
  std::string root;            // the path given
  std::string dit;             // what WanModel::load takes: a folder or a weights file
  std::string tokenizer;       // umT5 tokenizer folder (holds spiece.model); "" = none
  std::string text_encoder;    // umT5 encoder: a folder (diffusers) or a safetensors file; "" = none
  std::string vae;             // Wan VAE: a folder (diffusers vae/) or a safetensors file; "" = none
  // The tiny decoder (pipeline-spec.md §3: TAEHV taew2_1 or LightTAE lighttaew2_1), a safetensors file
  // made by tools/convert_taehv.py, at the folder's root in either layout; "" = none.
  std::string tiny_decoder;

  bool has_umt5() const { return !text_encoder.empty(); }
  bool has_vae() const { return !vae.empty(); }
  bool has_tiny_decoder() const { return !tiny_decoder.empty(); }
  // "original Wan2.1", "diffusers" or "weights file".
  std::string layout_name() const;
};

// Finds the parts of `path`; throws fastar::Error naming the file (and the command that makes it)
// for an unconverted .pth or a part that is there in half. Loads nothing.
WanModelFolder locate_wan_model_folder(const std::string& path);

// The commands that make a folder's parts from the files users download, for messages.
std::string convert_wan_vae_command(const std::string& pth, const std::string& out);
std::string convert_wan_t5_command(const std::string& pth, const std::string& out);
std::string convert_taehv_command(const std::string& pth, const std::string& out);

}  // namespace fastar
