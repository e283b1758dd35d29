// fastar bench: time of one chunk's DiT forward at several cache depths (llama-bench's -d idea).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "fastar/apps/args.h"
#include "fastar/apps/bench_rollout.h"
#include "fastar/apps/commands.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/core/error.h"
#include "fastar/model/wan_dit.h"
#include "fastar/rollout/noise.h"

#ifndef FASTAR_DEFAULT_MODEL
#define FASTAR_DEFAULT_MODEL ""
#endif

namespace fastar::app {

namespace {

const std::vector<OptionSpec> kSpecs = {
    {"model", "PATH", "model folder or config.json (with --random-weights)", "the model shipped with fastar"},
    {"random-weights", "SEED", "random weights for the model's config (no checkpoint needed)", ""},
    {"latent-size", "HxW", "latent frame size", "from the model config"},
    {"chunk-frames", "F", "latent frames per chunk", "3"},
    {"depths", "LIST", "cached latent frames to measure at", "0,3,6,12"},
    {"repeats", "N", "timed forwards per depth (median reported)", "3"},
    {"threads", "N", "CPU threads", "all cores"},
};

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    size_t used = 0;
    int64_t value = -1;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
    }
    FASTAR_CHECK(used == item.size() && value >= 0, "fastar bench: --depths must be comma-separated integers >= 0, got '" << text << "'");
    out.push_back(value);
  }
  return out;
}

}  // namespace

int run_bench(int argc, char** argv) {
  if (argc > 0 && std::string(argv[0]) == "rollout") return run_bench_rollout(argc - 1, argv + 1);
  Args args("bench", kSpecs, argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar bench [--model PATH] [--random-weights SEED] [--depths 0,3,6] [--repeats N]\n"
                           "       fastar bench rollout --help   (a whole rollout per policy: frames/s and memory per chunk)",
                           "Times one chunk's DiT forward (a denoising call: reads the cache, commits nothing)\n"
                           "with the dense cache filled to each depth, on the CPU. Prints a table.",
                           kSpecs)
                   .c_str(),
               stdout);
    return 0;
  }
  FASTAR_CHECK(args.positional().empty(), "fastar bench: unexpected argument '" << args.positional()[0] << "'");
  if (args.has("threads")) omp_set_num_threads(static_cast<int>(args.get_int("threads", 1, 1, 4096)));
  const std::string model_path = args.get("model", FASTAR_DEFAULT_MODEL);
  std::unique_ptr<WanModel> model;
  if (args.has("random-weights")) {
    std::string config_path = model_path;
    if (std::filesystem::is_directory(model_path)) config_path = locate_model_files(model_path).config;
    const WanConfig config = WanConfig::load(config_path);
    model = std::make_unique<WanModel>(config, random_wan_weights(config, static_cast<uint64_t>(args.get_int("random-weights", 0, 0, INT64_MAX))));
  } else {
    model = std::make_unique<WanModel>(WanModel::load(model_path));
  }
  const WanConfig& c = model->config();
  int64_t height = c.latent_height, width = c.latent_width;
  if (args.has("latent-size")) parse_latent_size("fastar bench", args.get("latent-size", ""), &height, &width);
  const int64_t chunk = args.get_int("chunk-frames", 3, 1, 1024);
  const int64_t repeats = args.get_int("repeats", 3, 1, 1000);
  const std::vector<int64_t> depths = parse_list(args.get("depths", "0,3,6,12"));

  const WanPrompt prompt = model->prepare_prompt(Tensor::zeros({c.text_len, c.text_dim}));
  Tensor latent = Tensor::zeros({c.in_dim, chunk, height, width});
  gaussian_noise(latent.data<float>(), latent.numel(), 1, 0);
  const int64_t tokens = (chunk / c.patch_t) * (height / c.patch_h) * (width / c.patch_w);
  // Models with per-frame actions get "none" (one-hot index 0) on every frame.
  Tensor actions;
  if (c.action_dim > 0) {
    actions = Tensor::zeros({chunk, c.action_dim});
    for (int64_t f = 0; f < chunk; ++f) actions.data<float>()[f * c.action_dim] = 1.0f;
  }
  std::printf("model dim %ld, %ld layers, %ld heads x %ld; chunk %ld frames = %ld tokens; %d threads\n", c.dim,
              c.num_layers, c.num_heads, c.head_dim(), chunk, tokens, omp_get_max_threads());
  std::printf("| cached frames | kv tokens | forward ms (median of %ld) | min ms |\n|---|---|---|---|\n", repeats);
  for (int64_t depth : depths) {
    DenseMemory memory(c.num_layers, c.num_heads, c.head_dim());
    WanForwardArgs fill;
    fill.prompt = &prompt;
    fill.memory = &memory;
    fill.commit = true;
    std::vector<float> clean(static_cast<size_t>(chunk), 0.0f);
    fill.timesteps = &clean;
    fill.latent = &latent;
    fill.actions = c.action_dim > 0 ? &actions : nullptr;
    for (int64_t f = 0; f < depth; f += chunk) {
      FASTAR_CHECK(depth % chunk == 0, "fastar bench: depths must be multiples of --chunk-frames");
      fill.frame_start = f;
      model->forward(fill);
    }
    std::vector<float> t(static_cast<size_t>(chunk), 937.5f);
    WanForwardArgs step = fill;
    step.timesteps = &t;
    step.commit = false;
    step.frame_start = depth;
    std::vector<double> ms;
    for (int64_t r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      model->forward(step);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("| %ld | %ld | %.1f | %.1f |\n", depth, depth / c.patch_t * (tokens / (chunk / c.patch_t)) + tokens,
                ms[ms.size() / 2], ms[0]);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace fastar::app
