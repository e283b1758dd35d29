#include "fastar/model/wan_model_folder.h"

#include <filesystem>

#include "fastar/core/error.h"

namespace fastar {

namespace fs = std::filesystem;

namespace {

// The first of `names` that exists in `folder` (a file or a folder, as `want_folder` says); "" = none.
std::string first_existing(const fs::path& folder, std::initializer_list<const char*> names, bool want_folder) {
  for (const char* name : names) {
    const fs::path p = folder / name;
    std::error_code ec;
    if (want_folder ? fs::is_directory(p, ec) : fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

// A folder holding spiece.model, among `candidates` of `folder`; "" = none.
std::string find_tokenizer(const fs::path& folder, std::initializer_list<const char*> candidates) {
  for (const char* name : candidates)
    if (fs::exists(folder / name / "spiece.model")) return (folder / name).string();
  return "";
}

void locate_original(const fs::path& root, WanModelFolder& out) {
  out.dit = root.string();
  // umT5: Wan's names first, then fastar's converted ones.
  out.tokenizer = find_tokenizer(root, {"google/umt5-xxl", "tokenizer"});
  out.text_encoder = first_existing(root, {"models_t5_umt5-xxl-enc-bf16.safetensors", "text_encoder.safetensors"}, false);
  const fs::path t5_pth = root / "models_t5_umt5-xxl-enc-bf16.pth";
  FASTAR_CHECK(!out.text_encoder.empty() || !fs::exists(t5_pth),
               t5_pth.string() << ": fastar reads the umT5 encoder as safetensors; convert it once with\n  "
                               << convert_wan_t5_command(t5_pth.string(),
                                                         (root / "models_t5_umt5-xxl-enc-bf16.safetensors").string()));
  out.vae = first_existing(root, {"Wan2.1_VAE.safetensors", "vae.safetensors"}, false);
  const fs::path vae_pth = root / "Wan2.1_VAE.pth";
  FASTAR_CHECK(!out.vae.empty() || !fs::exists(vae_pth),
               vae_pth.string() << ": fastar reads the Wan VAE as safetensors; convert it once with\n  "
                                << convert_wan_vae_command(vae_pth.string(), (root / "Wan2.1_VAE.safetensors").string()));
}

// The tiny decoder, at the root in both layouts; an unconverted .pth is an error giving the command.
void locate_tiny_decoder(const fs::path& root, WanModelFolder& out) {
  out.tiny_decoder = first_existing(root, {"taew2_1.safetensors", "lighttaew2_1.safetensors"}, false);
  if (!out.tiny_decoder.empty()) return;
  for (const char* stem : {"taew2_1", "lighttaew2_1"}) {
    const fs::path pth = root / (std::string(stem) + ".pth");
    FASTAR_CHECK(!fs::exists(pth), pth.string() << ": fastar reads the tiny decoder as safetensors; convert it once with\n  "
                                                << convert_taehv_command(pth.string(), (root / (std::string(stem) + ".safetensors")).string()));
  }
}

void locate_diffusers(const fs::path& root, WanModelFolder& out) {
  out.dit = (root / "transformer").string();
  out.tokenizer = find_tokenizer(root, {"tokenizer"});
  out.text_encoder = first_existing(root, {"text_encoder"}, true);
  out.vae = first_existing(root, {"vae"}, true);
}

}  // namespace

std::string WanModelFolder::layout_name() const {
  switch (layout) {
    case WanFolderLayout::Original: return "original Wan2.1";
    case WanFolderLayout::Diffusers: return "diffusers";
    case WanFolderLayout::File: break;
  }
  return "weights file";
}

std::string convert_wan_vae_command(const std::string& pth, const std::string& out) {
  return "python3 tools/convert_wan_parts.py vae " + pth + " " + out;
}

std::string convert_taehv_command(const std::string& pth, const std::string& out) {
  return "python3 tools/convert_taehv.py " + pth + " " + out;
}

std::string convert_wan_t5_command(const std::string& pth, const std::string& out) {
  return "python3 tools/convert_wan_parts.py t5 " + pth + " " + out;
}

WanModelFolder locate_wan_model_folder(const std::string& path) {
  FASTAR_CHECK(!path.empty(), "no model path given");
  FASTAR_CHECK(fs::exists(path), path << ": no such model file or folder");
  WanModelFolder out;
  out.root = path;
  const fs::path root(path);
  if (!fs::is_directory(root)) {
    out.dit = path;
    return out;
  }
  if (fs::is_directory(root / "transformer")) {
    out.layout = WanFolderLayout::Diffusers;
    locate_diffusers(root, out);
  } else {
    out.layout = WanFolderLayout::Original;
    locate_original(root, out);
  }
  locate_tiny_decoder(root, out);
  // umT5 needs both halves.
  const bool diffusers = out.layout == WanFolderLayout::Diffusers;
  FASTAR_CHECK(out.tokenizer.empty() || !out.text_encoder.empty(),
               path << ": the umT5 tokenizer " << out.tokenizer << " is here but not its text encoder; add "
                    << (diffusers ? "text_encoder/ (config.json + model*.safetensors) from the same -Diffusers repo"
                                  : "models_t5_umt5-xxl-enc-bf16.safetensors, made from Wan2.1's models_t5_umt5-xxl-enc-bf16.pth with\n  " +
                                        convert_wan_t5_command("models_t5_umt5-xxl-enc-bf16.pth",
                                                               (root / "models_t5_umt5-xxl-enc-bf16.safetensors").string())));
  FASTAR_CHECK(out.text_encoder.empty() || !out.tokenizer.empty(),
               path << ": the umT5 text encoder " << out.text_encoder << " is here but not its tokenizer; copy "
                    << (diffusers ? "tokenizer/ (spiece.model) from the same -Diffusers repo to "
                                  : "google/umt5-xxl/ (spiece.model) from Wan2.1's repo to ")
                    << (root / (diffusers ? "tokenizer" : "google/umt5-xxl")).string());
  return out;
}

}  // namespace fastar
