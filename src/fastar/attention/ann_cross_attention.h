// AnnCA (FAST-AR §5.3, papers.md §1.5; choices and measurements in docs/ann-attention.md): per
// layer, frame, head (and step), keep only the prompt tokens that some query of the frame finds
// with the ANN search, and run dense attention over the kept tokens.
//
//   lsh:   queries and prompt keys hashed by the same signed random projections (LshHasher,
//          `tables` tables of `bits` bits); prompt token p is kept iff in some table its bucket
//          holds at least one query of the frame (the paper's existence test).
//   quant: the quantized analogue: queries and keys in 8-bit (quantize_rows_int8); p is kept iff it
//          is among the top_k keys (largest dequantized q·k, the attention logit) of at least one
//          query of the frame.
// Padding rows (beyond WanPrompt::valid_rows, all identical: they come from zero context rows) are
// never searched. By default they still enter every call as ONE key with logit bias log(count) —
// FAST-AR's own lemma for identical keys — so the attention mass Wan models put on padding (often
// most of it: padding acts as a sink) is kept exactly at the cost of one key (padding_sink = true).
// padding_sink = false drops them (the paper's text read literally). A prompt with no real rows runs dense.
// Prompt-key codes are computed once per (prompt, layer) and cached.
//
// For AnnSA's prompt-anchored buckets (reading A) it also publishes each query's bucket on a
// PromptBucketBoard: lsh → the low `label_bits` bits of the table-0 code (2^label_bits labels);
// quant → the index of the query's int8 top-1 prompt token (valid_rows labels).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fastar/attention/ann_lsh.h"
#include "fastar/attention/ann_quant.h"
#include "fastar/attention/prompt_bucket_board.h"
#include "fastar/attention/sparse_schedule.h"
#include "fastar/model/cross_attention_policy.h"

namespace fastar {

enum class AnnSearch { lsh, quant };
const char* ann_search_name(AnnSearch search);

struct AnnCaOptions {
  AnnSearch search = AnnSearch::lsh;
  int tables = 4;  // lsh
  int bits = 8;
  uint64_t seed = 0xca;
  int top_k = 1;   // quant: neighbours kept per query
  int label_bits = 2;  // lsh labels published for AnnSA
  bool padding_sink = true;  // padding rows as one key with bias log(count) (exact), or dropped
  SparseSchedule schedule;
  bool diagnostics = false;  // measure recall against dense (slow)
  void validate() const;
};

// The LshParams of AnnCA's hasher (queries and prompt keys of one head): shared by the CPU AnnCrossAttention
// and the GPU CudaAnnCrossAttention (attention/cuda/annca_cuda.h), so both draw the same projections.
LshParams annca_lsh_params(const AnnCaOptions& options, int64_t head_dim);

// True iff the prompt's padding rows [valid_rows, rows) can enter as ONE key with bias log(rows − valid_rows):
// 0 < valid_rows < rows and every padding row of k AND v equals row valid_rows to fp32 rounding (each entry
// within kPaddingTol = 1e-5 of that row's largest |entry|). k, v: [rows, width]. Shared by CPU and GPU AnnCA.
bool annca_padding_identical(const float* k, const float* v, int64_t rows, int64_t valid_rows, int64_t width);

// kept[p] = 1 iff prompt token p (< key_rows) shares a bucket with some query in some table.
// query_codes: [q_rows, tables]; key_codes: [key_rows, tables]; codes < 2^bits.
void annca_keep_lsh(const uint32_t* query_codes, int64_t q_rows, const uint32_t* key_codes, int64_t key_rows,
                    int tables, int bits, std::vector<uint8_t>* kept);

// kept[p] = 1 iff p is among the top_k keys of some query by dequantized dot product (ties → lower
// index). If top1 is not null it receives each query's best key ([queries.rows]).
void annca_keep_quant(const Int8Rows& queries, const Int8Rows& keys, int top_k, std::vector<uint8_t>* kept,
                      int32_t* top1);

class AnnCrossAttention : public CrossAttentionPolicy {
 public:
  // board: where to publish prompt buckets for AnnSA, or nullptr.
  AnnCrossAttention(int64_t layers, int64_t heads, int64_t head_dim, AnnCaOptions options, PromptBucketBoard* board);

  void attend(const CrossAttentionCall& call, const float* q, const float* k, const float* v, float* out) override;
  std::string describe() const override;
  MemoryStats summary() const override;  // density / recall over the sparse calls
  std::string report() const override;   // the per-layer table
  const SparseStats& stats() const { return stats_; }
  const AnnCaOptions& options() const { return options_; }

 private:
  struct PromptCodes {  // one layer's cached prompt-key codes, per head
    std::vector<uint32_t> lsh;       // [heads, valid_rows, tables]
    std::vector<Int8Rows> quant;     // [heads]
  };
  const PromptCodes& prompt_codes(const CrossAttentionCall& call, const float* k);

  int64_t layers_, heads_, head_dim_;
  AnnCaOptions options_;
  PromptBucketBoard* board_;
  std::unique_ptr<LshHasher> hasher_;
  SparseStats stats_;
  uint64_t cached_prompt_ = 0;
  std::map<int64_t, PromptCodes> codes_;  // layer → codes of the prompt `cached_prompt_`
};

}  // namespace fastar
