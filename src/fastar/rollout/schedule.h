// The Self-Forcing chunkwise schedule (wan-spec.md §4.2): denoising steps with timestep shift.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastar {

struct SelfForcingSchedule {
  int64_t frames_per_chunk = 3;                      // latent frames denoised together
  std::vector<float> denoising_steps = {1000, 750, 500, 250};  // before warping
  float shift = 5.0f;                                // timestep shift s (every released config: 5)
  bool warp = true;                                  // warp_denoising_step
  float context_noise = 0.0f;                        // timestep of the clean context pass
  int64_t num_train_timesteps = 1000;

  // The timesteps the DiT sees, e.g. [1000, 937.5, 833.33, 625] for the defaults:
  // σ_i = 1 − i/T, σ'_i = s·σ_i / (1 + (s−1)·σ_i), t_i = T·σ'_i, step k ↦ t_{T − k} (t_T = 0).
  std::vector<float> timesteps() const;
  // Parses "1000,750,500,250".
  static std::vector<float> parse_steps(const std::string& text);
  // Throws fastar::Error unless frames_per_chunk and shift are positive and the steps are a
  // non-empty, strictly decreasing list in (0, num_train_timesteps].
  void validate() const;
};

}  // namespace fastar
