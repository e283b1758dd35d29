// Rolling Forcing's rolling-window rollout (wan-spec.md §5), generalised from the reference's
// hard-coded numbers: block = schedule.frames_per_chunk latent frames, window W = number of
// denoising steps, memory sizes on the CrossFrameMemory (RollingSinkMemory for the reference).
//
//   windows w = 0, 1, ..., nb + W − 2; window w covers blocks [max(0, w−W+1), min(nb−1, w)].
//   Block b in window w takes its step k = w − b, so the per-frame timesteps are the warped step
//   list reversed across blocks (oldest block at the smallest t, newest at t_0 = 1000); a partial
//   window at the start is the noisiest tail of that vector, at the end its cleanest head.
//   One DiT call per window, over all its blocks jointly, memory read-only:
//     x₀_b = x_b − σ_{k_b}·v_b for every block;
//     a block with k_b < W − 1 is re-noised with fresh noise, x_b ← (1 − σ_{k_b+1})·x₀_b + σ_{k_b+1}·ε,
//     and kept for the next window; the newest block entered the window as fresh noise;
//     the oldest block, if k_b = W − 1, is finished: its x₀ is the output, and a context pass on
//     that block alone at t = context_noise with commit = true writes it to memory.
//   DiT calls: (nb + W − 1) windows + nb context passes.
//
// Noise streams (gaussian_noise(seed, stream)), the same as SelfForcingRollout's:
//   rollout_noise_stream(b, 0)      block b's initial noise (when it enters the window);
//   rollout_noise_stream(b, k), k>0 the fresh ε that re-noises block b to step k.
// So with W = 1 this is exactly the Self-Forcing rollout with one step.
//
// Streaming: with num_blocks = 0 every window brings a new block until finish() is called; the
// tail windows (no new block) then drain the pipeline.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/wan_dit.h"
#include "fastar/rollout/self_forcing.h"

namespace fastar {

// Blocks [first, last] of window w (last < first: the window is empty) and the step index of each.
struct RollingWindow {
  int64_t first = 0;
  int64_t last = -1;
  std::vector<int64_t> steps;  // steps[i] = step index of block first + i = w − (first + i)
};
// num_blocks < 0: unknown (streaming, no tail phase yet).
RollingWindow rolling_window(int64_t window, int64_t num_blocks, int64_t num_steps);

class RollingForcingRollout {
 public:
  // num_blocks > 0: a video of num_blocks blocks; 0: streaming until finish().
  RollingForcingRollout(const WanModel& model, CrossFrameMemory& memory, const WanPrompt& prompt,
                        RolloutConfig config, int64_t num_blocks = 0);

  // Runs the next window. Returns the x₀ of the block it finished, [out_dim, frames_per_chunk, H, W],
  // or an empty Tensor (defined() == false) while the pipeline fills. actions: [frames_per_chunk,
  // action_dim] for the block entering this window when the model takes actions (else nullptr);
  // ignored when no block enters.
  Tensor advance(const Tensor* actions = nullptr);
  // Streaming: no more blocks will enter; later advance() calls drain the pipeline.
  void finish();
  // True when every block has been output (only after finish() in streaming mode).
  bool done() const;

  int64_t windows_run() const { return window_; }
  int64_t blocks_entered() const { return blocks_entered_; }
  int64_t blocks_finished() const { return blocks_finished_; }
  int64_t frames_generated() const { return blocks_finished_ * config_.schedule.frames_per_chunk; }
  int64_t dit_calls() const { return dit_calls_; }
  const std::vector<float>& timesteps() const { return timesteps_; }
  // The last window's first block and per-frame timesteps (oldest frame first).
  int64_t last_window_first_block() const { return last_first_block_; }
  const std::vector<float>& last_window_timesteps() const { return last_window_timesteps_; }

 private:
  struct Block {
    int64_t index = 0;
    int64_t step = 0;  // the step this block takes in the next window
    Tensor x;          // its noisy state at timesteps_[step]
    Tensor actions;    // [frames, action_dim] or empty
  };
  const WanModel& model_;
  CrossFrameMemory& memory_;
  const WanPrompt& prompt_;
  RolloutConfig config_;
  std::vector<float> timesteps_;
  int64_t num_blocks_;  // < 0 while streaming
  std::deque<Block> blocks_;
  int64_t window_ = 0, blocks_entered_ = 0, blocks_finished_ = 0, dit_calls_ = 0;
  int64_t last_first_block_ = -1;
  std::vector<float> last_window_timesteps_;
};

}  // namespace fastar
