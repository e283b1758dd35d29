// The Wan DiT on the GPU: the same forward as WanModel (wan_dit.h), bf16 weights and activations,
// fp32 residual stream, norms' statistics and accumulation; one stream per model.
//
// Buffers are allocated once for the largest chunk (no cudaMalloc in the steady state); the
// dense / window KV cache is preallocated for `max_cached_frames` frames per layer.
// Everything runs on the device, the time and action embedding MLPs too (fp32 rows, bf16 weights;
// small_rows_linear.h); the host only uploads the chunk's timesteps (and actions) per call.
//
// CUDA graphs: a forward whose shapes and buffers repeat (the denoising steps and the clean pass of
// one chunk share them; with a full window every chunk does) is captured once and replayed; a new
// shape updates the executable graph in place (cudaGraphExecUpdate) or re-instantiates it. The
// first forward of a new shape runs eagerly (it also creates the cuBLASLt plans), the second is
// captured. FASTAR_CUDA_GRAPHS=0 in the environment turns graphs off (for comparisons).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/cuda/cuda_cross_attention.h"
#include "fastar/model/cuda/cuda_memory.h"
#include "fastar/model/wan_dit.h"

namespace fastar::cuda {

class Gemm;

class CudaWanModel {
 public:
  // Uploads the weights (bf16 matrices, fp32 norms/modulation) and allocates working buffers for
  // chunks of up to `max_tokens` tokens and prompts of up to `max_text_rows` rows.
  CudaWanModel(const WanModel& host, int64_t max_tokens, cudaStream_t stream);
  ~CudaWanModel();

  // Uploads a prepared prompt's cross-attention K/V (bf16) and hands the prompt to the
  // cross-attention policy, if any.
  void set_prompt(const WanPrompt& prompt);
  // How queries attend to the prompt (cuda_cross_attention.h; AnnCA); nullptr = dense (the default).
  // Not owned; call set_prompt after it (the policy receives the prompt there).
  void set_cross_attention(CudaCrossAttentionPolicy* policy);

  // v_out[out_dim, F, H, W] = DiT(latent[in_dim, F, H, W]) on the device (fp32 device pointers).
  // memory: the cross-frame memory (cuda_memory.h); nullptr = attend only within the chunk.
  // commit: the chunk becomes memory after the forward.
  // actions: host [F, action_dim] when config().action_dim > 0 (the first frame of each temporal
  // patch is used, as on the CPU), else nullptr.
  void forward(float* v_out, const float* latent, int64_t frames, int64_t height, int64_t width,
               const std::vector<float>& timesteps, int64_t frame_start, CudaCrossFrameMemory* memory, bool commit,
               const Tensor* actions = nullptr);

  // Forwards replayed from a captured graph so far (for tests and benchmarks).
  int64_t graph_replays() const { return graph_replays_; }

  // Profiling for benchmarks: while on, forwards run eagerly with a CUDA event after each stage;
  // take_profile() returns the GPU milliseconds per stage (summed over layers and forwards) since
  // the last call, in first-seen order.
  void set_profiling(bool on);
  // Graph capture on/off (default on unless FASTAR_CUDA_GRAPHS=0).
  void set_graphs_enabled(bool on) {
    graphs_enabled_ = on;
    graph_key_uses_ = 0;
  }
  std::vector<std::pair<std::string, double>> take_profile();

  cudaStream_t stream() const { return stream_; }
  const WanConfig& config() const { return host_.config(); }

 private:
  struct DeviceWeights;
  struct GraphKey {
    int64_t frames, height, width, frame_start;
    uint64_t memory_version, cross_version;
    bool commit;  // a commit call may run other work inside the forward (ARL²'s state update)
    const void *v_out, *latent, *memory;
    bool operator==(const GraphKey&) const = default;
  };
  // The whole forward after the per-call uploads (what a graph captures).
  void forward_body(float* v_out, const float* latent, int64_t frames, int64_t height, int64_t width,
                    int64_t frame_start, CudaCrossFrameMemory* memory);
  void time_embedding(int64_t grid_f);

  const WanModel& host_;
  cudaStream_t stream_;
  std::unique_ptr<DeviceWeights> w_;
  std::unique_ptr<Gemm> gemm_;
  int64_t max_tokens_;
  int64_t prompt_rows_ = 0;
  std::vector<std::shared_ptr<Storage>> buffers_;  // keeps the working buffers alive
  // Working buffers (device).
  float* x_ = nullptr;            // [max_tokens, dim] residual stream
  void* h_ = nullptr;             // bf16 [max_tokens, dim]
  void* q_ = nullptr;             // bf16 [max_tokens, dim]
  void* kc_ = nullptr;            // bf16 [max_tokens, dim] (chunk K when there is no memory)
  void* vc_ = nullptr;            // bf16 [max_tokens, dim]
  void* q_normed_ = nullptr;      // bf16 [max_tokens, dim]: q after qk-norm, before RoPE (hybrid layers)
  void* k_normed_ = nullptr;      // bf16 [max_tokens, dim]
  void* attn_ = nullptr;          // bf16 [max_tokens, dim]
  void* y_ = nullptr;             // bf16 [max_tokens, dim]
  void* ffn_ = nullptr;           // bf16 [max_tokens, ffn_dim]
  void* patches_ = nullptr;       // bf16 [max_tokens, max(features in, out)]
  float* t_ = nullptr;            // [frames] timesteps of the call's token-frames
  float* actions_ = nullptr;      // [frames, action_dim]
  float* sinusoid_ = nullptr;     // [frames, freq_dim]
  float* hidden_ = nullptr;       // [frames, dim] time / action MLP hidden rows
  float* e_ = nullptr;            // [frames, dim] time embedding
  float* e_act_ = nullptr;        // [frames, dim] silu(e)
  float* e0_ = nullptr;           // [frames, 6·dim]
  float* mod_ = nullptr;          // [frames, 6·dim] per-block modulation
  float* head_mod_ = nullptr;     // [2, frames, dim]: head shift rows, then head scale rows
  int64_t max_frames_ = 0;
  // Graph state.
  bool graphs_enabled_ = true;
  GraphKey graph_key_{};
  int graph_key_uses_ = 0;        // forwards run with graph_key_ so far
  cudaGraphExec_t graph_exec_ = nullptr;
  int64_t graph_replays_ = 0;
  bool profiling_ = false;
  std::vector<std::pair<std::string, cudaEvent_t>> profile_events_;
  std::vector<Tensor> cross_k_, cross_v_;  // per layer, bf16 [prompt rows, dim]
  CudaCrossAttentionPolicy* cross_policy_ = nullptr;
  bool cross_policy_has_prompt_ = false;
  std::vector<float> host_staging_;  // timesteps / actions before their upload
};

}  // namespace fastar::cuda
