// TempCache as a cross-frame memory policy (FAST-AR §5.2; docs/tempcache.md).
//
// Per layer and head a TempCacheHead holds the groups: representatives (newest key of each group),
// group mean values and counts m. A call attends over [representatives + this call's keys] with
// per-key logit bias [log m, …, 0 for the call's own keys] (AttentionParams::key_bias); a commit
// call then merges the chunk frame by frame and applies the optional bounds (window/sink, tokens).
//
// Statistics per layer: dense tokens (what DenseMemory would hold per head), cached tokens (mean
// representatives per head), density = cached / dense, merges, bytes. With options.recall the
// policy also keeps a shadow dense cache and measures, on every call, the attention recall
//   recall(q) = Σ_groups min(P_dense(group | q), P_cache(group | q))          (= 1 − total variation)
// where P_dense(group) is the dense softmax mass of the group's member keys (evicted groups: lost),
// P_cache(group) the mass the cache's biased softmax gives its representative, and the call's own
// keys are singleton groups. Reported as the mean over calls, heads and queries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastar/attention/ann_lsh.h"
#include "fastar/attention/tempcache.h"
#include "fastar/model/cross_frame_memory.h"

namespace fastar {

struct TempCacheLayerStats {
  int64_t dense_tokens = 0;     // committed tokens per head (the dense cache's size)
  double cached_tokens = 0.0;   // representatives per head, mean over heads
  double density = 1.0;         // cached_tokens / dense_tokens (1 when nothing is committed)
  int64_t merges = 0;           // all heads
  int64_t bytes = 0;            // all heads
  int64_t recall_samples = 0;   // (call, head, query) triples measured; 0 without the diagnostic
  double recall = 0.0;          // mean recall over the samples
};

struct TempCacheStats {
  std::vector<TempCacheLayerStats> layers;
  TempCacheLayerStats total;  // tokens summed over layers; density and recall over all layers
};

class TempCacheMemory : public CrossFrameMemory {
 public:
  TempCacheMemory(int64_t layers, int64_t heads, int64_t head_dim, const TempCacheOptions& options);
  ~TempCacheMemory() override;

  // out == nullptr (only from a wrapping policy, e.g. AnnSA): commit without attending.
  void attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v, float* out) override;
  // Head `head` of the layer's representatives (keys, mean values, log m as the key bias), for AnnSA.
  bool cached_kv(int64_t layer, int64_t head, CachedKvHead* out) const override;
  int64_t cached_frames(int64_t layer) const override;  // mean representatives per head / tokens per frame, rounded up
  int64_t bytes() const override;
  std::string describe() const override;
  MemoryStats summary() const override;      // + KV density and merges
  std::string report() const override;       // format_tempcache_summary
  std::string stats_json() const override;   // tempcache_stats_json

  TempCacheStats stats() const;
  const TempCacheHead& head(int64_t layer, int64_t h) const;
  const TempCacheOptions& options() const { return options_; }

 private:
  struct Shadow;  // the recall diagnostic's dense cache of one (layer, head)
  void measure_recall(int64_t layer, const float* q, const float* k, int64_t tokens);
  void commit_head(int64_t layer, int64_t h, const MemoryCall& call, const float* q, const float* k, const float* v);

  int64_t layers_, heads_, head_dim_;
  TempCacheOptions options_;
  std::unique_ptr<LshHasher> hasher_;
  std::vector<TempCacheHead> heads_state_;  // [layers · heads]
  std::vector<int64_t> first_frame_;        // per layer: global index of the first committed frame, −1 before
  std::vector<double> recall_sum_;          // per layer
  std::vector<int64_t> recall_count_;
  std::vector<Shadow> shadows_;             // [layers · heads] when options.recall
  int64_t tokens_per_frame_ = 0;
};

// One line for the end of a run: density, cached/dense tokens, merges, bytes, recall if measured.
std::string format_tempcache_summary(const TempCacheStats& stats);

// The per-layer statistics and the options as JSON, written atomically (temp file + rename).
// The per-layer statistics and the options as JSON text (what write_tempcache_stats_json writes).
std::string tempcache_stats_json(const TempCacheStats& stats, const TempCacheOptions& options);
void write_tempcache_stats_json(const std::string& path, const TempCacheStats& stats, const TempCacheOptions& options);

}  // namespace fastar
