#include <cstdio>
#include <filesystem>
#include <map>

#include "fastar/apps/args.h"
#include "fastar/apps/commands.h"
#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/model/wan_dit.h"

namespace fastar::app {

int run_inspect(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {};
  Args args("inspect", specs, argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar inspect PATH",
                           "Prints a checkpoint's config, tensor count, parameter count and dtypes, and checks that\n"
                           "every tensor the config implies is present with the right shape. PATH is a model\n"
                           "folder, a .safetensors file or a .safetensors.index.json.",
                           specs)
                   .c_str(),
               stdout);
    return 0;
  }
  FASTAR_CHECK(args.positional().size() == 1, "fastar inspect: give exactly one PATH (see fastar inspect --help)");
  const std::string path = args.positional()[0];
  FASTAR_CHECK(std::filesystem::exists(path), path << ": no such file or folder");
  Checkpoint checkpoint = Checkpoint::open(path);

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
    config_path = locate_model_files(path).config;
  } catch (const Error&) {
    std::printf("config      none found beside the weights (a Wan model needs config.json)\n");
    return 0;
  }
  const WanConfig config = WanConfig::load(config_path);
  const WanNameLayout layout = detect_wan_layout(checkpoint);
  std::printf("config      %s (%s tensor names)\n%s", config_path.c_str(),
              layout == WanNameLayout::Original ? "original Wan" : "diffusers", config.summary().c_str());
  load_wan_weights(checkpoint, config);  // throws with the first problem
  std::printf("weights     all %zu tensors present with the shapes the config implies\n",
              wan_tensor_names(config, layout).size());
  return 0;
}

}  // namespace fastar::app
