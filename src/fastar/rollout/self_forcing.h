// The Self-Forcing / Causal-Forcing chunkwise rollout (wan-spec.md §4.3):
//
//   for each chunk of F latent frames (global frames [f0, f0 + F)):
//     x ← N(0, I)
//     for step k: v ← DiT(x, t_k, memory read-only);  x₀ ← x − σ_k·v;
//                 if not last: x ← (1 − σ_{k+1})·x₀ + σ_{k+1}·ε   (fresh ε each step)
//     DiT(x₀, t = context_noise, memory.commit)    # the clean pass that writes the chunk to memory
//
// Noise is drawn from a counter-based generator keyed by (seed, chunk, step), so any chunk is
// reproducible on its own and on any backend.
#pragma once

#include <cstdint>

#include "fastar/core/tensor.h"
#include "fastar/model/wan_dit.h"
#include "fastar/rollout/schedule.h"

namespace fastar {

struct RolloutConfig {
  SelfForcingSchedule schedule;
  uint64_t seed = 0;
  int64_t latent_height = 0;
  int64_t latent_width = 0;
  CrossAttentionPolicy* cross_attention = nullptr;  // prompt cross-attention (AnnCA); nullptr = dense
};

class SelfForcingRollout {
 public:
  SelfForcingRollout(const WanModel& model, CrossFrameMemory& memory, const WanPrompt& prompt, RolloutConfig config);

  // Generates the next chunk and returns its clean latent x₀, [out_dim, frames_per_chunk, H, W].
  // actions: [frames_per_chunk, action_dim] when the model takes actions (else nullptr).
  // commit = false skips the clean context pass (nothing will follow this chunk).
  Tensor next_chunk(const Tensor* actions = nullptr, bool commit = true);

  // The clean context pass alone: writes x0 [out_dim, frames_per_chunk, H, W] of the chunk that started
  // at latent frame frame_start into memory (LongLive's re-cache after a prompt switch replays the kept
  // chunks through it).
  void commit(const Tensor& x0, int64_t frame_start, const Tensor* actions = nullptr);

  // Mid-stream changes (session/session.h): the prompt, the memory and the cross-attention policy the
  // next calls use (each must outlive its use), and a restart from frame 0 with another seed.
  void set_prompt(const WanPrompt& prompt) { prompt_ = &prompt; }
  void set_memory(CrossFrameMemory& memory) { memory_ = &memory; }
  void set_cross_attention(CrossAttentionPolicy* policy) { config_.cross_attention = policy; }
  void restart(uint64_t seed) {
    config_.seed = seed;
    next_frame_ = 0;
  }

  int64_t frames_generated() const { return next_frame_; }
  int64_t dit_calls() const { return dit_calls_; }
  const std::vector<float>& timesteps() const { return timesteps_; }

 private:
  // The forward's prompt, actions, frame index, memory and cross-attention policy (latent, timesteps
  // and commit are the caller's).
  WanForwardArgs forward_args(int64_t frame_start, const Tensor* actions) const;

  const WanModel& model_;
  CrossFrameMemory* memory_;
  const WanPrompt* prompt_;
  RolloutConfig config_;
  std::vector<float> timesteps_;
  int64_t next_frame_ = 0;
  int64_t dit_calls_ = 0;
};

// Checks what every rollout needs of a model and its settings (in_dim == out_dim, latent size
// divisible by the patch, chunk a multiple of the temporal patch); throws fastar::Error.
void validate_rollout_config(const WanConfig& model_config, const RolloutConfig& config);

// Noise stream id of (chunk, step): step 0 is the chunk's initial noise, step k > 0 the
// re-noising before denoising step k.
uint64_t rollout_noise_stream(int64_t chunk, int64_t step);

}  // namespace fastar
