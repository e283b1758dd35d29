// AnnCA on the GPU (ann_cross_attention.h is the CPU reference; pipeline, layouts and differences in
// docs/annca-cuda.md): a CudaCrossAttentionPolicy that keeps, per layer, frame and head, only the prompt
// rows whose LSH bucket (in some table) holds a query of the frame, and attends densely over those.
//
//   set_prompt (host, outside graphs): the prompt keys' codes with the CPU's LshHasher on the fp32 keys
//     (rows [0, valid_rows) per head, exactly AnnCrossAttention::prompt_codes) → device, per layer; the
//     padding sink per layer by annca_padding_identical on the fp32 K and V (the CPU's test).
//   begin (host): each frame's sparse/dense choice from the call's timesteps (SparseSchedule).
//   attend, one layer (all on `stream`, nothing allocated, no host sync):
//     dense frames (or a dense layer)  → attention_forward_bf16 over every prompt row, runs of frames at once;
//     sparse frames → per LSH table: ann_lsh_labels_bf16 of the queries → annca_occupancy (bitmap of the
//     occupied buckets per frame, head, table) → annca_key_bias (0 kept / −inf dropped / log(count) for the
//     padding sink, + density counters) → per frame: attention_forward_bf16 of the frame's queries over every
//     prompt row with that key bias.
// Only LSH search (bits ≤ 8) without diagnostics; the prompt bucket board (AnnSA reading A) is CPU-only.
#pragma once

#include <memory>
#include <vector>

#include "fastar/attention/ann_cross_attention.h"
#include "fastar/attention/sparse_schedule.h"
#include "fastar/core/tensor.h"
#include "fastar/model/cuda/cuda_cross_attention.h"

namespace fastar::cuda {

class CudaAnnCrossAttention : public CudaCrossAttentionPolicy {
 public:
  // max_call_frames: the most token-frames of one call; tokens_per_frame: the model's tokens per
  // token-frame (CudaWanModel: grid_h·grid_w at the generation size). Calls of fewer frames, or of
  // fewer tokens per frame with at most max_call_frames·tokens_per_frame tokens, are accepted.
  // Throws fastar::Error on what the GPU path lacks (quant search, diagnostics, bits > 8, head_dim
  // other than 64/128): use --device cpu, or --ann lsh.
  CudaAnnCrossAttention(int64_t layers, int64_t heads, int64_t head_dim, int64_t max_call_frames,
                        int64_t tokens_per_frame, AnnCaOptions options);

  void set_prompt(const WanPrompt& prompt) override;
  void begin(const CudaCrossAttentionCall& call) override;
  void attend(int64_t layer, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
              int64_t prompt_rows, __nv_bfloat16* out, cudaStream_t stream) override;
  uint64_t layout_version() const override { return version_; }
  std::string describe() const override;
  MemoryStats summary() const override;  // density over the sparse calls (synchronizes)
  std::string report() const override;

  // Per-layer density (executed / dense query–key products) and sparse/dense frame counts, as the CPU
  // AnnCrossAttention::stats() counts them; copies the device counters (synchronizes the device).
  SparseStats stats() const;
  // Whether frame f of the current call runs sparse at `layer` (the schedule, the prompt's valid rows).
  bool frame_is_sparse(int64_t layer, int64_t frame) const;
  // Bytes of the device buffers.
  int64_t scratch_bytes() const;

 private:
  void* alloc(int64_t bytes);

  int64_t layers_, heads_, head_dim_, max_frames_, max_tokens_;
  AnnCaOptions options_;
  std::unique_ptr<LshHasher> hasher_;  // the CPU AnnCrossAttention's (annca_lsh_params)
  uint64_t version_ = 0;
  // The prompt (set_prompt): rows, valid rows, per layer whether the padding rows enter as one sink key.
  bool has_prompt_ = false;
  int64_t prompt_rows_ = 0, valid_rows_ = 0, rows_capacity_ = 0;
  std::vector<uint8_t> padding_sink_;  // [layers]
  // The call (begin): frames, tokens per frame, each frame's timestep-based sparse choice.
  int64_t call_frames_ = 0, call_tpf_ = 0;
  std::vector<uint8_t> frame_sparse_;  // [call_frames_]: frame past the dense phase
  std::vector<int64_t> sparse_frames_, dense_frames_;  // per layer, counted in begin()

  std::vector<std::shared_ptr<Storage>> buffers_;
  std::vector<std::shared_ptr<Storage>> prompt_buffers_;  // sized by the prompt's rows (grown in set_prompt)
  float* projections_ = nullptr;          // [tables, bits, head_dim], LshHasher's
  uint32_t* query_codes_ = nullptr;       // [tables, heads, max_tokens]
  uint32_t* occupancy_ = nullptr;         // [max_frames, heads, tables, kAnnCaOccupancyWords]
  unsigned long long* counters_ = nullptr;  // [layers, 2]: executed, dense products
  uint32_t* key_codes_ = nullptr;         // [layers, heads, rows_capacity, tables]; layer l head h at + (l·heads + h)·rows_capacity·tables
  float* bias_ = nullptr;                 // [max_frames, heads, rows_capacity]
};

}  // namespace fastar::cuda
