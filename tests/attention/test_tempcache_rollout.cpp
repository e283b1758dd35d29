// TempCache inside a whole Self-Forcing rollout of the tiny golden model.
#include <gtest/gtest.h>

#include <cmath>
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

// At the paper's threshold the tiny model's keys do merge, and the figures are those of the cache
// the rollout left behind: per head, every committed token either started a group or merged into
// one (representatives + merges = tokens, Σ m = tokens, bias = log m), density = representatives /
// tokens, and recall was measured on every call (steps + the clean context pass) of every head and
// query, strictly below 1 because groups merged. Negative control: the same rollout above
// threshold 1 merges nothing, keeps density 1 and recall 1.
TEST_F(TempCacheRollout, DefaultThresholdMergesAndReportsTheCachesFigures) {
  const int chunks = 4;
  const RolloutConfig rollout = small_rollout(17);
  const int64_t tokens_per_call = rollout.schedule.frames_per_chunk * 24;
  const int64_t calls_per_chunk = static_cast<int64_t>(rollout.schedule.denoising_steps.size()) + 1;
  for (AnnBackend ann : {AnnBackend::lsh, AnnBackend::quant}) {
    SCOPED_TRACE(ann_backend_name(ann));
    TempCacheOptions o;
    o.ann = ann;
    o.recall = true;
    TempCacheMemory tc(layers, heads, head_dim, o);
    roll_out(model, tc, prompt, chunks);
    const TempCacheStats s = tc.stats();
    ASSERT_EQ(int64_t(s.layers.size()), layers);
    const int64_t tokens = chunks * tokens_per_call;  // every chunk commits (next_chunk default)
    int64_t merges = 0;
    for (int64_t l = 0; l < layers; ++l) {
      SCOPED_TRACE(::testing::Message() << "layer " << l);
      const TempCacheLayerStats& layer = s.layers[static_cast<size_t>(l)];
      EXPECT_EQ(layer.dense_tokens, tokens);
      int64_t representatives = 0, layer_merges = 0;
      for (int64_t h = 0; h < heads; ++h) {
        const TempCacheHead& head = tc.head(l, h);
        int64_t members = 0;
        for (int64_t g = 0; g < head.size(); ++g) {
          const int64_t m = head.counts()[static_cast<size_t>(g)];
          ASSERT_GE(m, 1);
          members += m;
          EXPECT_FLOAT_EQ(head.log_counts()[g], static_cast<float>(std::log(static_cast<double>(m))));
        }
        EXPECT_EQ(members, tokens) << "head " << h;
        EXPECT_EQ(head.size() + head.merges(), tokens) << "head " << h;
        representatives += head.size();
        layer_merges += head.merges();
      }
      EXPECT_EQ(layer.merges, layer_merges);
      EXPECT_DOUBLE_EQ(layer.cached_tokens, static_cast<double>(representatives) / static_cast<double>(heads));
      EXPECT_DOUBLE_EQ(layer.density, layer.cached_tokens / static_cast<double>(tokens));
      EXPECT_EQ(layer.recall_samples, chunks * calls_per_chunk * heads * tokens_per_call);
      merges += layer_merges;
    }
    EXPECT_EQ(s.total.merges, merges);
    EXPECT_GT(s.total.merges, 0) << "the golden model's keys no longer merge at the default threshold";
    EXPECT_LT(s.total.density, 1.0);
    EXPECT_GT(s.total.density, 0.0);
    EXPECT_LT(s.total.recall, 1.0);
    EXPECT_GT(s.total.recall, 0.5);
    std::printf("golden tiny model, %s: %s\n", ann_backend_name(ann), format_tempcache_summary(s).c_str());

    o.threshold = 1.5f;  // negative control: nothing can merge
    TempCacheMemory none(layers, heads, head_dim, o);
    roll_out(model, none, prompt, chunks);
    const TempCacheStats n = none.stats();
    EXPECT_EQ(n.total.merges, 0);
    EXPECT_EQ(n.total.density, 1.0);
    EXPECT_NEAR(n.total.recall, 1.0, 1e-9);
  }
}

}  // namespace
}  // namespace fastar
