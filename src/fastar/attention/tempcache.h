// TempCache's groups for one (layer, head) (FAST-AR §5.2, papers.md §1.4; choices in docs/tempcache.md).
//
// Keys of successive frames that correspond to the same token form a group. A group keeps
//   - its representative: the newest key that joined it (the paper's "last-key"),
//   - the mean of its members' values,
//   - its multiplicity m,
// and attention adds log(m) to the representative's logit, which equals dense attention exactly
// when the members' keys are identical (Lemma 5.1). On commit, frame by frame, each new key is
// matched to its top-1 representative through an ANN index (LSH or int8, never a full Q·Kᵀ); it
// joins that group if cosine(new key, representative) ≥ threshold, otherwise it starts a new group.
// Collisions (several keys of one frame matching one group) go to the most similar key (ties: the
// lowest token index); the others start groups of their own.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "fastar/attention/ann_lsh.h"
#include "fastar/attention/ann_quant.h"

namespace fastar {

enum class AnnBackend { lsh, quant };

// What is matched against the representatives on commit (papers.md §1.4 leaves it open).
enum class TempCacheMatch {
  key,    // the new key, by cosine similarity (default: the quantity that the threshold tests)
  query,  // the new token's query, by dot product (DiffTrack's correspondence: the highest attention score)
};

struct TempCacheOptions {
  float threshold = 0.9f;  // merge when cosine(new key, matched representative) >= threshold; > 1 never merges
  AnnBackend ann = AnnBackend::lsh;
  TempCacheMatch match = TempCacheMatch::key;
  int lsh_tables = 4;       // LSH back end: tables, bits per table, multi-probe (0/1)
  int lsh_bits = 10;        // (measured in docs/tempcache.md: 4 x 10 bits + multi-probe 1)
  int lsh_multi_probe = 1;
  // Per-bucket candidate cap of the LSH search: a new key re-ranks at most this many representatives
  // of each probed bucket, the newest ones (latest representative frame, ties → the higher slot), so
  // keys that crowd into a few buckets cannot turn the search into brute force. 0 = unlimited.
  // Default measured in docs/tempcache.md ("Per-bucket candidate cap"); the GPU keeps the same entries.
  int64_t lsh_bucket_cap = 128;
  uint64_t seed = 0;        // LSH projections (the same for every layer and head)
  int64_t window = -1;      // bound: keep groups whose representative is from the last `window` frames; -1 = off
  int64_t sink = 0;         //   ... and groups started in the first `sink` committed frames (pinned)
  int64_t max_tokens = 0;   // bound: representatives per head after each commit; 0 = off
  bool recall = false;      // diagnostic: shadow dense cache and attention recall (tempcache_memory.h)

  // Throws fastar::Error naming the bad option.
  void validate() const;
};

const char* ann_backend_name(AnnBackend backend);
const char* tempcache_match_name(TempCacheMatch match);

class TempCacheHead {
 public:
  // hasher: shared LSH projections of dimension head_dim (required for AnnBackend::lsh).
  TempCacheHead(int64_t head_dim, const TempCacheOptions& options, const LshHasher* hasher);

  // Merges or appends one frame's tokens. k, q: post-RoPE rows, v: values, all [tokens, stride]
  // (q is read only for TempCacheMatch::query). `frame`: global frame index (increasing across
  // calls); `sink_frame`: groups started now are pinned by the sink. If group_of_token is not
  // null, it receives the group id each token joined ([tokens]).
  void commit_frame(const float* k, const float* v, const float* q, int64_t stride, int64_t tokens, int64_t frame,
                    bool sink_frame, std::vector<int64_t>* group_of_token);

  // Applies the bounds after a commit whose newest frame is `newest_frame`: window, then max_tokens
  // (oldest representatives first, sink groups last; ties by slot).
  void evict(int64_t newest_frame);

  int64_t size() const { return size_; }         // representatives (groups)
  int64_t head_dim() const { return head_dim_; }
  const float* keys() const { return keys_.data(); }       // [size, head_dim]
  const float* values() const { return values_.data(); }   // [size, head_dim], group mean values
  const float* log_counts() const { return log_count_.data(); }  // [size], log(m)
  const std::vector<int64_t>& counts() const { return count_; }
  const std::vector<int64_t>& group_ids() const { return group_id_; }     // stable id of each slot's group
  const std::vector<int64_t>& rep_frames() const { return rep_frame_; }   // frame of each representative
  int64_t tokens_seen() const { return tokens_seen_; }
  int64_t tokens_evicted() const { return tokens_evicted_; }  // members of evicted groups
  int64_t merges() const { return merges_; }
  int64_t bytes() const;

 private:
  void append(const float* k, const float* v, int64_t frame, bool sink_frame);
  void search(const float* k, const float* q, int64_t stride, int64_t tokens, int32_t* best);
  void compact(const std::vector<uint8_t>& keep);

  int64_t head_dim_;
  TempCacheOptions options_;
  const LshHasher* hasher_;
  int64_t size_ = 0;
  std::vector<float> keys_, values_, log_count_;
  std::vector<int64_t> count_, rep_frame_, group_id_;
  std::vector<uint8_t> pinned_;  // started in a sink frame
  // ANN index of the representatives.
  std::vector<uint32_t> codes_;  // LSH: [size, tables]
  LshBuckets buckets_;
  bool buckets_dirty_ = true;
  Int8Rows int8_;                // quant: [size, head_dim], unit-normalised keys for TempCacheMatch::key
  int64_t next_group_id_ = 0;
  int64_t tokens_seen_ = 0, tokens_evicted_ = 0, merges_ = 0;
};

}  // namespace fastar
