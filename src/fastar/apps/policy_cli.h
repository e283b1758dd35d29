// The cross-frame memory policy of a Self-Forcing rollout on the CPU, built from the CLI's options
// (`fastar generate`, `fastar eval`): --policy base[+annsa][+annca], --window/--sink, the TempCache
// options (tempcache_cli.h) and the ANN options (ann_cli.h). Defaults come from the model's
// config.json "fastar_defaults" (the shipped world model: window 9 + sink 0), else dense (arl2 for
// models with hybrid layers), window 9, sink 3.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fastar/apps/ann_cli.h"
#include "fastar/apps/args.h"
#include "fastar/attention/tempcache_memory.h"
#include "fastar/model/wan_dit.h"

namespace fastar::app {

struct CpuPolicy {
  std::string spec;                        // "base+modules" as given or defaulted
  AnnPolicy parts;
  int64_t window = 9, sink = 3;            // as resolved (used by window-like policies)
  std::unique_ptr<CrossFrameMemory> memory;
  TempCacheMemory* tempcache = nullptr;    // inside memory for a tempcache base (stats, report), else null
  AnnModules ann;                          // AnnSA inside memory / AnnCA for RolloutConfig::cross_attention
};

// The policy string the model defaults to when --policy is not given.
std::string default_policy_of(const WanConfig& config);

// policy: the --policy value ("" = the model's default). step_timesteps: the rollout's denoising
// timesteps (AnnSA/AnnCA's dense phase). `command` names the CLI command in error messages.
// Throws fastar::Error on unknown policies or options that do not apply to the policy.
CpuPolicy make_cpu_policy(const Args& args, const std::string& policy, const WanModel& model,
                          const std::vector<float>& step_timesteps, const std::string& command);

}  // namespace fastar::app
