// One policy spec for every front end and both backends (docs/design.md, "session").
//
// The grammar: base[+window][+annsa][+annca], the modules in any order after the base.
//   base     a registered cross-frame memory policy (policy_registry.h): dense, window, tempcache, arl2
//   +window  bounds the base by a sink + window of frames (window: always; --window/--sink mean the same)
//   +annsa   AnnSA around the base's cache: block-sparse self-attention over LSH buckets (FAST-AR §5.4)
//   +annca   AnnCA as the cross-attention: per-frame prompt-token selection (FAST-AR §5.3)
// Options come as a plain OptionMap (the CLI's --name value, Python's keywords), and every default is
// resolved here, once, in this order: the options given, then the model's config.json
// "fastar_defaults", then the library's (window 9, sink 3). The CPU and the GPU build their policies
// from the same resolved PolicySpec, so they cannot disagree about what a command line means.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastar/attention/ann_cross_attention.h"
#include "fastar/attention/ann_self_attention.h"
#include "fastar/attention/tempcache.h"
#include "fastar/core/option_spec.h"
#include "fastar/core/tensor.h"
#include "fastar/model/wan_config.h"

namespace fastar {

// Device (core/tensor.h): CPU | CUDA.
const char* device_name(Device device);
// "cpu" | "cuda"; anything else is a fastar::Error naming `who`.
Device parse_device(const std::string& text, const std::string& who);

// The library's defaults where neither the options nor the model's fastar_defaults say.
inline constexpr int64_t kDefaultWindow = 9;
inline constexpr int64_t kDefaultSink = 3;

struct PolicyName {
  std::string base;
  bool window = false, annsa = false, annca = false;
};
// Throws fastar::Error on an empty name, an unknown or repeated module, or a module before the base.
PolicyName parse_policy_name(const std::string& text, const std::string& who);

struct PolicySpec {
  std::string base = "dense";
  bool windowed = false;            // bounded by sink + window (always for base "window")
  int64_t window = -1, sink = 0;    // when windowed: recent frames kept, first frames pinned
  bool annsa = false, annca = false;
  TempCacheOptions tempcache;       // base tempcache (window/sink copied in when windowed)
  int64_t tempcache_capacity = 0;   // GPU: representatives per layer and head to preallocate; 0 = enough for the run
  AnnSaOptions annsa_options;       // with annsa (its schedule included)
  AnnCaOptions annca_options;       // with annca (its schedule included)

  // The canonical name, e.g. "tempcache+window+annsa" ("window", not "window+window").
  std::string name() const;
  // One line: the name and the settings that matter, e.g. "tempcache+window (window 9, sink 0, tau 0.9, lsh)".
  std::string describe() const;
};

// Every option of every policy and module, with help text and defaults (for --help and docs).
const std::vector<OptionSpec>& policy_option_specs();
bool is_policy_option(const std::string& name);

// The policy a model runs when none is named: config.json fastar_defaults.policy; arl2 for models
// with hybrid layers; else dense.
std::string default_policy_of(const WanConfig& config);

// Resolves `policy` ("" = the model's default) and the policy options in `options` (others are
// ignored) against the model. step_timesteps: the rollout's denoising timesteps (AnnSA's and AnnCA's
// dense phase). device picks AnnSA's default tiles (64x64 CPU, 128x128 GPU). Throws fastar::Error,
// naming `who`, on unknown policies, malformed values and options that do not apply to the policy.
PolicySpec resolve_policy(const std::string& policy, const OptionMap& options, const WanConfig& config,
                          const std::vector<float>& step_timesteps, Device device, const std::string& who);

}  // namespace fastar
