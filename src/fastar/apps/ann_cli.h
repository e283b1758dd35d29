// The `fastar generate` side of AnnSA and AnnCA (docs/ann-attention.md): `--policy` combinations
// such as dense+annsa, tempcache+annsa+annca or window+annca, the ANN options, and the end-of-run
// density / recall report.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fastar/apps/args.h"
#include "fastar/attention/ann_cross_attention.h"
#include "fastar/attention/ann_self_attention.h"
#include "fastar/attention/prompt_bucket_board.h"
#include "fastar/model/wan_config.h"

namespace fastar::app {

// "base+module+module": the cache policy and the ANN modules (annsa, annca) on top of it.
struct AnnPolicy {
  std::string base;
  bool annsa = false, annca = false;
  bool any() const { return annsa || annca; }
};
// Throws fastar::Error on an unknown or repeated module, or a missing base policy.
AnnPolicy split_ann_policy(const std::string& policy);

// --ann-layers, --ann-dense-steps, --annsa-buckets, --annsa-bits, --annsa-own-keys, --annsa-blocks,
// --annca-top-k, --ann-stats.
const std::vector<OptionSpec>& ann_option_specs();
// The --annsa-* ones alone (bench rollout takes these).
std::vector<OptionSpec> annsa_option_specs();

// AnnSA's options from --annsa-buckets, --annsa-bits, --annsa-own-keys and --annsa-blocks; device ("cpu" |
// "cuda") picks the block default: 64x64 on the CPU, 128x128 on the GPU (the Hopper kernel's tiles; 128x64
// would fall back to the mma.sync kernel). The schedule and diagnostics are the caller's. Throws
// fastar::Error on bad values.
AnnSaOptions annsa_options_from_args(const Args& args, const std::string& device);

// True if the TempCache options given are allowed: with a tempcache base, or only --ann with an ANN module.
bool tempcache_options_allowed(const Args& args, const AnnPolicy& policy);

// AnnSA's and AnnCA's schedule: dense for the first `dense_fraction` of the steps, sparse on `layers`
// (e.g. "1-5,7"; empty = the model's measured choice, config.json fastar_defaults.ann_layers, else all).
SparseSchedule ann_schedule(const WanConfig& config, const std::vector<float>& step_timesteps, double dense_fraction,
                            const std::string& layers);

struct AnnModules {
  std::unique_ptr<PromptBucketBoard> board;
  std::unique_ptr<AnnCrossAttention> annca;  // the cross-attention policy, or null
  AnnSaMemory* annsa = nullptr;              // inside the memory, or null
};

// Wraps *memory in AnnSA and builds AnnCA as the policy asks. step_timesteps: the rollout's
// denoising timesteps (for the dense phase). Throws fastar::Error on bad options.
AnnModules build_ann_modules(const Args& args, const AnnPolicy& policy, const WanConfig& config,
                             const std::vector<float>& step_timesteps, std::unique_ptr<CrossFrameMemory>* memory);

// Prints the per-layer density/recall tables to stderr.
void report_ann(const AnnModules& modules);

}  // namespace fastar::app
