// `fastar bench rollout`: a whole rollout with no output sink, measured chunk by chunk (issue 9).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fastar/model/wan_dit.h"
#ifdef FASTAR_HAVE_CUDA
#include "fastar/attention/cuda/cuda_policies.h"
#endif
#include "fastar/rollout/self_forcing.h"

namespace fastar::app {

// One chunk of one policy's rollout.
struct ChunkSample {
  int64_t chunk = 0;
  int64_t latent_frames = 0;  // latent frames generated so far (end of this chunk)
  double ms = 0.0;            // wall time of the chunk (all its DiT calls and the sampler)
  int64_t mem_in_use = 0;     // device bytes in use after the chunk (GPU: cudaMemGetInfo; CPU: resident set)
  int64_t mem_peak = 0;       // the largest mem_in_use seen so far in this rollout (CPU: peak resident set)
  int64_t cache_bytes = 0;    // the policy's memory (KV cache, representatives, recurrent state)
  // Output frames (set by the report from the model's frame mapping, video_frames_of): so far, and
  // those this chunk added.
  int64_t video_frames = 0, chunk_video_frames = 0;
};

// Returns false to stop the rollout early.
using ChunkObserver = std::function<bool(const ChunkSample&)>;

// Per-chunk actions [chunk latent frames, action_dim] of action models (null for others).
using ChunkActions = std::function<const Tensor*(int64_t chunk)>;

// One policy's rollout on the GPU (attention/cuda/cuda_policies.h). Throws fastar::Error for
// unknown policies or memory that does not fit; returns the latent frames it could allocate for
// (a dense cache may fit fewer than asked: the rollout then stops there).
#ifdef FASTAR_HAVE_CUDA
int64_t bench_rollout_cuda(const WanModel& model, const WanPrompt& prompt, const RolloutConfig& config,
                           const cuda::CudaPolicySpec& policy, int64_t chunks, const ChunkActions& chunk_actions,
                           const ChunkObserver& observe);
#endif

// Output frames after `latent_frames` latent frames: 1 + 4·(latent − 1) for a Wan-VAE video
// (frames_per_latent 4), the frames themselves for a pixel-space model (frames_per_latent 1).
inline int64_t video_frames_of(int64_t latent_frames, int64_t frames_per_latent = 4) {
  if (frames_per_latent == 1) return latent_frames;
  return latent_frames <= 0 ? 0 : 1 + frames_per_latent * (latent_frames - 1);
}

int run_bench_rollout(int argc, char** argv);

}  // namespace fastar::app
