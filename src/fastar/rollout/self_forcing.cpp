#include "fastar/rollout/self_forcing.h"

#include "fastar/core/error.h"
#include "fastar/rollout/noise.h"

namespace fastar {

uint64_t rollout_noise_stream(int64_t chunk, int64_t step) {
  return (static_cast<uint64_t>(chunk) << 16) | static_cast<uint64_t>(step);
}

void validate_rollout_config(const WanConfig& c, const RolloutConfig& config) {
  FASTAR_CHECK(c.in_dim == c.out_dim, "the rollout feeds the model's output back as input, so in_dim ("
                                          << c.in_dim << ") must equal out_dim (" << c.out_dim << ")");
  FASTAR_CHECK(config.latent_height > 0 && config.latent_width > 0 && config.latent_height % c.patch_h == 0 &&
                   config.latent_width % c.patch_w == 0,
               "latent size " << config.latent_height << "x" << config.latent_width
                              << " must be positive and divisible by the patch size " << c.patch_h << "x" << c.patch_w);
  FASTAR_CHECK(config.schedule.frames_per_chunk % c.patch_t == 0,
               "frames per chunk (" << config.schedule.frames_per_chunk << ") must be a multiple of the temporal patch size "
                                    << c.patch_t);
}

SelfForcingRollout::SelfForcingRollout(const WanModel& model, CrossFrameMemory& memory, const WanPrompt& prompt,
                                       RolloutConfig config)
    : model_(model), memory_(&memory), prompt_(&prompt), config_(std::move(config)) {
  validate_rollout_config(model_.config(), config_);
  timesteps_ = config_.schedule.timesteps();
}

WanForwardArgs SelfForcingRollout::forward_args(int64_t frame_start, const Tensor* actions) const {
  WanForwardArgs args;
  args.prompt = prompt_;
  args.actions = actions;
  args.frame_start = frame_start;
  args.memory = memory_;
  args.cross_attention = config_.cross_attention;
  return args;
}

Tensor SelfForcingRollout::next_chunk(const Tensor* actions, bool commit) {
  const WanConfig& c = model_.config();
  const int64_t frames = config_.schedule.frames_per_chunk;
  const int64_t chunk = next_frame_ / frames;
  const Shape shape = {c.in_dim, frames, config_.latent_height, config_.latent_width};
  const int64_t count = shape_numel(shape);
  const double total = static_cast<double>(config_.schedule.num_train_timesteps);

  Tensor x = Tensor::zeros(shape), x0 = Tensor::zeros(shape);
  gaussian_noise(x.data<float>(), count, config_.seed, rollout_noise_stream(chunk, 0));
  std::vector<float> noise(static_cast<size_t>(count));

  WanForwardArgs args = forward_args(next_frame_, actions);
  for (size_t step = 0; step < timesteps_.size(); ++step) {
    const std::vector<float> t(static_cast<size_t>(frames), timesteps_[step]);
    args.latent = &x;
    args.timesteps = &t;
    args.commit = false;
    Tensor v = model_.forward(args);
    ++dit_calls_;
    // x₀ = x_t − σ_t·v, σ_t = t / T (the scheduler's sigma at exactly this timestep).
    const double sigma = timesteps_[step] / total;
    float* xp = x.data<float>();
    float* x0p = x0.data<float>();
    const float* vp = v.data<float>();
    for (int64_t i = 0; i < count; ++i) x0p[i] = static_cast<float>(xp[i] - sigma * vp[i]);
    if (step + 1 < timesteps_.size()) {
      // Re-noise to the next timestep with fresh noise: x = (1 − σ')·x₀ + σ'·ε.
      const double next_sigma = timesteps_[step + 1] / total;
      gaussian_noise(noise.data(), count, config_.seed, rollout_noise_stream(chunk, static_cast<int64_t>(step) + 1));
      for (int64_t i = 0; i < count; ++i)
        xp[i] = static_cast<float>((1.0 - next_sigma) * x0p[i] + next_sigma * noise[static_cast<size_t>(i)]);
    }
  }
  if (commit) this->commit(x0, next_frame_, actions);
  next_frame_ += frames;
  return x0;
}

void SelfForcingRollout::commit(const Tensor& x0, int64_t frame_start, const Tensor* actions) {
  const int64_t frames = config_.schedule.frames_per_chunk;
  const std::vector<float> t(static_cast<size_t>(frames), config_.schedule.context_noise);
  WanForwardArgs args = forward_args(frame_start, actions);
  args.latent = &x0;
  args.timesteps = &t;
  args.commit = true;
  model_.forward(args);
  ++dit_calls_;
}

}  // namespace fastar
