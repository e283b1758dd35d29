// AnnSA (FAST-AR §5.4, papers.md §1.6; choices and measurements in docs/ann-attention.md): each
// query attends only to the keys that share its bucket, run as block-sparse attention.
//
// Per layer and head of a sparse call:
//   labels  ← the bucketer (one label per query and per key; see AnnSaBuckets)
//   sort queries and keys by label (bucket_sort), gather them per head in sorted order,
//   build the CSR key-block list of every query block (bucket_block_plan), run the block-sparse
//   attention kernel with the log-sum-exp, scatter the rows back to the original order.
// The call's own keys (the chunk being denoised) are attended densely by default (AnnSaOwnKeys):
// that dense part and the sparse part over the cached keys are merged through their log-sum-exp.
//
// AnnSaMemory wraps the policy that holds the cache (dense, window, TempCache, …: anything whose
// CrossFrameMemory::cached_kv exposes its keys/values/bias) and leaves storing to it: on a commit
// call it hands the chunk down with out = nullptr. Calls the schedule keeps dense go to the wrapped
// policy unchanged.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastar/attention/ann_lsh.h"
#include "fastar/attention/bucket_block_plan.h"
#include "fastar/attention/prompt_bucket_board.h"
#include "fastar/attention/sparse_schedule.h"
#include "fastar/model/cross_frame_memory.h"

namespace fastar {

// ---- the kernel-level piece: one head, labels given ---------------------------------------------

// Keys in up to two segments (cached keys, then the call's own). Each segment is sorted by bucket on
// its own; the second starts on a key-block boundary after the first (KeySegmentOffsets), so the GPU
// can keep the cached segment sorted from one commit to the next and sort only the call's own keys.
struct KeySegment {
  const float* k = nullptr;  // [rows, k_stride]
  const float* v = nullptr;  // [rows, v_stride]
  int64_t k_stride = 0, v_stride = 0;
  const float* bias = nullptr;  // [rows] additive logit bias, or nullptr
  int64_t rows = 0;
};

struct BucketedHeadArgs {
  const float* q = nullptr;  // [q_len, q_stride]
  int64_t q_stride = 0, q_len = 0;
  KeySegment keys[2];
  const uint32_t* q_labels = nullptr;  // [q_len]
  const uint32_t* k_labels = nullptr;  // [keys[0].rows + keys[1].rows]
  uint32_t num_buckets = 0;
  int64_t head_dim = 0;
  float scale = 0.0f;
  int64_t block_q = 64, block_k = 64;
  float* o = nullptr;  // [q_len, o_stride]
  int64_t o_stride = 0;
  float* lse = nullptr;  // [q_len] natural-log sum of exp of the visited logits (−inf when none)
};

// Scratch reused across calls (sorted copies, plan). Sorted key layout: segment 0's row k_order[0].order[i]
// at position i, padding (zero, −inf bias) up to seg1_base, segment 1's row k_order[1].order[i] at
// seg1_base + i.
struct BucketedScratch {
  BucketOrder q_order, k_order[2];
  int64_t seg1_base = 0;
  BucketBlockPlan plan;
  std::vector<float> q, k, v, bias, o, lse;
};

// Block-sparse attention of one head where query i sees the keys of its bucket (plus the block
// edges, bucket_block_plan.h). Returns the executed query–key products.
int64_t bucketed_attention_head(const BucketedHeadArgs& args, BucketedScratch* scratch);

// o1/lse1 ← merge of two partial softmax results over disjoint key sets (o2/lse2): rows [rows],
// o: [rows, o_stride] (head_dim values each), lse: [rows] with stride lse_stride.
void merge_attention_parts(float* o1, float* lse1, int64_t o1_stride, int64_t lse1_stride, const float* o2,
                           const float* lse2, int64_t o2_stride, int64_t lse2_stride, int64_t rows, int64_t head_dim);

// ---- buckets --------------------------------------------------------------------------------------

enum class AnnSaBuckets {
  lsh,     // (B) q and k hashed with the same random projections (one table, `bits` sign bits)
  prompt,  // (A) the prompt-induced bucket of each token (AnnCA's, via PromptBucketBoard)
};
enum class AnnSaOwnKeys {
  dense,   // the call's own keys are always attended (default)
  sparse,  // bucketed like the cached keys
};

const char* annsa_buckets_name(AnnSaBuckets buckets);

struct AnnSaOptions {
  AnnSaBuckets buckets = AnnSaBuckets::lsh;
  AnnSaOwnKeys own_keys = AnnSaOwnKeys::dense;
  int bits = 2;          // lsh: 2^bits buckets
  uint64_t seed = 0x5eed;
  int64_t block_q = 64;  // the CUDA kernel accepts 64 | 128
  int64_t block_k = 64;  // a multiple of 64
  SparseSchedule schedule;
  bool diagnostics = false;  // also run dense per head to measure recall (slow)
  void validate() const;
};

// The LSH of shared-space buckets (AnnSaBuckets::lsh): one table of `bits` random directions in the
// head's space, from the options' seed. The CPU and the GPU policy both hash with it, so their labels agree.
LshParams annsa_lsh_params(const AnnSaOptions& options, int64_t head_dim);

class AnnSaMemory : public CrossFrameMemory {
 public:
  // inner: the cache policy (must expose cached_kv). board: required for AnnSaBuckets::prompt
  // (filled by AnnCA), else may be nullptr. Throws fastar::Error on options or an inner policy
  // that cannot be wrapped.
  AnnSaMemory(std::unique_ptr<CrossFrameMemory> inner, int64_t layers, int64_t heads, int64_t head_dim,
              AnnSaOptions options, const PromptBucketBoard* board);

  void attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v,
              float* out) override;
  bool cached_kv(int64_t layer, int64_t head, CachedKvHead* out) const override {
    return inner_->cached_kv(layer, head, out);
  }
  int64_t cached_frames(int64_t layer) const override { return inner_->cached_frames(layer); }
  int64_t bytes() const override { return inner_->bytes(); }
  std::string describe() const override;
  MemoryStats summary() const override;  // the inner policy's + AnnSA's density / recall
  std::string report() const override;   // the inner policy's + the per-layer density table
  std::string stats_json() const override { return inner_->stats_json(); }

  const SparseStats& stats() const { return stats_; }
  const AnnSaOptions& options() const { return options_; }
  CrossFrameMemory& inner() { return *inner_; }

 private:
  // Labels of this call's queries/own keys and of the cached keys for one head; false = none
  // available now (the call runs dense).
  bool label_head(int64_t layer, const MemoryCall& call, int64_t head, const float* q, const float* k,
                  const CachedKvHead& cached);

  std::unique_ptr<CrossFrameMemory> inner_;
  int64_t layers_, heads_, head_dim_;
  AnnSaOptions options_;
  const PromptBucketBoard* board_;
  std::unique_ptr<LshHasher> hasher_;
  SparseStats stats_;
  uint32_t num_buckets_ = 0;
  // Scratch.
  std::vector<uint32_t> q_labels_, k_labels_;
  BucketedScratch scratch_;
  std::vector<float> own_o_, own_lse_, head_o_, head_lse_, dense_lse_;
};

}  // namespace fastar
