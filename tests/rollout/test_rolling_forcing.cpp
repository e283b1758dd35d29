// Rolling Forcing (wan-spec.md §5): the rolling-window schedule, its identity with Self-Forcing at
// one step, and the rolling sink memory's invariants.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "fastar/attention/kv_policies.h"
#include "fastar/attention/rolling_sink_memory.h"
#include "fastar/core/error.h"
#include "fastar/kernels/cpu/ops.h"
#include "fastar/model/wan_dit.h"
#include "fastar/rollout/rolling_forcing.h"
#include "fastar/rollout/self_forcing.h"
#include "rollout_fixtures.h"
#include "test_util.h"

namespace fastar {
namespace {

using testing::random_tensor;
using testing::tiny_config;

// Rolling Forcing's released numbers: 5 steps, shift 5, blocks of 3 frames (here 2 to stay small).
RolloutConfig rolling_config(uint64_t seed, int64_t frames_per_chunk, std::vector<float> steps) {
  RolloutConfig r;
  r.seed = seed;
  r.latent_height = 4;
  r.latent_width = 6;
  r.schedule.frames_per_chunk = frames_per_chunk;
  r.schedule.denoising_steps = std::move(steps);
  r.schedule.shift = 5.0f;
  return r;
}

const std::vector<float> kRfSteps = {1000, 800, 600, 400, 200};
// The warped list reversed: oldest block first (wan-spec.md §5).
const std::vector<float> kRfReversed = {555.556f, 769.231f, 882.353f, 952.381f, 1000.0f};

std::vector<float> repeated(const std::vector<float>& per_block, int64_t frames) {
  std::vector<float> out;
  for (float t : per_block) out.insert(out.end(), static_cast<size_t>(frames), t);
  return out;
}

void expect_timesteps(const std::vector<float>& got, const std::vector<float>& want, int64_t window) {
  ASSERT_EQ(got.size(), want.size()) << "window " << window;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-3) << "window " << window << " frame " << i;
}

TEST(RollingForcing, WindowCoverage) {
  // nb = 7 blocks, W = 5: 11 windows.
  auto w0 = rolling_window(0, 7, 5);
  EXPECT_EQ(w0.first, 0);
  EXPECT_EQ(w0.last, 0);
  EXPECT_EQ(w0.steps, (std::vector<int64_t>{0}));
  auto w4 = rolling_window(4, 7, 5);
  EXPECT_EQ(w4.first, 0);
  EXPECT_EQ(w4.last, 4);
  EXPECT_EQ(w4.steps, (std::vector<int64_t>{4, 3, 2, 1, 0}));
  auto w8 = rolling_window(8, 7, 5);
  EXPECT_EQ(w8.first, 4);
  EXPECT_EQ(w8.last, 6);
  EXPECT_EQ(w8.steps, (std::vector<int64_t>{4, 3, 2}));
  auto w10 = rolling_window(10, 7, 5);
  EXPECT_EQ(w10.first, 6);
  EXPECT_EQ(w10.last, 6);
  EXPECT_EQ(w10.steps, (std::vector<int64_t>{4}));
  auto streaming = rolling_window(10, -1, 5);  // no tail while streaming
  EXPECT_EQ(streaming.first, 6);
  EXPECT_EQ(streaming.last, 10);
}

TEST(RollingForcing, ScheduleCallsAndOutputOrder) {
  const WanConfig config = tiny_config();
  WanModel model(config, random_wan_weights(config, 3));
  WanPrompt prompt = model.prepare_prompt(random_tensor({8, config.text_dim}, 4));
  const int64_t frames = 2, nb = 10, steps = 5;  // 20 frames: past the 16-frame cap
  // The reference's memory scaled to 2-frame blocks: sink 1 block, cap 8 blocks, attention 7 blocks.
  RollingSinkMemory memory(config.num_layers, config.num_heads, config.head_dim(), frames, 8 * frames, 7 * frames);
  RollingForcingRollout rollout(model, memory, prompt, rolling_config(1, frames, kRfSteps), nb);
  ASSERT_EQ(rollout.timesteps().size(), static_cast<size_t>(steps));

  std::vector<std::vector<float>> window_t;
  std::vector<int64_t> first_blocks, finished_at;
  for (int64_t w = 0; !rollout.done(); ++w) {
    ASSERT_LT(w, nb + steps - 1) << "too many windows";
    Tensor out = rollout.advance();
    window_t.push_back(rollout.last_window_timesteps());
    first_blocks.push_back(rollout.last_window_first_block());
    if (out.defined()) {
      finished_at.push_back(w);
      ASSERT_EQ(out.size(1), frames);
      for (int64_t i = 0; i < out.numel(); ++i) ASSERT_TRUE(std::isfinite(out.data<float>()[i]));
    }
    EXPECT_LE(memory.max_attention_frames_seen(), 7 * frames);
    EXPECT_LE(memory.cached_frames(0), 8 * frames);
  }
  ASSERT_EQ(window_t.size(), static_cast<size_t>(nb + steps - 1));
  EXPECT_EQ(rollout.dit_calls(), (nb + steps - 1) + nb);
  EXPECT_EQ(rollout.frames_generated(), nb * frames);
  // Block b is output once, at window b + W − 1, in order.
  ASSERT_EQ(finished_at.size(), static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) EXPECT_EQ(finished_at[static_cast<size_t>(b)], b + steps - 1);
  // First window: the newest block alone at t = 1000; then the noisiest tail grows.
  expect_timesteps(window_t[0], repeated({1000.0f}, frames), 0);
  expect_timesteps(window_t[1], repeated({952.381f, 1000.0f}, frames), 1);
  // Full windows (4..nb−1): oldest at 555.556, newest at 1000.
  for (int64_t w = 4; w <= nb - 1; ++w) {
    expect_timesteps(window_t[static_cast<size_t>(w)], repeated(kRfReversed, frames), w);
    EXPECT_EQ(first_blocks[static_cast<size_t>(w)], w - 4);
  }
  // Tail: the cleanest head.
  expect_timesteps(window_t[nb + 1], repeated({555.556f, 769.231f, 882.353f}, frames), nb + 1);
  expect_timesteps(window_t[nb + 3], repeated({555.556f}, frames), nb + 3);
  EXPECT_EQ(first_blocks[nb + 1], nb - 3);
  EXPECT_EQ(first_blocks[nb + 3], nb - 1);
  EXPECT_THROW(rollout.advance(), Error);
  // The sink (the first block) is still held, and the cap was respected.
  const auto ids = memory.frame_ids(0);
  ASSERT_EQ(static_cast<int64_t>(ids.size()), 8 * frames);
  for (int64_t i = 0; i < frames; ++i) EXPECT_EQ(ids[i], i);
  EXPECT_EQ(ids[frames], nb * frames - (8 - 1) * frames);
  EXPECT_EQ(ids.back(), nb * frames - 1);
}

TEST(RollingForcing, StreamingEqualsFiniteVideo) {
  const WanConfig config = tiny_config();
  WanModel model(config, random_wan_weights(config, 3));
  WanPrompt prompt = model.prepare_prompt(random_tensor({8, config.text_dim}, 4));
  const int64_t frames = 1, nb = 5;
  const std::vector<float> steps = {1000, 750, 500};
  std::vector<Tensor> finite, streamed;
  {
    RollingSinkMemory memory(config.num_layers, config.num_heads, config.head_dim(), 1, 6, 5);
    RollingForcingRollout rollout(model, memory, prompt, rolling_config(9, frames, steps), nb);
    while (!rollout.done())
      if (Tensor t = rollout.advance(); t.defined()) finite.push_back(t);
  }
  {
    RollingSinkMemory memory(config.num_layers, config.num_heads, config.head_dim(), 1, 6, 5);
    RollingForcingRollout rollout(model, memory, prompt, rolling_config(9, frames, steps));
    for (int64_t i = 0; i < nb; ++i) {
      if (Tensor t = rollout.advance(); t.defined()) streamed.push_back(t);
      EXPECT_FALSE(rollout.done());
    }
    EXPECT_EQ(rollout.blocks_entered(), nb);
    rollout.finish();
    while (!rollout.done())
      if (Tensor t = rollout.advance(); t.defined()) streamed.push_back(t);
    EXPECT_EQ(rollout.blocks_entered(), nb);
  }
  ASSERT_EQ(finite.size(), static_cast<size_t>(nb));
  ASSERT_EQ(streamed.size(), static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b)
    EXPECT_EQ(0, std::memcmp(finite[b].raw_data(), streamed[b].raw_data(), finite[b].nbytes())) << "block " << b;
}

TEST(RollingForcing, OneStepEqualsSelfForcingBitwise) {
  // W = 1: every window is one block at t = 1000 that finishes at once, then its context pass —
  // Self-Forcing with the single step [1000]. Same noise streams; a memory whose limits exceed the
  // video presents the sink at its own position (shift 0) and lays keys out as DenseMemory does.
  const WanConfig config = tiny_config();
  WanModel model(config, random_wan_weights(config, 5));
  WanPrompt prompt = model.prepare_prompt(random_tensor({8, config.text_dim}, 6));
  const int64_t frames = 2, nb = 5;
  const RolloutConfig r = rolling_config(21, frames, {1000});
  DenseMemory dense(config.num_layers, config.num_heads, config.head_dim());
  RollingSinkMemory rolling(config.num_layers, config.num_heads, config.head_dim(), frames, 100, 100);
  SelfForcingRollout sf(model, dense, prompt, r);
  RollingForcingRollout rf(model, rolling, prompt, r, nb);
  for (int64_t b = 0; b < nb; ++b) {
    Tensor a = sf.next_chunk();
    Tensor c = rf.advance();
    ASSERT_TRUE(c.defined());
    ASSERT_EQ(0, std::memcmp(a.raw_data(), c.raw_data(), a.nbytes())) << "block " << b;
  }
  EXPECT_TRUE(rf.done());
  EXPECT_EQ(sf.dit_calls(), rf.dit_calls());
}

TEST(RollingForcing, SinkMemoryWithLargeLimitsEqualsDenseBitwise) {
  const WanConfig config = tiny_config();
  WanModel model(config, random_wan_weights(config, 5));
  WanPrompt prompt = model.prepare_prompt(random_tensor({8, config.text_dim}, 6));
  RolloutConfig r = rolling_config(2, 2, {1000, 750, 500, 250});
  DenseMemory dense(config.num_layers, config.num_heads, config.head_dim());
  RollingSinkMemory rolling(config.num_layers, config.num_heads, config.head_dim(), 2, 100, 100);
  SelfForcingRollout a(model, dense, prompt, r), b(model, rolling, prompt, r);
  for (int i = 0; i < 4; ++i) {
    Tensor x = a.next_chunk(), y = b.next_chunk();
    ASSERT_EQ(0, std::memcmp(x.raw_data(), y.raw_data(), x.nbytes())) << "chunk " << i;
  }
}

// ---- RollingSinkMemory driven directly with the reference's numbers (3-frame blocks, W = 5) ----

struct MemoryHarness {
  static constexpr int64_t heads = 2, head_dim = 32, h = 1, w = 2, tpf = h * w, row = heads * head_dim;
  RollingSinkMemory memory{1, heads, head_dim, /*sink=*/3, /*cap=*/24, /*max attention=*/21};
  std::vector<std::vector<float>> raw_keys;  // per committed frame, un-roped

  std::vector<float> rope(const float* raw, int64_t frames, int64_t position) const {
    std::vector<float> k(raw, raw + frames * tpf * row);
    cpu::rope_3d_forward(k.data(), row, frames, h, w, position, heads, head_dim);
    return k;
  }
  void call(int64_t frame_start, int64_t frames, bool commit, uint64_t seed) {
    const int64_t n = frames * tpf * row;
    const auto raw = testing::random_normal(n, seed);
    const auto q = testing::random_normal(n, seed + 1), v = testing::random_normal(n, seed + 2);
    const auto k = rope(raw.data(), frames, frame_start);
    std::vector<float> out(static_cast<size_t>(n));
    memory.attend(0, MemoryCall{frame_start, frames, tpf, commit}, q.data(), k.data(), v.data(), out.data());
    for (float x : out) ASSERT_TRUE(std::isfinite(x));
    if (commit)
      for (int64_t f = 0; f < frames; ++f) {
        const int64_t id = frame_start + f;
        if (static_cast<int64_t>(raw_keys.size()) <= id) raw_keys.resize(static_cast<size_t>(id + 1));
        raw_keys[static_cast<size_t>(id)].assign(raw.begin() + f * tpf * row, raw.begin() + (f + 1) * tpf * row);
      }
  }
};

TEST(RollingForcing, SinkMemoryInvariants) {
  MemoryHarness m;
  const int64_t F = 3, W = 5, nb = 14;
  for (int64_t win = 0; win <= nb + W - 2; ++win) {
    const RollingWindow rw = rolling_window(win, nb, W);
    const MemoryCall call{rw.first * F, (rw.last - rw.first + 1) * F, m.tpf, false};
    const auto plan = m.memory.plan(0, call);
    const bool sink_committed = rw.first >= 1;
    if (sink_committed) {
      // Sink always present, first in key order, contiguous positions just before the working cache.
      ASSERT_GE(plan.frame_ids.size(), 3u) << "window " << win;
      int64_t working = 0;
      for (size_t i = 0; i < plan.frame_ids.size(); ++i) {
        EXPECT_EQ(plan.is_sink[i], i < 3);
        if (i < 3) EXPECT_EQ(plan.frame_ids[i], static_cast<int64_t>(i));
        else {
          EXPECT_EQ(plan.positions[i], plan.frame_ids[i]);  // working frames keep their global position
          ++working;
        }
      }
      const int64_t after = working > 0 ? plan.frame_ids[3] : call.frame_start;
      for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(plan.positions[static_cast<size_t>(i)], after - 3 + i);
      // Working cache = the most recent frames before the call, sized by the attention budget.
      const int64_t budget = 21 - call.num_frames - 3;
      EXPECT_EQ(working, std::min<int64_t>(budget, call.frame_start - 3)) << "window " << win;
      if (working > 0) EXPECT_EQ(plan.frame_ids.back(), call.frame_start - 1);
      // A full window in steady state: [sink, one block, 15 frames] = 21 frames, sink at start − 6.
      if (rw.last - rw.first + 1 == W && rw.first >= 2) {
        EXPECT_EQ(working, 3);
        EXPECT_EQ(plan.positions[0], call.frame_start - 6);
      }
      // The re-rotated sink equals the raw sink keys roped at the presented position.
      const auto keys = m.memory.presented_keys(0, call);
      std::vector<float> raw_sink;
      for (int64_t i = 0; i < 3; ++i)
        raw_sink.insert(raw_sink.end(), m.raw_keys[static_cast<size_t>(i)].begin(), m.raw_keys[static_cast<size_t>(i)].end());
      const auto expected = m.rope(raw_sink.data(), 3, plan.positions[0]);
      const std::vector<float> got(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(expected.size()));
      EXPECT_LE(testing::max_scaled_error(got.data(), testing::to_double(expected).data(),
                                          static_cast<int64_t>(expected.size()), testing::kF32RelTol, testing::kF32AbsTol),
                1.0)
          << "window " << win << " sink at " << plan.positions[0];
    } else {
      EXPECT_TRUE(plan.frame_ids.empty());
    }
    m.call(call.frame_start, call.num_frames, false, 100 + 7 * static_cast<uint64_t>(win));
    EXPECT_EQ(m.memory.last_attention_frames(), static_cast<int64_t>(plan.frame_ids.size()) + call.num_frames);
    EXPECT_LE(m.memory.last_attention_frames(), 21);
    if (rw.steps.front() == W - 1) {  // the oldest block finished: its context pass commits it
      const int64_t b = rw.first;
      const MemoryCall commit{b * F, F, m.tpf, true};
      const auto cplan = m.memory.plan(0, commit);
      // Once [cache + block] exceeds 21 frames the commit slice no longer starts at 0: no sink.
      const int64_t held_before = m.memory.cached_frames(0);
      const bool slice_from_zero = std::min<int64_t>(held_before + F, 24) <= 21;
      EXPECT_EQ(!cplan.frame_ids.empty() && cplan.is_sink[0], slice_from_zero && b >= 1) << "block " << b;
      for (size_t i = 0; i < cplan.frame_ids.size(); ++i) EXPECT_EQ(cplan.positions[i], cplan.frame_ids[i]);
      m.call(commit.frame_start, F, true, 5000 + 11 * static_cast<uint64_t>(b));
      EXPECT_LE(m.memory.last_attention_frames(), 21);
      // Never more than the cap; the sink pinned; the rest the most recent committed frames.
      const auto ids = m.memory.frame_ids(0);
      const int64_t committed = (b + 1) * F;
      EXPECT_EQ(static_cast<int64_t>(ids.size()), std::min<int64_t>(committed, 24));
      for (int64_t i = 0; i < static_cast<int64_t>(ids.size()); ++i) {
        const int64_t want = i < 3 ? i : committed - (static_cast<int64_t>(ids.size()) - i);
        EXPECT_EQ(ids[static_cast<size_t>(i)], want) << "after block " << b;
      }
    }
  }
  EXPECT_LE(m.memory.max_attention_frames_seen(), 21);
  EXPECT_EQ(m.memory.max_attention_frames_seen(), 21);  // the reference's 3 + 3 + 15
  EXPECT_EQ(m.memory.cached_frames(0), 24);
}

TEST(RollingForcing, SinkMemoryRejectsCallsBeyondTheAttentionBudget) {
  RollingSinkMemory memory(1, 2, 32, 3, 24, 21);
  EXPECT_THROW(RollingSinkMemory(1, 2, 32, 4, 3, 21), Error);  // cap smaller than the sink
  std::vector<float> x(static_cast<size_t>(22 * 2 * 64), 0.1f), out(x.size());
  EXPECT_THROW(memory.attend(0, MemoryCall{0, 22, 2, false}, x.data(), x.data(), x.data(), out.data()), Error);
}

}  // namespace
}  // namespace fastar
