// `fastar bench rollout`: a whole rollout with no output sink, measured chunk by chunk (issue 9).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>


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

// Output frames after `latent_frames` latent frames: 1 + 4·(latent − 1) for a Wan-VAE video
// (frames_per_latent 4), the frames themselves for a pixel-space model (frames_per_latent 1).
inline int64_t video_frames_of(int64_t latent_frames, int64_t frames_per_latent = 4) {
  if (frames_per_latent == 1) return latent_frames;
  return latent_frames <= 0 ? 0 : 1 + frames_per_latent * (latent_frames - 1);
}

int run_bench_rollout(int argc, char** argv);

}  // namespace fastar::app
