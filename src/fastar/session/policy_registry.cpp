#include "fastar/session/policy_registry.h"

#include <algorithm>

#include "fastar/attention/ann_cross_attention.h"
#include "fastar/attention/ann_self_attention.h"
#include "fastar/attention/arl2_hybrid_memory.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/attention/tempcache_memory.h"
#include "fastar/core/error.h"
#ifdef FASTAR_HAVE_CUDA
#include "fastar/session/cuda/cuda_policy_factories.h"
#endif

namespace fastar {

namespace {

// Frames a cache holds at most: the whole run, or sink + window + the chunk staged behind them.
int64_t held_frames(const PolicySpec& spec, const RolloutSizes& sizes) {
  const int64_t all = std::max(sizes.total_frames, sizes.chunk_frames);
  return spec.windowed ? std::min(all, spec.sink + spec.window + sizes.chunk_frames) : all;
}

int64_t kv_bytes(const WanConfig& c, int64_t layers, int64_t frames, const RolloutSizes& sizes, int64_t value_bytes) {
  return 2 * layers * frames * sizes.tokens_per_frame * c.dim * value_bytes;
}

std::unique_ptr<CrossFrameMemory> kv_cache(const WanConfig& c, const PolicySpec& spec) {
  if (spec.windowed) return std::make_unique<WindowMemory>(c.num_layers, c.num_heads, c.head_dim(), spec.window, spec.sink);
  return std::make_unique<DenseMemory>(c.num_layers, c.num_heads, c.head_dim());
}

// dense / window: the KV cache of every frame, or of the sink + the last W frames.
std::unique_ptr<CrossFrameMemory> make_cpu_kv_cache(const WanModel& model, const PolicySpec& spec) {
  return kv_cache(model.config(), spec);
}
int64_t kv_cache_bytes(const WanConfig& c, const PolicySpec& spec, const RolloutSizes& sizes, int64_t value_bytes) {
  return kv_bytes(c, c.num_layers, held_frames(spec, sizes), sizes, value_bytes);
}

// tempcache (FAST-AR §5.2, docs/tempcache.md): at most one representative per token seen, each with
// its key, value, +log m bias and bookkeeping (count, frame, LSH codes / int8 copy: < 192 bytes per head).
std::unique_ptr<CrossFrameMemory> make_cpu_tempcache(const WanModel& model, const PolicySpec& spec) {
  const WanConfig& c = model.config();
  return std::make_unique<TempCacheMemory>(c.num_layers, c.num_heads, c.head_dim(), spec.tempcache);
}
int64_t tempcache_bytes(const WanConfig& c, const PolicySpec& spec, const RolloutSizes& sizes, int64_t value_bytes) {
  const int64_t rows = held_frames(spec, sizes) * sizes.tokens_per_frame;
  return kv_cache_bytes(c, spec, sizes, value_bytes) + c.num_layers * rows * c.num_heads * 192;
}

// arl2 (ARL²): hybrid layers hold a gated delta-rule state [heads, head_dim, head_dim] fp32; the others
// a KV cache (dense, or the window).
std::unique_ptr<CrossFrameMemory> make_cpu_arl2(const WanModel& model, const PolicySpec& spec) {
  return std::make_unique<Arl2HybridMemory>(model.config(), model.weights(), kv_cache(model.config(), spec));
}
int64_t arl2_bytes(const WanConfig& c, const PolicySpec& spec, const RolloutSizes& sizes, int64_t value_bytes) {
  const int64_t hybrid = static_cast<int64_t>(c.hybrid_layers.size());
  return kv_bytes(c, c.num_layers - hybrid, held_frames(spec, sizes), sizes, value_bytes) +
         hybrid * c.num_heads * c.head_dim() * c.head_dim() * 4;
}

#ifdef FASTAR_HAVE_CUDA
#define FASTAR_CUDA_FACTORY(f) (&cuda::f)
#else
#define FASTAR_CUDA_FACTORY(f) nullptr
#endif

std::vector<PolicyEntry> make_registry() {
  std::vector<PolicyEntry> entries;
  {
    PolicyEntry e;
    e.name = "dense";
    e.help = "every committed frame stays; memory grows linearly with the video";
    e.annsa_wraps = true;
    e.neutral_policy = "dense";
    e.make_cpu = make_cpu_kv_cache;
    e.make_cuda = FASTAR_CUDA_FACTORY(make_cuda_kv_cache);
    e.memory_bytes = kv_cache_bytes;
    entries.push_back(e);
  }
  {
    PolicyEntry e;
    e.name = "window";
    e.help = "the first S frames (sink) and the last W frames; bounded, forgets the rest";
    e.windowable = e.always_windowed = e.annsa_wraps = true;
    e.neutral_policy = "window";  // a window longer than the test's rollout, no sink: every frame stays
    e.neutral_options = {{"window", "1000"}, {"sink", "0"}};
    e.make_cpu = make_cpu_kv_cache;
    e.make_cuda = FASTAR_CUDA_FACTORY(make_cuda_kv_cache);
    e.memory_bytes = kv_cache_bytes;
    entries.push_back(e);
  }
  {
    PolicyEntry e;
    e.name = "tempcache";
    e.help = "TempCache (FAST-AR §5.2): temporally corresponding keys merged into one representative, +log m bias";
    e.windowable = e.annsa_wraps = true;
    e.neutral_policy = "tempcache";  // a threshold above 1 never merges: one representative per key
    e.neutral_options = {{"tempcache-threshold", "2"}};
    e.make_cpu = make_cpu_tempcache;
    e.make_cuda = FASTAR_CUDA_FACTORY(make_cuda_tempcache);
    e.memory_bytes = tempcache_bytes;
    entries.push_back(e);
  }
  {
    PolicyEntry e;
    e.name = "arl2";
    e.help = "ARL²: hybrid layers keep a gated delta-rule state; the other layers a KV cache (dense, or +window)";
    e.windowable = true;
    // No setting of a trained linear memory equals dense attention; the hybrid forward is tested
    // against ARL²'s reference instead (tests/model/test_arl2_model.cpp, tests/attention/test_arl2_hybrid.cpp).
    e.no_neutral_setting = "ARL²'s gated delta-rule state is trained; nothing at inference makes it dense";
    e.make_cpu = make_cpu_arl2;
    e.make_cuda = FASTAR_CUDA_FACTORY(make_cuda_arl2);
    e.memory_bytes = arl2_bytes;
    entries.push_back(e);
  }
  return entries;
}

}  // namespace

const std::vector<PolicyEntry>& policy_registry() {
  static const std::vector<PolicyEntry> entries = make_registry();
  return entries;
}

const PolicyEntry& find_policy_entry(const std::string& name, const std::string& who) {
  std::string known;
  for (const PolicyEntry& entry : policy_registry()) {
    if (entry.name == name) return entry;
    known += (known.empty() ? "" : ", ") + entry.name;
  }
  FASTAR_FAIL(who << ": unknown policy '" << name << "'; choose " << known
                  << " (optionally +window, +annsa, +annca, e.g. tempcache+window+annsa+annca)");
}

int64_t policy_memory_bytes(const WanConfig& c, const PolicySpec& spec, const RolloutSizes& sizes, int64_t value_bytes) {
  int64_t bytes = find_policy_entry(spec.base, "policy_memory_bytes").memory_bytes(c, spec, sizes, value_bytes);
  if (spec.annsa) {  // AnnSA's bucket-sorted copy of each sparse layer's cache (keys, values, bias)
    int64_t sparse_layers = 0;
    for (int64_t layer = 0; layer < c.num_layers; ++layer) sparse_layers += spec.annsa_options.schedule.layer_is_sparse(layer);
    bytes += sparse_layers * held_frames(spec, sizes) * sizes.tokens_per_frame * (2 * c.dim * value_bytes + 4 * c.num_heads);
  }
  return bytes;
}

CpuPolicy make_cpu_policy(const WanModel& model, const PolicySpec& spec) {
  const WanConfig& c = model.config();
  const PolicyEntry& entry = find_policy_entry(spec.base, "make_cpu_policy");
  CpuPolicy policy;
  policy.memory = entry.make_cpu(model, spec);
  if (spec.annca) {  // AnnCA replaces dense cross-attention (docs/ann-attention.md)
    if (spec.annsa && spec.annsa_options.buckets == AnnSaBuckets::prompt) policy.board = std::make_unique<PromptBucketBoard>();
    policy.cross = std::make_unique<AnnCrossAttention>(c.num_layers, c.num_heads, c.head_dim(), spec.annca_options, policy.board.get());
  }
  if (spec.annsa)  // AnnSA wraps the memory
    policy.memory = std::make_unique<AnnSaMemory>(std::move(policy.memory), c.num_layers, c.num_heads, c.head_dim(),
                                                  spec.annsa_options, policy.board.get());
  return policy;
}

}  // namespace fastar
