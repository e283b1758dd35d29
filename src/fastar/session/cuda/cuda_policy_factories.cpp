#include "fastar/session/cuda/cuda_policy_factories.h"

#include <algorithm>
#include <vector>

#include "fastar/attention/cuda/annca_cuda.h"
#include "fastar/attention/cuda/annsa_memory_cuda.h"
#include "fastar/attention/cuda/arl2_memory_cuda.h"
#include "fastar/attention/cuda/kv_cache_cuda.h"
#include "fastar/attention/cuda/tempcache_memory_cuda.h"
#include "fastar/core/error.h"

namespace fastar::cuda {

namespace {

// Frames a cache preallocates: the kept ones plus the chunk staged behind them, or the whole run.
int64_t capacity_frames(const PolicySpec& spec, const RolloutSizes& sizes) {
  const int64_t all = std::max(sizes.total_frames, sizes.chunk_frames);
  return spec.windowed ? spec.sink + spec.window + sizes.chunk_frames : all;
}

}  // namespace

std::unique_ptr<CudaCrossFrameMemory> make_cuda_kv_cache(const WanModel& model, const PolicySpec& spec, const RolloutSizes& sizes) {
  const WanConfig& c = model.config();
  return std::make_unique<CudaKvCache>(c.num_layers, c.num_heads, c.head_dim(), sizes.tokens_per_frame,
                                       capacity_frames(spec, sizes), spec.windowed ? spec.window : -1,
                                       spec.windowed ? spec.sink : 0);
}

std::unique_ptr<CudaCrossFrameMemory> make_cuda_tempcache(const WanModel& model, const PolicySpec& spec, const RolloutSizes& sizes) {
  const WanConfig& c = model.config();
  FASTAR_CHECK(!spec.tempcache.recall, "--device cuda: --tempcache-recall is a CPU diagnostic; run it with --device cpu");
  int64_t capacity = spec.tempcache_capacity;
  if (capacity <= 0) capacity = capacity_frames(spec, sizes) * sizes.tokens_per_frame;
  return std::make_unique<CudaTempCacheMemory>(c.num_layers, c.num_heads, c.head_dim(), sizes.tokens_per_frame,
                                               sizes.chunk_frames, capacity, spec.tempcache);
}

std::unique_ptr<CudaCrossFrameMemory> make_cuda_arl2(const WanModel& model, const PolicySpec& spec, const RolloutSizes& sizes) {
  const WanConfig& c = model.config();
  std::vector<bool> held(static_cast<size_t>(c.num_layers), true);
  for (int64_t layer : c.hybrid_layers) held[static_cast<size_t>(layer)] = false;
  auto inner = std::make_unique<CudaKvCache>(c.num_layers, c.num_heads, c.head_dim(), sizes.tokens_per_frame,
                                             capacity_frames(spec, sizes), spec.windowed ? spec.window : -1,
                                             spec.windowed ? spec.sink : 0, held);
  return std::make_unique<CudaArl2Memory>(model, std::move(inner), sizes.chunk_frames * sizes.tokens_per_frame);
}

CudaPolicy make_cuda_policy(const WanModel& model, const PolicySpec& spec, const RolloutSizes& sizes) {
  const WanConfig& c = model.config();
  const PolicyEntry& entry = find_policy_entry(spec.base, "--device cuda");
  FASTAR_CHECK(entry.make_cuda, "--device cuda: policy '" << spec.base << "' has no GPU version yet; use --device cpu");
  CudaPolicy policy;
  if (spec.annca) {
    FASTAR_CHECK(spec.annca_options.search == AnnSearch::lsh,
                 "--device cuda: AnnCA searches with LSH on the GPU; drop --ann quant or use --device cpu");
    FASTAR_CHECK(!spec.annca_options.diagnostics, "--device cuda: --ann-stats (recall) is a CPU diagnostic; use --device cpu");
    policy.cross = std::make_unique<CudaAnnCrossAttention>(c.num_layers, c.num_heads, c.head_dim(), sizes.chunk_frames,
                                                           sizes.tokens_per_frame, spec.annca_options);
  }
  policy.memory = entry.make_cuda(model, spec, sizes);
  if (spec.annsa) {
    FASTAR_CHECK(spec.annsa_options.buckets == AnnSaBuckets::lsh,
                 "--device cuda: AnnSA's prompt buckets (--annsa-buckets prompt) are CPU-only; use lsh or --device cpu");
    FASTAR_CHECK(!spec.annsa_options.diagnostics, "--device cuda: --ann-stats (recall) is a CPU diagnostic; use --device cpu");
    policy.memory = std::make_unique<CudaAnnSaMemory>(std::move(policy.memory), c.num_layers, c.num_heads, c.head_dim(),
                                                      sizes.chunk_frames * sizes.tokens_per_frame, spec.annsa_options);
  }
  return policy;
}

}  // namespace fastar::cuda
