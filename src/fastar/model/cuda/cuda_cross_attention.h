// The cross-attention seam of docs/design.md on the GPU, as CrossAttentionPolicy
// (../cross_attention_policy.h) is on the CPU: how a layer's latent queries attend to the prompt.
// No policy (CudaWanModel::set_cross_attention(nullptr), the default) = dense over every prompt row.
// AnnCA on the GPU is attention/cuda/annca_cuda.h.
//
// One forward of the CUDA DiT calls, per call:
//   begin(call)                                    — host: the call's frames and timesteps;
//   per layer: attend(layer, q, k, v, rows, out)   — the cross-attention of the call's queries;
// and, whenever the prompt changes, set_prompt(prompt) (CudaWanModel::set_prompt forwards it) with
// the host fp32 K/V whose bf16 copies attend() then receives. attend() launches must depend only on
// state that layout_version() summarises: the DiT captures forwards in CUDA graphs keyed by it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "fastar/model/memory_stats.h"
#include "fastar/model/wan_dit.h"

namespace fastar::cuda {

struct CudaCrossAttentionCall {
  int64_t frame_start = 0;           // global token-frame index of the call's first frame
  int64_t num_frames = 0;            // token-frames in this call
  int64_t tokens_per_frame = 0;
  const float* timesteps = nullptr;  // host [num_frames], valid during begin(); nullptr = unknown
};

class CudaCrossAttentionPolicy {
 public:
  virtual ~CudaCrossAttentionPolicy() = default;
  // The prompt the next calls attend to (host fp32 cross_k/cross_v per layer, valid_rows, id).
  virtual void set_prompt(const WanPrompt& prompt) = 0;
  virtual void begin(const CudaCrossAttentionCall& call) = 0;
  // q, out: [call tokens, heads·head_dim] bf16, contiguous; k, v: [prompt_rows, heads·head_dim] bf16,
  // the layer's prompt as uploaded from set_prompt()'s prompt. Asynchronous on `stream`.
  virtual void attend(int64_t layer, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                      int64_t prompt_rows, __nv_bfloat16* out, cudaStream_t stream) = 0;
  // Changes whenever what attend() launches changes (per-frame sparse/dense choice, prompt, sizes).
  virtual uint64_t layout_version() const = 0;
  virtual std::string describe() const = 0;
  // Density / recall through the seam and an end-of-run report, as CrossAttentionPolicy's.
  virtual MemoryStats summary() const { return {}; }
  virtual std::string report() const { return ""; }
};

}  // namespace fastar::cuda
