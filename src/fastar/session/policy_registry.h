// The registry of cross-frame memory policies (docs/design.md, "session"): one entry per base
// policy, with everything a front end or a backend needs to know about it. A new policy is its own
// files under attention/ (and attention/cuda/) plus one entry in policy_registry.cpp (and its GPU
// factory in session/cuda/cuda_policy_factories.cpp); the grammar, the defaults, the CLI's --help,
// the Python API, the tests over the registry and the memory estimate all follow from the entry.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastar/model/cross_attention_policy.h"
#include "fastar/model/cross_frame_memory.h"
#include "fastar/model/wan_dit.h"
#include "fastar/session/policy_spec.h"

namespace fastar {

namespace cuda {
class CudaCrossFrameMemory;
class CudaCrossAttentionPolicy;
}  // namespace cuda

// The sizes a GPU policy preallocates for.
struct RolloutSizes {
  int64_t tokens_per_frame = 0;
  int64_t chunk_frames = 0;   // token-frames per call
  int64_t total_frames = 0;   // token-frames of the whole run (dense: the cache's capacity)
};

struct PolicyEntry {
  std::string name;
  std::string help;            // one line for --help
  bool windowable = false;     // takes +window / --window / --sink
  bool always_windowed = false;
  bool annsa_wraps = false;    // AnnSA can wrap its cache (it exposes cached keys)
  // The settings at which the policy must equal dense rollouts bit for bit (its neutral setting), as
  // a --policy string and options; tested for every entry (tests/session/test_policy_registry.cpp).
  std::string neutral_policy;
  OptionMap neutral_options;
  std::string no_neutral_setting;  // when neutral_policy is empty: why no setting equals dense (required then)
  std::unique_ptr<CrossFrameMemory> (*make_cpu)(const WanModel& model, const PolicySpec& spec) = nullptr;
  // nullptr in a build without CUDA.
  std::unique_ptr<cuda::CudaCrossFrameMemory> (*make_cuda)(const WanModel& model, const PolicySpec& spec,
                                                           const RolloutSizes& sizes) = nullptr;
  // Bytes the policy's memory holds after `frames` latent frames at most (value_bytes per K/V entry:
  // 4 on the CPU, 2 in bf16 on the GPU), AnnSA's copies excluded (policy_memory_bytes adds them).
  int64_t (*memory_bytes)(const WanConfig& config, const PolicySpec& spec, const RolloutSizes& sizes,
                          int64_t value_bytes) = nullptr;
};

const std::vector<PolicyEntry>& policy_registry();
// Throws fastar::Error naming `who` and listing the registered policies when `name` is not one.
const PolicyEntry& find_policy_entry(const std::string& name, const std::string& who);

// The estimate of the whole spec (base + AnnSA's sorted copies) at sizes.total_frames frames.
int64_t policy_memory_bytes(const WanConfig& config, const PolicySpec& spec, const RolloutSizes& sizes, int64_t value_bytes);

// A CPU policy built from a spec: the cross-frame memory (AnnSA around the base when spec.annsa) and
// the cross-attention policy (AnnCA when spec.annca, else null = dense).
struct CpuPolicy {
  std::unique_ptr<PromptBucketBoard> board;  // AnnCA → AnnSA prompt buckets (annsa-buckets prompt)
  std::unique_ptr<CrossAttentionPolicy> cross;
  std::unique_ptr<CrossFrameMemory> memory;
};
CpuPolicy make_cpu_policy(const WanModel& model, const PolicySpec& spec);

}  // namespace fastar
