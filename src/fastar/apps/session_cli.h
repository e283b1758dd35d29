// What the CLI commands share on top of the library's Session (session/session.h): the options of
// a rollout (device, schedule, sizes, seed), the policy's options (the library's own list), loading
// the model, and the options given turned into SessionOptions. Commands never build policies
// themselves.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fastar/apps/args.h"
#include "fastar/session/session.h"

namespace fastar::app {

// --device, --schedule, --chunk-frames, --steps, --shift, --latent-size, --seed.
const std::vector<OptionSpec>& rollout_option_specs();

// The model of --model (default: the shipped one) or, with --random-weights SEED, its config with
// random weights. Prints one line about it to stderr.
std::shared_ptr<const LoadedModel> load_model_from_args(const Args& args, const std::string& who);

// SessionOptions from the rollout options and every policy option given (resolved by the Session).
SessionOptions session_options_from_args(const Args& args, const std::string& who);

// For commands that run several policies (eval, bench rollout): the options given that concern one
// of them (--window/--sink the windowed ones, TempCache's a tempcache base, AnnSA's +annsa, ...).
OptionMap options_for(const PolicyName& name, const OptionMap& given);

// Where the per-layer statistics go: OUT.mp4 → OUT.stats.json... (OUT.tempcache.json for TempCache's);
// a PNG folder → DIR/tempcache.json.
std::string stats_json_path(const std::string& out);

}  // namespace fastar::app
