#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>

#include "fastar/apps/args.h"
#include "fastar/apps/policy_cli.h"
#ifdef FASTAR_HAVE_CUDA
#include "fastar/attention/cuda/cuda_policies.h"
#endif
#include "fastar/apps/commands.h"
#include "fastar/apps/progress.h"
#include "fastar/apps/ann_cli.h"
#include "fastar/apps/tempcache_cli.h"
#include "fastar/attention/arl2_hybrid_memory.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/attention/rolling_sink_memory.h"
#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/model/text_encoder.h"
#include "fastar/model/wan_dit.h"
#include "fastar/rollout/frame_sink.h"
#include "fastar/rollout/latent_preview.h"
#include "fastar/rollout/rolling_forcing.h"
#include "fastar/rollout/self_forcing.h"
#include "fastar/world/actions.h"

#ifndef FASTAR_DEFAULT_MODEL
#define FASTAR_DEFAULT_MODEL ""
#endif

namespace fastar::app {

#ifdef FASTAR_HAVE_CUDA
// The Self-Forcing rollout on the GPU; calls on_chunk(x0, kv bytes, kv frames) per chunk.
void run_cuda_rollout(const WanModel& model, const WanPrompt& prompt, const RolloutConfig& config,
                      const cuda::CudaPolicySpec& policy, int64_t chunks,
                      const std::function<const Tensor*(int64_t chunk)>& chunk_actions,
                      const std::function<void(const Tensor&, int64_t, int64_t)>& on_chunk);
#endif

namespace {

const std::vector<OptionSpec> kSpecs = {
    {"model", "PATH", "model folder (config.json + safetensors) or weights file", "the model shipped with fastar"},
    {"random-weights", "SEED", "use deterministic random weights for the model's config (benchmarks, smoke tests)", ""},
    {"prompt-embeds", "FILE", "safetensors with the prompt embedding [rows, text_dim] (umT5 output); zero-padded to text_len", "empty prompt (all zeros)"},
    {"prompt", "TEXT", "prompt text, for models with their own text encoder (words of MODEL/vocab.json)", "empty prompt"},
    {"actions", "STR", "per-frame actions of action models: . none, U up, D down, L left, R right (rest: none)", "all none"},
    {"frames", "N", "latent frames to generate (rounded up to whole chunks; the first N are written)", "12"},
    {"seed", "S", "noise seed", "0"},
    {"schedule", "NAME", "self-forcing (chunk by chunk) | rolling-forcing (rolling window, own sink cache)", "self-forcing"},
    {"policy", "NAME", "cross-frame memory for self-forcing: dense | window | arl2 (ARL² hybrid layers; the others dense, or window with --window/--sink) | tempcache (merged KV, with --window/--sink: merge, then evict); add +annsa and/or +annca for sparse attention (e.g. tempcache+annsa+annca)", "the model's fastar_defaults (shipped world model: window, W 9, S 0); arl2 for hybrid models; else dense"},
    {"window", "W", "window (and tempcache) policy: recent latent frames kept", "the model's fastar_defaults, else 9"},
    {"sink", "S", "window (and tempcache) policy: first frames kept as an attention sink", "the model's fastar_defaults, else 3"},
    {"chunk-frames", "F", "latent frames per chunk", "3"},
    {"steps", "LIST", "denoising steps before warping", "1000,750,500,250; rolling-forcing: 1000,800,600,400,200"},
    {"shift", "S", "timestep shift", "5"},
    {"latent-size", "HxW", "latent frame size", "from the model config"},
    {"out", "DIR|FILE.mp4", "output: a folder of PNG frames or an MP4 file", "out.mp4"},
    {"fps", "N", "frame rate of the MP4", "16"},
    {"threads", "N", "CPU threads", "all cores"},
    {"device", "NAME", "cpu | cuda (self-forcing schedule; bf16 on the GPU)", "cpu"},
};

Tensor load_prompt_embedding(const std::string& file, const WanConfig& config) {
  Checkpoint checkpoint = Checkpoint::open(file);
  const std::vector<std::string> names = checkpoint.names();
  std::string name;
  if (checkpoint.find("context")) name = "context";
  else if (names.size() == 1) name = names[0];
  FASTAR_CHECK(!name.empty(), file << ": a prompt-embedding file needs a tensor named 'context' (or exactly one tensor); found "
                                   << names.size() << " tensors");
  Tensor context = checkpoint.tensor(name);
  if (context.dim() == 3 && context.size(0) == 1) context = context.reshape({context.size(1), context.size(2)});
  return pad_prompt_context(context, config, file + " tensor '" + name + "'");
}


}  // namespace

// kSpecs plus the TempCache options (tempcache_cli.h).
const std::vector<OptionSpec>& generate_specs() {
  static const std::vector<OptionSpec> specs = [] {
    std::vector<OptionSpec> all = kSpecs;
    all.insert(all.end(), tempcache_option_specs().begin(), tempcache_option_specs().end());
    all.insert(all.end(), ann_option_specs().begin(), ann_option_specs().end());
    return all;
  }();
  return specs;
}

int run_generate(int argc, char** argv) {
  Args args("generate", generate_specs(), argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar generate [--model PATH] [--prompt-embeds FILE] --frames N --seed S --policy dense|window --out DIR|FILE.mp4",
                           "Rolls out a causal Wan video model chunk by chunk (Self-Forcing schedule) and writes the\n"
                           "frames. Until a model has a decoder, frames are its latents' first three channels as RGB.",
                           generate_specs())
                   .c_str(),
               stdout);
    return 0;
  }
  FASTAR_CHECK(args.positional().empty(), "fastar generate: unexpected argument '" << args.positional()[0]
                                                                                 << "' (see fastar generate --help)");
  const std::string device = args.get("device", "cpu");
  FASTAR_CHECK(device == "cpu" || device == "cuda", "fastar generate: unknown --device '" << device << "'; choose cpu or cuda");
#ifndef FASTAR_HAVE_CUDA
  FASTAR_CHECK(device == "cpu", "fastar generate: --device cuda is not available: this build has no CUDA backend "
                                "(install the CUDA toolkit and rebuild; CMake turns FASTAR_CUDA on when nvcc is found)");
#endif
  if (args.has("threads")) omp_set_num_threads(static_cast<int>(args.get_int("threads", 1, 1, 4096)));

  // Model.
  std::string model_path = args.get("model", FASTAR_DEFAULT_MODEL);
  FASTAR_CHECK(!model_path.empty(), "fastar generate: no --model given and this build has no default model");
  const auto load_start = std::chrono::steady_clock::now();
  std::unique_ptr<WanModel> model;
  if (args.has("random-weights")) {
    std::string config_path = model_path;
    if (std::filesystem::is_directory(model_path)) config_path = locate_model_files(model_path).config;
    WanConfig config = WanConfig::load(config_path);
    const auto seed = static_cast<uint64_t>(args.get_int("random-weights", 0, 0, INT64_MAX));
    model = std::make_unique<WanModel>(config, random_wan_weights(config, seed));
    std::fprintf(stderr, "model: %s with random weights (seed %llu)\n", config_path.c_str(), static_cast<unsigned long long>(seed));
  } else {
    model = std::make_unique<WanModel>(WanModel::load(model_path));
    std::fprintf(stderr, "model: %s\n", model_path.c_str());
  }
  const WanConfig& config = model->config();

  // Rollout settings.
  RolloutConfig rollout_config;
  rollout_config.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, INT64_MAX));
  rollout_config.schedule.frames_per_chunk = args.get_int("chunk-frames", 3, 1, 1024);
  const std::string schedule = args.get("schedule", "self-forcing");
  FASTAR_CHECK(schedule == "self-forcing" || schedule == "rolling-forcing",
               "fastar generate: unknown --schedule '" << schedule << "'; choose self-forcing or rolling-forcing");
  const bool rolling = schedule == "rolling-forcing";
  rollout_config.schedule.denoising_steps =
      SelfForcingSchedule::parse_steps(args.get("steps", rolling ? "1000,800,600,400,200" : "1000,750,500,250"));
  rollout_config.schedule.shift = static_cast<float>(args.get_double("shift", 5.0));
  rollout_config.latent_height = config.latent_height;
  rollout_config.latent_width = config.latent_width;
  if (args.has("latent-size")) parse_latent_size("fastar generate", args.get("latent-size", ""), &rollout_config.latent_height,
                                                  &rollout_config.latent_width);
  rollout_config.schedule.validate();
  const int64_t frames = args.get_int("frames", 12, 1, INT64_MAX / 2);
  const int64_t chunk_frames = rollout_config.schedule.frames_per_chunk;
  const int64_t chunks = (frames + chunk_frames - 1) / chunk_frames;

  // Memory policy (policy_cli.h); Rolling Forcing brings its own cache.
  const bool hybrid_model = !config.hybrid_layers.empty();  // ARL² (docs/arl2.md)
  CpuPolicy cpu_policy;
  if (rolling) {
    // Rolling Forcing's own cache (wan-spec.md §5): one block of sink, 24 frames held, 21 attended;
    // the window must fit: sink + window blocks <= 21 frames.
    FASTAR_CHECK(!hybrid_model, "fastar generate: ARL² hybrid layers run only with --schedule self-forcing");
    FASTAR_CHECK(!args.has("policy") && !args.has("window") && !args.has("sink"),
                 "fastar generate: --policy/--window/--sink apply to --schedule self-forcing; rolling-forcing uses its own "
                 "sink cache (1 block sink, 24 frames held, 21 attended)");
    FASTAR_CHECK(!has_tempcache_options(args), "fastar generate: the TempCache options apply to --schedule self-forcing");
    cpu_policy.memory = std::make_unique<RollingSinkMemory>(config.num_layers, config.num_heads, config.head_dim(),
                                                            chunk_frames / config.patch_t, 24 / config.patch_t,
                                                            21 / config.patch_t);
  } else {
    cpu_policy = make_cpu_policy(args, args.get("policy", ""), *model, rollout_config.schedule.timesteps(), "fastar generate");
  }
  const std::string policy = cpu_policy.parts.base;
  const AnnPolicy ann = cpu_policy.parts;
  std::unique_ptr<CrossFrameMemory>& memory = cpu_policy.memory;
  TempCacheMemory* tempcache = cpu_policy.tempcache;
  const AnnModules& ann_modules = cpu_policy.ann;
  rollout_config.cross_attention = ann_modules.annca.get();

  // Prompt.
  Tensor context;
  FASTAR_CHECK(!(args.has("prompt") && args.has("prompt-embeds")),
               "fastar generate: give either --prompt or --prompt-embeds, not both");
  if (args.has("prompt")) {
    FASTAR_CHECK(TextEncoder::available(model_path),
                 "fastar generate: --prompt needs a model with its own text encoder (a 'text_encoder' section in "
                 "config.json); this model takes umT5 embeddings: pass --prompt-embeds FILE");
    const TextEncoder encoder = TextEncoder::load(model_path);
    const std::string text = args.get("prompt", "");
    context = encoder.encode(text);
    std::fprintf(stderr, "prompt: \"%s\" (%zu words, text encoder of %s)\n", text.c_str(), encoder.tokenize(text).size(),
                 model_path.c_str());
  } else if (args.has("prompt-embeds")) {
    context = load_prompt_embedding(args.get("prompt-embeds", ""), config);
  } else {
    context = Tensor::zeros({config.text_len, config.text_dim});
    std::fprintf(stderr, "prompt: none given (--prompt-embeds); using the empty (all-zero) prompt embedding\n");
  }
  const WanPrompt prompt = model->prepare_prompt(context);
  // Actions: one per frame, one-hot over (none, up, down, left, right) for world models (action_dim 5).
  std::vector<Tensor> actions;  // per chunk: [chunk_frames, action_dim]
  FASTAR_CHECK(!args.has("actions") || config.action_dim == world::kNumActions,
               "fastar generate: --actions needs a model with " << world::kNumActions << " one-hot actions (config action_dim "
                                                                << world::kNumActions << "); this model has action_dim "
                                                                << config.action_dim);
  if (config.action_dim > 0) {
    actions = world::action_chunks(world::parse_actions(args.get("actions", ""), chunks * chunk_frames), chunks, chunk_frames,
                                   config.action_dim);  // not a world model: zeros
    std::fprintf(stderr, "actions: %s\n", config.action_dim == world::kNumActions
                                             ? (args.has("actions") ? args.get("actions", "").c_str() : "all none (no --actions given)")
                                             : "zeros (this model's action_dim is not the world's 5)");
  }
  auto chunk_actions = [&](int64_t chunk) -> const Tensor* {
    return actions.empty() ? nullptr : &actions[static_cast<size_t>(std::min<int64_t>(chunk, chunks - 1))];
  };

  // Output.
  const std::string out = args.get("out", "out.mp4");
  std::unique_ptr<FrameSink> sink = make_frame_sink(out, static_cast<int>(args.get_int("fps", 16, 1, 1000)));
  if (config.in_dim == 3)
    std::fprintf(stderr, "output: %s; the model works in pixel space: its output is the frame\n", sink->describe().c_str());
  else
    std::fprintf(stderr, "output: %s; frames are the latents' first three channels as RGB (this model has no decoder)\n",
                 sink->describe().c_str());
  std::fprintf(stderr, "rollout: %s, %lld latent frames in %lld chunks of %lld, latent %lldx%lld, %zu steps, memory %s, seed %llu, %d threads (load %.2f s)\n",
               schedule.c_str(), static_cast<long long>(frames), static_cast<long long>(chunks), static_cast<long long>(chunk_frames),
               static_cast<long long>(rollout_config.latent_height), static_cast<long long>(rollout_config.latent_width),
               rollout_config.schedule.denoising_steps.size(), memory->describe().c_str(),
               static_cast<unsigned long long>(rollout_config.seed), omp_get_max_threads(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count());

  ProgressBar progress(frames);
  int64_t written = 0;
  auto write_chunk = [&](const Tensor& x0, int64_t kv_bytes, int64_t kv_frames) {
    for (int64_t f = 0; f < chunk_frames && written < frames; ++f, ++written) sink->write(latent_frame_to_rgb(x0, f));
    char extra[128];
    std::snprintf(extra, sizeof extra, "kv %.1f MB (%lld frames/layer)", kv_bytes / 1e6, static_cast<long long>(kv_frames));
    progress.update(written, extra);
  };
  if (device == "cuda") {
#ifdef FASTAR_HAVE_CUDA
    FASTAR_CHECK(!rolling, "fastar generate --device cuda runs the self-forcing schedule for now; use --device cpu");
    cuda::CudaPolicySpec spec;
    spec.policy = policy;
    if (ann.annsa) {  // the CPU policy's AnnSA options (their blocks default to the Hopper kernel's 128x128 with --device cuda)
      spec.policy += "+annsa";
      spec.annsa = ann_modules.annsa->options();
    }
    if (ann.annca) {  // the CPU policy's AnnCA options (LSH only on the GPU)
      spec.annca = true;
      spec.annca_options = ann_modules.annca->options();
    }
    if (policy == "window" || args.has("window") || args.has("sink")) {
      spec.window = cpu_policy.window;
      spec.sink = cpu_policy.sink;
    }
    if (tempcache) spec.tempcache = tempcache->options();
    spec.tempcache_capacity = args.get_int("tempcache-capacity", 0, 0, INT64_MAX);
    run_cuda_rollout(*model, prompt, rollout_config, spec, chunks, chunk_actions, write_chunk);
#endif
  } else if (rolling) {
    RollingForcingRollout rollout(*model, *memory, prompt, rollout_config, chunks);
    while (!rollout.done()) {
      Tensor x0 = rollout.advance(chunk_actions(rollout.blocks_entered()));
      if (x0.defined()) write_chunk(x0, memory->bytes(), memory->cached_frames(0));
    }
  } else {
    SelfForcingRollout rollout(*model, *memory, prompt, rollout_config);
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      // The last chunk's clean pass would only fill memory nothing reads: skip it.
      Tensor x0 = rollout.next_chunk(chunk_actions(chunk), /*commit=*/chunk + 1 < chunks);
      write_chunk(x0, memory->bytes(), memory->cached_frames(0));
    }
  }
  progress.finish();
  sink->finish();
  std::fprintf(stderr, "wrote %lld frames: %s\n", static_cast<long long>(written), sink->describe().c_str());
  if (device == "cpu") {  // the GPU rollout reports its own policies' statistics (generate_cuda.cpp)
    if (tempcache) report_tempcache(*tempcache, out);
    report_ann(ann_modules);
  }
  return 0;
}

}  // namespace fastar::app
