#include "fastar/attention/cuda/cuda_policies.h"

#include <algorithm>
#include <vector>

#include "fastar/attention/cuda/annca_cuda.h"
#include "fastar/attention/cuda/annsa_memory_cuda.h"
#include "fastar/attention/cuda/arl2_memory_cuda.h"
#include "fastar/attention/cuda/kv_cache_cuda.h"
#include "fastar/attention/cuda/tempcache_memory_cuda.h"
#include "fastar/core/error.h"
#include "fastar/core/text.h"

namespace fastar::cuda {

std::unique_ptr<CudaCrossFrameMemory> make_cuda_memory(const WanModel& model, const CudaPolicySpec& spec,
                                                       int64_t tpf, int64_t chunk_frames, int64_t total_frames) {
  const WanConfig& c = model.config();
  if (CudaPolicySpec base = spec; strip_suffix(base.policy, "+annsa")) {
    FASTAR_CHECK(base.policy == "dense" || base.policy == "window" || base.policy == "tempcache",
                 "--device cuda: annsa wraps dense, window or tempcache, not '" << base.policy << "'");
    return std::make_unique<CudaAnnSaMemory>(make_cuda_memory(model, base, tpf, chunk_frames, total_frames), c.num_layers,
                                             c.num_heads, c.head_dim(), chunk_frames * tpf, spec.annsa);
  }
  const bool windowed = spec.window >= 0;
  // Frames a window cache must hold: the kept ones plus the chunk staged behind them.
  const int64_t window_capacity = spec.sink + spec.window + chunk_frames;
  const int64_t dense_capacity = std::max(total_frames, chunk_frames);
  FASTAR_CHECK(c.hybrid_layers.empty() || spec.policy == "arl2",
               "this model has ARL² hybrid layers; run it with --policy arl2");
  if (spec.policy == "dense")
    return std::make_unique<CudaKvCache>(c.num_layers, c.num_heads, c.head_dim(), tpf, dense_capacity);
  if (spec.policy == "window") {
    FASTAR_CHECK(windowed, "window policy: --window is required");
    return std::make_unique<CudaKvCache>(c.num_layers, c.num_heads, c.head_dim(), tpf, window_capacity, spec.window, spec.sink);
  }
  if (spec.policy == "arl2") {
    std::vector<bool> held(static_cast<size_t>(c.num_layers), true);
    for (int64_t layer : c.hybrid_layers) held[static_cast<size_t>(layer)] = false;
    auto inner = std::make_unique<CudaKvCache>(c.num_layers, c.num_heads, c.head_dim(), tpf,
                                               windowed ? window_capacity : dense_capacity, windowed ? spec.window : -1,
                                               windowed ? spec.sink : 0, held);
    return std::make_unique<CudaArl2Memory>(model, std::move(inner), chunk_frames * tpf);
  }
  if (spec.policy == "tempcache") {
    TempCacheOptions options = spec.tempcache;
    if (windowed) {
      options.window = spec.window;
      options.sink = spec.sink;
    }
    int64_t capacity = spec.tempcache_capacity;
    if (capacity <= 0) capacity = (options.window >= 0 ? options.sink + options.window + chunk_frames : dense_capacity) * tpf;
    return std::make_unique<CudaTempCacheMemory>(c.num_layers, c.num_heads, c.head_dim(), tpf, chunk_frames, capacity,
                                                 options);
  }
  FASTAR_FAIL("--device cuda: unknown or unsupported policy '" << spec.policy
                                                               << "'; GPU policies: dense, window, tempcache, arl2 (the first three optionally +annsa)");
}

std::unique_ptr<CudaCrossAttentionPolicy> make_cuda_cross_attention(const WanModel& model, const CudaPolicySpec& spec,
                                                                   int64_t tokens_per_frame, int64_t chunk_frames) {
  if (!spec.annca) return nullptr;
  const WanConfig& c = model.config();
  return std::make_unique<CudaAnnCrossAttention>(c.num_layers, c.num_heads, c.head_dim(), chunk_frames, tokens_per_frame,
                                                 spec.annca_options);
}

std::string cuda_ann_report(const CudaCrossFrameMemory& memory, const CudaCrossAttentionPolicy* cross) {
  std::string report;
  if (const auto* annsa = dynamic_cast<const CudaAnnSaMemory*>(&memory))
    report += annsa->stats().report("annsa (self-attention, GPU):");
  if (const auto* annca = dynamic_cast<const CudaAnnCrossAttention*>(cross))
    report += annca->stats().report(annca->describe() + ":");
  return report;
}

}  // namespace fastar::cuda
