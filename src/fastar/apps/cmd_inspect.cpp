#include <cstdio>
#include <filesystem>
#include <map>

#include "fastar/apps/args.h"
#include "fastar/apps/commands.h"
#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/model/wan_dit.h"
#include "fastar/session/loaded_model.h"

namespace fastar::app {

int run_inspect(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {};
  Args args("inspect", specs, argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar inspect PATH",
                           "Prints a checkpoint's config, tensor count, parameter count and dtypes, and checks that\n"
                           "every tensor the config implies is present with the right shape. PATH is a model\n"
                           "folder, a .safetensors file or a .safetensors.index.json. For a model folder (original\n"
                           "Wan2.1 or diffusers layout) it also shows and loads every other part: the text encoder\n"
                           "(umT5 + tokenizer, or the model's own) and the Wan VAE, and checks that they fit the DiT.",
                           specs)
                   .c_str(),
               stdout);
    return 0;
  }
  FASTAR_CHECK(args.positional().size() == 1, "fastar inspect: give exactly one PATH (see fastar inspect --help)");
  const std::string path = args.positional()[0];
  FASTAR_CHECK(std::filesystem::exists(path), path << ": no such file or folder");
  const WanModelFolder folder = locate_wan_model_folder(path);
  if (folder.layout != WanFolderLayout::File) std::printf("model       %s (%s layout)\n", path.c_str(), folder.layout_name().c_str());
  Checkpoint checkpoint = Checkpoint::open(folder.dit);

  std::map<std::string, int64_t> dtype_counts;
  int64_t parameters = 0, bytes = 0;
  for (const std::string& name : checkpoint.names()) {
    const TensorEntry& entry = checkpoint.at(name);
    dtype_counts[std::string(dtype_name(entry.dtype))] += 1;
    parameters += shape_numel(entry.shape);
    bytes += entry.nbytes;
  }
  std::printf("checkpoint  %s\n", checkpoint.path().c_str());
  for (const std::string& file : checkpoint.files()) std::printf("  file      %s\n", file.c_str());
  std::printf("tensors     %lld\n", static_cast<long long>(checkpoint.num_tensors()));
  std::printf("parameters  %lld (%.3f M, %.2f MB)\n", static_cast<long long>(parameters), parameters / 1e6, bytes / 1e6);
  std::printf("dtypes     ");
  for (const auto& [name, count] : dtype_counts) std::printf(" %s×%lld", name.c_str(), static_cast<long long>(count));
  std::printf("\n");

  std::string config_path;
  try {
    config_path = locate_model_files(folder.dit).config;
  } catch (const Error&) {
    std::printf("config      none found beside the weights (a Wan model needs config.json)\n");
    return 0;
  }
  const WanConfig config = WanConfig::load(config_path);
  const WanNameLayout layout = detect_wan_layout(checkpoint);
  std::printf("config      %s (%s tensor names)\n%s", config_path.c_str(),
              layout == WanNameLayout::Original ? "original Wan" : "diffusers", config.summary().c_str());
  // Every part, loaded as generate loads them (throws with the first problem, naming the file).
  const std::shared_ptr<const LoadedModel> model = LoadedModel::load(path);
  std::printf("weights     all %zu tensors present with the shapes the config implies\n",
              wan_tensor_names(config, layout).size());
  if (const Umt5TextPipeline* t5 = model->umt5()) {
    const Umt5Config& c = t5->encoder().config();
    std::printf("text        umT5 encoder %s: d_model %lld, %lld layers, %lld heads x %lld, d_ff %lld, vocabulary %lld\n",
                t5->encoder().source().c_str(), static_cast<long long>(c.d_model), static_cast<long long>(c.num_layers),
                static_cast<long long>(c.num_heads), static_cast<long long>(c.d_kv), static_cast<long long>(c.d_ff),
                static_cast<long long>(c.vocab_size));
    std::printf("tokenizer   %s (ids < %lld); prompts give [%lld, %lld] context rows\n", t5->tokenizer().model_path().c_str(),
                static_cast<long long>(t5->tokenizer().id_limit()), static_cast<long long>(config.text_len),
                static_cast<long long>(c.d_model));
  } else if (const TextEncoder* own = model->own_text_encoder()) {
    std::printf("text        the model's own word-level encoder (config.json text_encoder, %zu words in vocab.json)\n",
                own->vocabulary().size());
  } else {
    std::printf("text        none: prompts as embeddings (--prompt-embeds); a Wan folder takes umT5 (%s)\n",
                folder.layout == WanFolderLayout::Diffusers ? "text_encoder/ + tokenizer/"
                                                            : "models_t5_umt5-xxl-enc-bf16.safetensors + google/umt5-xxl/");
  }
  if (model->has_vae()) {
    const WanVaeConfig& v = model->vae()->config;
    const WanVaeNameLayout names = detect_wan_vae_layout(Checkpoint::open(folder.vae));
    std::printf("vae         Wan2.1 VAE decoder %s (%s names, %zu tensors): base_dim %lld, z_dim %lld; frames %lldx%lld, "
                "T latents -> 1 + 4(T-1) frames\n",
                folder.vae.c_str(), names == WanVaeNameLayout::Original ? "original Wan" : "diffusers",
                wan_vae_tensor_names(v, names).size(), static_cast<long long>(v.base_dim), static_cast<long long>(v.z_dim),
                static_cast<long long>(8 * config.latent_height), static_cast<long long>(8 * config.latent_width));
  } else {
    std::printf("vae         none: frames are %s (a Wan folder takes %s)\n",
                config.in_dim == 3 ? "the model's pixel output" : "the latents' first three channels",
                folder.layout == WanFolderLayout::Diffusers ? "vae/" : "Wan2.1_VAE.safetensors");
  }
  if (model->has_tiny_decoder()) {
    const TaehvDecoderWeights& t = *model->tiny_decoder();
    std::printf("tiny        %s decoder %s: widths %lld/%lld/%lld/%lld; T latents -> 1 + 4(T-1) frames (--decoder tiny)\n",
                taehv_variant_name(t.variant), folder.tiny_decoder.c_str(), static_cast<long long>(t.config.widths[0]),
                static_cast<long long>(t.config.widths[1]), static_cast<long long>(t.config.widths[2]),
                static_cast<long long>(t.config.widths[3]));
  } else {
    std::printf("tiny        none (a folder takes taew2_1.safetensors or lighttaew2_1.safetensors, made by %s)\n",
                convert_taehv_command("taew2_1.pth", "MODEL/taew2_1.safetensors").c_str());
  }
  return 0;
}

}  // namespace fastar::app
