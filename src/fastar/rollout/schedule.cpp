#include "fastar/rollout/schedule.h"

#include <cmath>
#include <sstream>

#include "fastar/core/error.h"

namespace fastar {

std::vector<float> SelfForcingSchedule::timesteps() const {
  validate();
  const double total = static_cast<double>(num_train_timesteps);
  std::vector<float> out;
  for (float step : denoising_steps) {
    if (!warp) {
      out.push_back(step);
      continue;
    }
    const int64_t index = num_train_timesteps - static_cast<int64_t>(std::lround(step));  // into [t_0 .. t_{T-1}, 0]
    if (index >= num_train_timesteps) {
      out.push_back(0.0f);
      continue;
    }
    const double sigma = 1.0 - static_cast<double>(index) / total;
    const double shifted = shift * sigma / (1.0 + (shift - 1.0) * sigma);
    out.push_back(static_cast<float>(total * shifted));
  }
  return out;
}

std::vector<float> SelfForcingSchedule::parse_steps(const std::string& text) {
  std::vector<float> steps;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    try {
      size_t used = 0;
      const float value = std::stof(item, &used);
      FASTAR_CHECK(used == item.size(), "");
      steps.push_back(value);
    } catch (const std::exception&) {
      FASTAR_FAIL("--steps: '" << item << "' is not a number; give a comma-separated list such as 1000,750,500,250");
    }
  }
  FASTAR_CHECK(!steps.empty(), "--steps: empty list; give e.g. 1000,750,500,250");
  return steps;
}

void SelfForcingSchedule::validate() const {
  FASTAR_CHECK(frames_per_chunk > 0, "frames per chunk must be positive, got " << frames_per_chunk);
  FASTAR_CHECK(!denoising_steps.empty(), "the denoising step list is empty");
  FASTAR_CHECK(shift > 0.0f, "timestep shift must be positive, got " << shift);
  for (float step : denoising_steps)
    FASTAR_CHECK(step > 0.0f && step <= static_cast<float>(num_train_timesteps),
                 "denoising step " << step << " is outside (0, " << num_train_timesteps << "]");
  // Denoising runs from noise (high t) toward the clean frame: each step below the one before.
  for (size_t i = 1; i < denoising_steps.size(); ++i)
    FASTAR_CHECK(denoising_steps[i] < denoising_steps[i - 1],
                 "denoising steps must be strictly decreasing (from noise toward the clean frame, e.g. "
                 "1000,750,500,250), but step " << i + 1 << " (" << denoising_steps[i] << ") follows "
                                                << denoising_steps[i - 1]);
}

}  // namespace fastar
