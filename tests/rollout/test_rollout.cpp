// The chunkwise rollout and its memory against exact identities.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fastar/attention/kv_policies.h"
#include "fastar/core/error.h"
#include "fastar/model/wan_dit.h"
#include "fastar/rollout/noise.h"
#include "fastar/rollout/schedule.h"
#include "fastar/rollout/self_forcing.h"
#include "rollout_fixtures.h"
#include "test_util.h"

namespace fastar {
namespace {

// Chunked vs full-sequence forwards differ only in fp32 summation order inside attention.
constexpr double kChunkedVsFullTolerance = 1e-5;  // max |Δ| / max |reference|

using testing::random_tensor;
using testing::tiny_config;

// max |a − b| / max |b|; infinity on NaN/Inf (tests/reference/scaled_error.h).
double relative_error(const float* actual, const float* expected, int64_t count) {
  return testing::peak_relative_error(actual, expected, count);
}

// Frames [f0, f0 + n) of a [C, F, H, W] latent.
Tensor frames_of(const Tensor& latent, int64_t f0, int64_t n) {
  const int64_t c = latent.size(0), f = latent.size(1), hw = latent.size(2) * latent.size(3);
  Tensor out = Tensor::zeros({c, n, latent.size(2), latent.size(3)});
  for (int64_t ch = 0; ch < c; ++ch)
    std::memcpy(out.data<float>() + ch * n * hw, latent.data<float>() + (ch * f + f0) * hw, n * hw * sizeof(float));
  return out;
}

TEST(Rollout, ChunkedDenseMemoryEqualsFullBlockCausalForward) {
  const WanConfig config = tiny_config();
  WanModel model(config, random_wan_weights(config, 7));
  const int64_t frames = 9, chunk = 3;
  Tensor latent = random_tensor({config.in_dim, frames, 6, 8}, 1);
  std::vector<float> t = {0, 0, 0, 937.5f, 937.5f, 937.5f, 250, 250, 250};
  WanPrompt prompt = model.prepare_prompt(random_tensor({5, config.text_dim}, 2));

  WanForwardArgs full;
  full.latent = &latent;
  full.timesteps = &t;
  full.prompt = &prompt;
  full.causal_chunk_frames = chunk;
  Tensor expected = model.forward(full);

  DenseMemory memory(config.num_layers, config.num_heads, config.head_dim());
  for (int64_t f0 = 0; f0 < frames; f0 += chunk) {
    Tensor part = frames_of(latent, f0, chunk);
    std::vector<float> part_t(t.begin() + f0, t.begin() + f0 + chunk);
    WanForwardArgs args;
    args.latent = &part;
    args.timesteps = &part_t;
    args.prompt = &prompt;
    args.memory = &memory;
    args.frame_start = f0;
    // A read-only call first (as the denoising steps do), then the committing one: the read must
    // leave the memory untouched.
    model.forward(args);
    args.commit = true;
    Tensor got = model.forward(args);
    Tensor want = frames_of(expected, f0, chunk);
    const double err = relative_error(got.data<float>(), want.data<float>(), got.numel());
    EXPECT_LT(err, kChunkedVsFullTolerance) << "chunk at frame " << f0;
    EXPECT_EQ(memory.cached_frames(0), f0 + chunk);
  }
  // The mask matters: the same frames without it differ.
  full.causal_chunk_frames = 0;
  Tensor bidirectional = model.forward(full);
  EXPECT_GT(relative_error(bidirectional.data<float>(), expected.data<float>(), expected.numel()), 1e-3);
}

RolloutConfig small_rollout(uint64_t seed) {
  RolloutConfig r;
  r.seed = seed;
  r.latent_height = 4;
  r.latent_width = 6;
  r.schedule.frames_per_chunk = 2;
  return r;
}

std::vector<Tensor> roll_out(const WanModel& model, CrossFrameMemory& memory, const WanPrompt& prompt, RolloutConfig r,
                             int chunks) {
  SelfForcingRollout rollout(model, memory, prompt, r);
  std::vector<Tensor> out;
  for (int i = 0; i < chunks; ++i) out.push_back(rollout.next_chunk());
  return out;
}

TEST(Rollout, WindowCoveringAllFramesEqualsDense) {
  const WanConfig config = tiny_config();
  WanModel model(config, random_wan_weights(config, 3));
  WanPrompt prompt = model.prepare_prompt(random_tensor({8, config.text_dim}, 4));
  const int chunks = 5;  // 10 frames
  DenseMemory dense(config.num_layers, config.num_heads, config.head_dim());
  WindowMemory window_only(config.num_layers, config.num_heads, config.head_dim(), /*window=*/10, /*sink=*/0);
  WindowMemory window_and_sink(config.num_layers, config.num_heads, config.head_dim(), /*window=*/7, /*sink=*/3);
  auto a = roll_out(model, dense, prompt, small_rollout(11), chunks);
  auto b = roll_out(model, window_only, prompt, small_rollout(11), chunks);
  auto c = roll_out(model, window_and_sink, prompt, small_rollout(11), chunks);
  for (int i = 0; i < chunks; ++i) {
    ASSERT_EQ(0, std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes())) << "chunk " << i;
    ASSERT_EQ(0, std::memcmp(a[i].raw_data(), c[i].raw_data(), a[i].nbytes())) << "chunk " << i;
  }
  // A window shorter than the video forgets, so it must differ somewhere.
  WindowMemory short_window(config.num_layers, config.num_heads, config.head_dim(), /*window=*/2, /*sink=*/0);
  auto d = roll_out(model, short_window, prompt, small_rollout(11), chunks);
  EXPECT_NE(0, std::memcmp(a.back().raw_data(), d.back().raw_data(), a.back().nbytes()));
}

TEST(Rollout, WindowKeepsSinkAndLastFramesAndNeverMore) {
  const WanConfig config = tiny_config();
  WanModel model(config, random_wan_weights(config, 3));
  WanPrompt prompt = model.prepare_prompt(random_tensor({8, config.text_dim}, 4));
  WindowMemory memory(config.num_layers, config.num_heads, config.head_dim(), /*window=*/3, /*sink=*/2);
  SelfForcingRollout rollout(model, memory, prompt, small_rollout(5));
  for (int chunk = 0; chunk < 6; ++chunk) {
    rollout.next_chunk();
    const int64_t committed = rollout.frames_generated();
    for (int64_t layer = 0; layer < config.num_layers; ++layer) {
      const auto& ids = memory.layer_store(layer).frame_ids();
      std::vector<int64_t> expected;
      for (int64_t f = 0; f < committed; ++f)
        if (f < 2 || f >= committed - 3) expected.push_back(f);
      ASSERT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), expected) << "after chunk " << chunk;
    }
    EXPECT_LE(memory.cached_frames(0), 5);
  }
}

TEST(Rollout, SeedDeterminesTheVideo) {
  const WanConfig config = tiny_config();
  WanModel model(config, random_wan_weights(config, 3));
  WanPrompt prompt = model.prepare_prompt(random_tensor({8, config.text_dim}, 4));
  DenseMemory m1(config.num_layers, config.num_heads, config.head_dim()), m2 = m1, m3 = m1;
  auto a = roll_out(model, m1, prompt, small_rollout(1), 2);
  auto b = roll_out(model, m2, prompt, small_rollout(1), 2);
  auto c = roll_out(model, m3, prompt, small_rollout(2), 2);
  EXPECT_EQ(0, std::memcmp(a[1].raw_data(), b[1].raw_data(), a[1].nbytes()));
  EXPECT_NE(0, std::memcmp(a[1].raw_data(), c[1].raw_data(), a[1].nbytes()));
  for (int64_t i = 0; i < a[1].numel(); ++i) ASSERT_TRUE(std::isfinite(a[1].data<float>()[i]));
}

TEST(Rollout, RopeTimeIndexIsTheGlobalFrameFarPastTheTrainedTable) {
  // Frame 5000 is past the 1024-entry RoPE table of the PyTorch code; fastar computes the angle.
  // The same clip (2 clean frames in memory, then 2 noisy ones) placed at frame 0 and at frame
  // 5000 must give the same output and stay finite: a wrapped or clamped table would break it.
  const WanConfig config = tiny_config();
  WanModel model(config, random_wan_weights(config, 9));
  WanPrompt prompt = model.prepare_prompt(random_tensor({8, config.text_dim}, 4));
  Tensor latent = random_tensor({config.in_dim, 2, 4, 6}, 5);
  std::vector<float> t = {500, 500};
  Tensor outs[2];
  const int64_t starts[2] = {0, 5000};
  for (int i = 0; i < 2; ++i) {
    DenseMemory memory(config.num_layers, config.num_heads, config.head_dim());
    Tensor past = random_tensor({config.in_dim, 2, 4, 6}, 6);
    std::vector<float> clean = {0, 0};
    WanForwardArgs args;
    args.prompt = &prompt;
    args.memory = &memory;
    args.latent = &past;
    args.timesteps = &clean;
    args.frame_start = starts[i];
    args.commit = true;
    model.forward(args);
    args.latent = &latent;
    args.timesteps = &t;
    args.frame_start = starts[i] + 2;
    args.commit = false;
    outs[i] = model.forward(args);
    for (int64_t j = 0; j < outs[i].numel(); ++j) ASSERT_TRUE(std::isfinite(outs[i].data<float>()[j]));
  }
  // Relative RoPE: attention depends on frame differences only, so both agree up to fp32 noise
  // in the angles (~1e-3 at index 5000 in fp32 products, less here in double).
  EXPECT_LT(relative_error(outs[1].data<float>(), outs[0].data<float>(), outs[0].numel()), 1e-3);
}

TEST(Schedule, WarpedTimestepsMatchSelfForcing) {
  SelfForcingSchedule s;  // [1000, 750, 500, 250], shift 5
  const std::vector<float> expected = {1000.0f, 937.5f, 833.3333f, 625.0f};
  const auto got = s.timesteps();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-3) << i;
  s.denoising_steps = {1000, 800, 600, 400, 200};  // Rolling Forcing's list
  const std::vector<float> rolling = {1000.0f, 952.381f, 882.353f, 769.231f, 555.556f};
  const auto got_rolling = s.timesteps();
  for (size_t i = 0; i < rolling.size(); ++i) EXPECT_NEAR(got_rolling[i], rolling[i], 1e-3) << i;
  s.denoising_steps = {1000, 500};
  EXPECT_NEAR(s.timesteps()[1], 833.3333f, 1e-3);
  EXPECT_EQ(SelfForcingSchedule::parse_steps("1000,750"), (std::vector<float>{1000, 750}));
  EXPECT_THROW(SelfForcingSchedule::parse_steps("1000,abc"), Error);
}

TEST(Schedule, DenoisingStepsMustStrictlyDecrease) {
  // Denoising runs from pure noise (t = 1000) down; an increasing or repeated list is a typo.
  SelfForcingSchedule s;
  for (const std::vector<float>& steps : {std::vector<float>{250, 500}, std::vector<float>{1000, 500, 750},
                                          std::vector<float>{1000, 500, 500}}) {
    s.denoising_steps = steps;
    try {
      s.validate();
      ADD_FAILURE() << "expected an error for steps " << ::testing::PrintToString(steps);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("strictly decreasing"), std::string::npos) << e.what();
    }
    EXPECT_THROW(s.timesteps(), Error);
  }
  s.denoising_steps = {1000, 750, 500, 250};
  EXPECT_NO_THROW(s.validate());
  s.denoising_steps = {500};
  EXPECT_NO_THROW(s.validate());
}

TEST(Noise, CounterBasedStandardNormal) {
  std::vector<float> a(100001), b(37);
  gaussian_noise(a.data(), static_cast<int64_t>(a.size()), 42, 7);
  gaussian_noise(b.data(), static_cast<int64_t>(b.size()), 42, 7);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), b.size() * sizeof(float)));  // prefix-stable
  double sum = 0, sum_sq = 0;
  for (float v : a) sum += v, sum_sq += double(v) * v;
  const double mean = sum / a.size(), var = sum_sq / a.size() - mean * mean;
  EXPECT_LT(std::fabs(mean), 0.02);  // 6σ of the sample mean is ~0.019
  EXPECT_NEAR(var, 1.0, 0.03);
  std::vector<float> other(37);
  gaussian_noise(other.data(), 37, 42, 8);
  EXPECT_NE(0, std::memcmp(other.data(), b.data(), b.size() * sizeof(float)));
}

}  // namespace
}  // namespace fastar
