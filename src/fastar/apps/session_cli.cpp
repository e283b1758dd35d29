#include "fastar/apps/session_cli.h"

#include <cstdio>
#include <filesystem>

#include "fastar/core/error.h"
#include "fastar/rollout/schedule.h"

#ifndef FASTAR_DEFAULT_MODEL
#define FASTAR_DEFAULT_MODEL ""
#endif

namespace fastar::app {

const std::vector<OptionSpec>& rollout_option_specs() {
  static const std::vector<OptionSpec> specs = {
      {"device", "NAME", "cpu | cuda (self-forcing schedule; bf16 on the GPU)", "cpu"},
      {"schedule", "NAME", "self-forcing (chunk by chunk) | rolling-forcing (rolling window, own sink cache, CPU)", "self-forcing"},
      {"chunk-frames", "F", "latent frames per chunk", "3"},
      {"steps", "LIST", "denoising steps before warping", "1000,750,500,250; rolling-forcing: 1000,800,600,400,200"},
      {"shift", "S", "timestep shift", "5"},
      {"latent-size", "HxW", "latent frame size", "from the model config"},
      {"seed", "S", "noise seed", "0"},
  };
  return specs;
}

std::shared_ptr<const LoadedModel> load_model_from_args(const Args& args, const std::string& who) {
  const std::string path = args.get("model", FASTAR_DEFAULT_MODEL);
  FASTAR_CHECK(!path.empty(), who << ": no --model given and this build has no default model");
  std::optional<uint64_t> seed;
  if (args.has("random-weights")) seed = static_cast<uint64_t>(args.get_int("random-weights", 0, 0, INT64_MAX));
  std::shared_ptr<const LoadedModel> model = LoadedModel::load(path, seed);
  std::fprintf(stderr, "model: %s\n", model->name().c_str());
  return model;
}

SessionOptions session_options_from_args(const Args& args, const std::string& who) {
  SessionOptions o;
  o.who = who;
  o.device = parse_device(args.get("device", "cpu"), who);
  o.schedule = args.get("schedule", "self-forcing");
  o.chunk_frames = args.get_int("chunk-frames", 3, 1, 1024);
  if (args.has("steps")) o.steps = SelfForcingSchedule::parse_steps(args.get("steps", ""));
  o.shift = static_cast<float>(args.get_double("shift", 5.0));
  if (args.has("latent-size")) parse_latent_size(who, args.get("latent-size", ""), &o.latent_height, &o.latent_width);
  o.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, INT64_MAX));
  o.policy = args.get("policy", "");
  for (const auto& [name, value] : args.values())
    if (is_policy_option(name)) o.policy_options[name] = value;
  return o;
}

// The options given that concern one policy of --policies: --window/--sink the windowed ones
// (window, +window), TempCache's a tempcache base (--ann also the ANN modules), AnnSA's +annsa,
// AnnCA's +annca, the shared ANN ones either module. The library then checks each policy's own.
OptionMap options_for(const PolicyName& name, const OptionMap& given) {
  const bool modules = name.annsa || name.annca;
  OptionMap out;
  for (const auto& [option, value] : given) {
    if (!is_policy_option(option)) continue;
    bool applies = false;
    if (option == "window" || option == "sink") applies = name.base == "window" || name.window;
    else if (option == "ann") applies = name.base == "tempcache" || modules;
    else if (option.rfind("tempcache-", 0) == 0) applies = name.base == "tempcache";
    else if (option.rfind("annsa-", 0) == 0) applies = name.annsa;
    else if (option.rfind("annca-", 0) == 0) applies = name.annca;
    else applies = modules;  // ann-layers, ann-dense-steps, ann-stats
    if (applies) out[option] = value;
  }
  return out;
}

std::string stats_json_path(const std::string& out) {
  std::filesystem::path path(out);
  if (path.extension() == ".mp4") return path.replace_extension(".tempcache.json").string();
  return (path / "tempcache.json").string();
}

}  // namespace fastar::app
