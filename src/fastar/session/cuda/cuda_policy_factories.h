// The GPU twins of the registry's CPU factories (session/policy_registry.h), built from the same
// PolicySpec, and the whole GPU policy of a spec: the cross-frame memory (AnnSA around the base when
// spec.annsa) and the cross-attention policy (AnnCA when spec.annca).
#pragma once

#include <memory>

#include "fastar/model/cuda/cuda_cross_attention.h"
#include "fastar/model/cuda/cuda_memory.h"
#include "fastar/session/policy_registry.h"

namespace fastar::cuda {

// Registry entries' make_cuda (dense and window share the KV cache).
std::unique_ptr<CudaCrossFrameMemory> make_cuda_kv_cache(const WanModel& model, const PolicySpec& spec, const RolloutSizes& sizes);
std::unique_ptr<CudaCrossFrameMemory> make_cuda_tempcache(const WanModel& model, const PolicySpec& spec, const RolloutSizes& sizes);
std::unique_ptr<CudaCrossFrameMemory> make_cuda_arl2(const WanModel& model, const PolicySpec& spec, const RolloutSizes& sizes);

struct CudaPolicy {
  std::unique_ptr<CudaCrossAttentionPolicy> cross;  // null = dense over the prompt
  std::unique_ptr<CudaCrossFrameMemory> memory;
};
// Throws fastar::Error for options the GPU lacks (said which) or memory that does not fit.
CudaPolicy make_cuda_policy(const WanModel& model, const PolicySpec& spec, const RolloutSizes& sizes);

}  // namespace fastar::cuda
