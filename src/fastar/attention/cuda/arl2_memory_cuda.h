// ARL²'s hybrid layers on the GPU (arl2_hybrid_memory.h is the CPU reference; docs/arl2.md).
//
// A hybrid layer keeps no KV cache: its self-attention is softmax over the call's own tokens plus
// sigmoid(x·W_gateᵀ)_head · scale · (q̂ · S), S [heads, D, D] fp32 read by every token before the
// call and updated only on a commit call (the clean pass) by the chunked gated delta rule
// (kernels/cuda/gated_delta_rule.h). q̂ = L2norm(RoPE(φ_q q')), k̂ likewise, v̂ = φ_v v'. The
// per-head maps φ run as one GEMM with a block-diagonal [dim, dim] weight (heads × [D, D] blocks:
// 12× the arithmetic of per-head GEMMs, tens of µs at Wan2.1-1.3B shapes, one cuBLASLt call).
// The gate, decay and β logits of a token are one GEMM with a padded [8⌈3·heads/8⌉, dim] weight.
// Layers that are not hybrid go to the inner policy (dense or window), built for those layers only.
#pragma once

#include <memory>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/cuda/cuda_memory.h"
#include "fastar/model/wan_dit.h"

namespace fastar::cuda {

class Gemm;

class CudaArl2Memory : public CudaCrossFrameMemory {
 public:
  // inner: serves the non-hybrid layers (hybrid layers must not be held by it). max_tokens: the
  // largest call. The model's hybrid weights are uploaded here; `model` must outlive the policy.
  CudaArl2Memory(const WanModel& model, std::unique_ptr<CudaCrossFrameMemory> inner, int64_t max_tokens);
  ~CudaArl2Memory() override;

  void begin(const CudaMemoryCall& call) override;
  __nv_bfloat16* chunk_k(int64_t layer) override;
  __nv_bfloat16* chunk_v(int64_t layer) override;
  void attend(int64_t layer, const __nv_bfloat16* q, __nv_bfloat16* out, cudaStream_t stream,
              const CudaLayerInputs* inputs) override;
  bool wants_layer_inputs(int64_t layer) const override { return slot_[static_cast<size_t>(layer)] >= 0; }
  void commit(cudaStream_t stream) override;
  uint64_t layout_version() const override { return inner_->layout_version(); }
  int64_t tokens_per_frame() const override { return inner_->tokens_per_frame(); }
  int64_t cached_frames() const override { return inner_->cached_frames(); }
  int64_t bytes() const override;  // inner memory + the hybrid states
  std::string describe() const override;
  MemoryStats summary() const override;  // the inner policy's, with the hybrid states' bytes added
  std::string report() const override { return inner_->report(); }

  // The state of a hybrid layer, copied to the host: [heads, D, D] fp32 (for checks).
  Tensor state(int64_t layer) const;

 private:
  struct HybridLayer;
  const WanModel& model_;
  std::unique_ptr<CudaCrossFrameMemory> inner_;
  std::unique_ptr<Gemm> gemm_;
  std::vector<int64_t> slot_;              // per layer: index into layers_, or −1
  std::vector<HybridLayer> layers_;
  int64_t max_tokens_, proj_width_;
  CudaMemoryCall call_;
  std::vector<std::shared_ptr<Storage>> buffers_;
  __nv_bfloat16 *stage_k_ = nullptr, *stage_v_ = nullptr;  // [max_tokens, dim]: the call's K/V of a hybrid layer
  __nv_bfloat16 *hat_ = nullptr, *hat_k_ = nullptr, *hat_v_ = nullptr, *tmp_ = nullptr;  // [max_tokens, dim]
  __nv_bfloat16* proj_ = nullptr;          // [max_tokens, proj_width]
  float *gate_ = nullptr, *log_alpha_ = nullptr, *beta_ = nullptr;  // [max_tokens, heads]
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace fastar::cuda
