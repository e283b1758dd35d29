// TempCache inside a whole Self-Forcing rollout of the tiny golden model.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "fastar/attention/kv_policies.h"
#include "fastar/attention/tempcache_memory.h"
#include "fastar/model/wan_dit.h"
#include "fastar/rollout/self_forcing.h"
#include "test_util.h"

namespace fastar {
namespace {

RolloutConfig small_rollout(uint64_t seed) {
  RolloutConfig r;
  r.seed = seed;
  r.latent_height = 8;  // 4 x 6 = 24 tokens per frame
  r.latent_width = 12;
  r.schedule.frames_per_chunk = 2;
  return r;
}

std::vector<Tensor> roll_out(const WanModel& model, CrossFrameMemory& memory, const WanPrompt& prompt, int chunks) {
  SelfForcingRollout rollout(model, memory, prompt, small_rollout(17));
  std::vector<Tensor> out;
  for (int i = 0; i < chunks; ++i) out.push_back(rollout.next_chunk());
  return out;
}

class TempCacheRollout : public ::testing::Test {
 protected:
  WanModel model = WanModel::load(testing::source_path("tests/model/golden/wan_tiny_original"));
  WanPrompt prompt = model.prepare_prompt(Tensor::zeros({model.config().text_len, model.config().text_dim}));
  int64_t layers = model.config().num_layers, heads = model.config().num_heads, head_dim = model.config().head_dim();
};

TEST_F(TempCacheRollout, ThresholdAboveOneEqualsDenseAndWindowBitwise) {
  const int chunks = 5;
  for (AnnBackend ann : {AnnBackend::lsh, AnnBackend::quant}) {
    TempCacheOptions o;
    o.ann = ann;
    o.threshold = 1.5f;
    DenseMemory dense(layers, heads, head_dim);
    TempCacheMemory tc(layers, heads, head_dim, o);
    o.window = 4;
    o.sink = 2;
    WindowMemory window(layers, heads, head_dim, 4, 2);
    TempCacheMemory tc_window(layers, heads, head_dim, o);
    auto a = roll_out(model, dense, prompt, chunks), b = roll_out(model, tc, prompt, chunks);
    auto c = roll_out(model, window, prompt, chunks), d = roll_out(model, tc_window, prompt, chunks);
    for (int i = 0; i < chunks; ++i) {
      ASSERT_EQ(0, std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes())) << ann_backend_name(ann) << " chunk " << i;
      ASSERT_EQ(0, std::memcmp(c[i].raw_data(), d[i].raw_data(), c[i].nbytes())) << ann_backend_name(ann) << " chunk " << i;
    }
    EXPECT_EQ(tc.stats().total.merges, 0);
    EXPECT_NE(0, std::memcmp(a.back().raw_data(), c.back().raw_data(), a.back().nbytes()));  // the window mattered
  }
}

// At the paper's threshold the rollout runs, merges something or nothing, and reports figures that
// are consistent: density in (0, 1], recall in (0, 1], 1 when nothing merged.
TEST_F(TempCacheRollout, DefaultThresholdReportsConsistentStatistics) {
  for (AnnBackend ann : {AnnBackend::lsh, AnnBackend::quant}) {
    TempCacheOptions o;
    o.ann = ann;
    o.recall = true;
    TempCacheMemory tc(layers, heads, head_dim, o);
    roll_out(model, tc, prompt, 4);
    const TempCacheStats s = tc.stats();
    ASSERT_EQ(int64_t(s.layers.size()), layers);
    EXPECT_EQ(s.layers[0].dense_tokens, 4 * 2 * 24);  // every chunk commits (next_chunk default)
    EXPECT_GT(s.total.density, 0.0);
    EXPECT_LE(s.total.density, 1.0);
    EXPECT_GT(s.total.recall, 0.0);
    EXPECT_LE(s.total.recall, 1.0 + 1e-12);
    if (s.total.merges == 0) EXPECT_NEAR(s.total.recall, 1.0, 1e-9);
    std::printf("golden tiny model, %s: %s\n", ann_backend_name(ann), format_tempcache_summary(s).c_str());
  }
}

}  // namespace
}  // namespace fastar
