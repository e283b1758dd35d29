#include "fastar/rollout/rolling_forcing.h"

#include <algorithm>
#include <cstring>

#include "fastar/core/error.h"
#include "fastar/rollout/noise.h"

namespace fastar {

RollingWindow rolling_window(int64_t window, int64_t num_blocks, int64_t num_steps) {
  RollingWindow r;
  r.first = std::max<int64_t>(0, window - num_steps + 1);
  r.last = num_blocks < 0 ? window : std::min(num_blocks - 1, window);
  for (int64_t b = r.first; b <= r.last; ++b) r.steps.push_back(window - b);
  return r;
}

RollingForcingRollout::RollingForcingRollout(const WanModel& model, CrossFrameMemory& memory, const WanPrompt& prompt,
                                             RolloutConfig config, int64_t num_blocks)
    : model_(model), memory_(memory), prompt_(prompt), config_(std::move(config)), num_blocks_(num_blocks) {
  validate_rollout_config(model_.config(), config_);
  FASTAR_CHECK(num_blocks >= 0, "rolling forcing: number of blocks must be >= 0 (0 = streaming), got " << num_blocks);
  if (num_blocks_ == 0) num_blocks_ = -1;
  timesteps_ = config_.schedule.timesteps();
}

void RollingForcingRollout::finish() {
  if (num_blocks_ < 0) num_blocks_ = blocks_entered_;
}

bool RollingForcingRollout::done() const { return num_blocks_ >= 0 && blocks_finished_ >= num_blocks_; }

Tensor RollingForcingRollout::advance(const Tensor* actions) {
  FASTAR_CHECK(!done(), "rolling forcing: every block has been generated");
  const WanConfig& c = model_.config();
  const int64_t frames = config_.schedule.frames_per_chunk;
  const int64_t num_steps = static_cast<int64_t>(timesteps_.size());
  const int64_t hw = config_.latent_height * config_.latent_width;
  const Shape block_shape = {c.in_dim, frames, config_.latent_height, config_.latent_width};
  const int64_t block_count = shape_numel(block_shape);
  const double total = static_cast<double>(config_.schedule.num_train_timesteps);

  // The newest block enters as fresh noise at step 0.
  if (num_blocks_ < 0 || blocks_entered_ < num_blocks_) {
    Block b;
    b.index = blocks_entered_++;
    b.x = Tensor::zeros(block_shape);
    gaussian_noise(b.x.data<float>(), block_count, config_.seed, rollout_noise_stream(b.index, 0));
    if (c.action_dim > 0) {
      FASTAR_CHECK(actions != nullptr, "this model takes per-frame actions [" << frames << ", " << c.action_dim << "]");
      b.actions = actions->to_f32();
    }
    blocks_.push_back(std::move(b));
  }
  FASTAR_ASSERT(!blocks_.empty(), "rolling forcing: empty window " << window_);
  const RollingWindow plan = rolling_window(window_, num_blocks_, num_steps);
  FASTAR_ASSERT(plan.first == blocks_.front().index && plan.last == blocks_.back().index,
                "rolling forcing: window " << window_ << " holds blocks " << blocks_.front().index << ".."
                                           << blocks_.back().index << ", expected " << plan.first << ".." << plan.last);

  // One DiT call over every block of the window: latent [C, n·F, H, W], per-frame t.
  const int64_t n = static_cast<int64_t>(blocks_.size());
  const int64_t window_frames = n * frames;
  Tensor x = Tensor::zeros({c.in_dim, window_frames, config_.latent_height, config_.latent_width});
  std::vector<float> t;
  Tensor window_actions;
  if (c.action_dim > 0) window_actions = Tensor::zeros({window_frames, c.action_dim});
  for (int64_t i = 0; i < n; ++i) {
    const Block& b = blocks_[static_cast<size_t>(i)];
    FASTAR_ASSERT(b.step == plan.steps[static_cast<size_t>(i)], "rolling forcing: block " << b.index << " at step "
                                                                                         << b.step);
    for (int64_t ch = 0; ch < c.in_dim; ++ch)
      std::memcpy(x.data<float>() + (ch * window_frames + i * frames) * hw, b.x.data<float>() + ch * frames * hw,
                  static_cast<size_t>(frames * hw) * sizeof(float));
    t.insert(t.end(), static_cast<size_t>(frames), timesteps_[static_cast<size_t>(b.step)]);
    if (c.action_dim > 0)
      std::memcpy(window_actions.data<float>() + i * frames * c.action_dim, b.actions.data<float>(),
                  static_cast<size_t>(frames * c.action_dim) * sizeof(float));
  }
  WanForwardArgs args;
  args.prompt = &prompt_;
  args.memory = &memory_;
  args.cross_attention = config_.cross_attention;
  args.latent = &x;
  args.timesteps = &t;
  args.actions = c.action_dim > 0 ? &window_actions : nullptr;
  args.frame_start = blocks_.front().index * frames;
  args.commit = false;
  Tensor v = model_.forward(args);
  ++dit_calls_;
  last_first_block_ = blocks_.front().index;
  last_window_timesteps_ = t;

  // x₀ per block; re-noise the unfinished ones to their next step with fresh noise.
  Tensor finished;
  std::vector<float> noise(static_cast<size_t>(block_count));
  for (int64_t i = 0; i < n; ++i) {
    Block& b = blocks_[static_cast<size_t>(i)];
    const double sigma = timesteps_[static_cast<size_t>(b.step)] / total;
    Tensor x0 = Tensor::zeros(block_shape);
    float* x0p = x0.data<float>();
    const float* xp = b.x.data<float>();
    for (int64_t ch = 0; ch < c.in_dim; ++ch) {
      const float* vp = v.data<float>() + (ch * window_frames + i * frames) * hw;
      for (int64_t j = 0; j < frames * hw; ++j) {
        const int64_t e = ch * frames * hw + j;
        x0p[e] = static_cast<float>(xp[e] - sigma * vp[j]);
      }
    }
    if (b.step + 1 < num_steps) {
      const double next_sigma = timesteps_[static_cast<size_t>(b.step + 1)] / total;
      gaussian_noise(noise.data(), block_count, config_.seed, rollout_noise_stream(b.index, b.step + 1));
      float* out = b.x.data<float>();
      for (int64_t e = 0; e < block_count; ++e)
        out[e] = static_cast<float>((1.0 - next_sigma) * x0p[e] + next_sigma * noise[static_cast<size_t>(e)]);
      ++b.step;
    } else {
      FASTAR_ASSERT(i == 0, "rolling forcing: only the oldest block can finish");
      finished = x0;
    }
  }

  if (finished.defined()) {
    // Context pass: the finished block alone, clean, written to memory.
    const Block& b = blocks_.front();
    const std::vector<float> clean(static_cast<size_t>(frames), config_.schedule.context_noise);
    WanForwardArgs ctx;
    ctx.prompt = &prompt_;
    ctx.memory = &memory_;
    ctx.cross_attention = config_.cross_attention;
    ctx.latent = &finished;
    ctx.timesteps = &clean;
    ctx.actions = c.action_dim > 0 ? &b.actions : nullptr;
    ctx.frame_start = b.index * frames;
    ctx.commit = true;
    model_.forward(ctx);
    ++dit_calls_;
    blocks_.pop_front();
    ++blocks_finished_;
  }
  ++window_;
  return finished;
}

}  // namespace fastar
