// The policy registry and the one grammar (session/policy_registry.h, policy_spec.h): every
// registered policy at its neutral setting equals dense bit for bit (table-driven: a new policy is
// tested by registering it), the same options resolve to the same spec on the CPU and the GPU, and
// defaults come from the options, then the model's fastar_defaults, then the library.
#include <gtest/gtest.h>

#include "fastar/core/error.h"
#include "fastar/rollout/schedule.h"
#include "fastar/session/policy_registry.h"
#include "session/session_fixtures.h"

namespace fastar {
namespace {

using testing::frames_hash;
using testing::golden_model;
using testing::roll;

std::vector<RgbFrame> golden_frames(const std::string& policy, const OptionMap& options) {
  SessionOptions o;
  o.policy = policy;
  o.policy_options = options;
  Session session(golden_model(), o);
  return roll(session, 3);
}

TEST(PolicyRegistry, EveryPolicyAtItsNeutralSettingEqualsDense) {
  const std::vector<RgbFrame> dense = golden_frames("dense", {});
  ASSERT_EQ(dense.size(), 9u);
  for (const PolicyEntry& entry : policy_registry()) {
    SCOPED_TRACE(entry.name);
    ASSERT_TRUE(entry.make_cpu && entry.memory_bytes);
    if (entry.neutral_policy.empty()) {  // allowed only with a reason (ARL²'s trained state)
      EXPECT_FALSE(entry.no_neutral_setting.empty()) << "an entry names its neutral setting or says why it has none";
      continue;
    }
    const std::vector<RgbFrame> got = golden_frames(entry.neutral_policy, entry.neutral_options);
    ASSERT_EQ(got.size(), dense.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].rgb, dense[i].rgb) << "frame " << i;
  }
}

TEST(PolicyRegistry, AWindowThatForgetsDiffersFromDense) {  // the comparison above can fail
  const std::vector<RgbFrame> dense = golden_frames("dense", {});
  const std::vector<RgbFrame> window = golden_frames("window", {{"window", "1"}, {"sink", "0"}});
  EXPECT_NE(frames_hash(window), frames_hash(dense));
}

TEST(PolicyRegistry, SameOptionsResolveToTheSameSpecOnCpuAndGpu) {
  // The divergence this registry removes: `generate --policy tempcache --window 5` on the world model
  // kept a hard-coded 3-frame sink on the CPU and the model's 0 on the GPU.
  const WanConfig& config = testing::world_model()->config();
  const std::vector<float> steps = SelfForcingSchedule().timesteps();
  const std::vector<std::pair<std::string, OptionMap>> cases = {
      {"tempcache", {{"window", "5"}}},
      {"tempcache+window", {}},
      {"arl2+window", {{"sink", "2"}}},
      {"window", {}},
      {"", {}},
      {"tempcache+window+annsa+annca", {{"annsa-bits", "3"}, {"tempcache-threshold", "0.95"}}},
  };
  for (const auto& [policy, options] : cases) {
    SCOPED_TRACE(policy);
    const PolicySpec cpu = resolve_policy(policy, options, config, steps, Device::CPU, "test");
    const PolicySpec gpu = resolve_policy(policy, options, config, steps, Device::CUDA, "test");
    EXPECT_EQ(cpu.name(), gpu.name());
    EXPECT_EQ(cpu.windowed, gpu.windowed);
    EXPECT_EQ(cpu.window, gpu.window);
    EXPECT_EQ(cpu.sink, gpu.sink);
    EXPECT_EQ(cpu.tempcache.window, gpu.tempcache.window);
    EXPECT_EQ(cpu.tempcache.sink, gpu.tempcache.sink);
    EXPECT_EQ(cpu.tempcache.threshold, gpu.tempcache.threshold);
    EXPECT_EQ(cpu.annsa_options.bits, gpu.annsa_options.bits);
    EXPECT_EQ(cpu.annsa_options.schedule.layers, gpu.annsa_options.schedule.layers);
    // The only device default by design: AnnSA's tiles (the Hopper kernel's 128x128 on the GPU).
    EXPECT_EQ(cpu.annsa_options.block_q, 64);
    EXPECT_EQ(gpu.annsa_options.block_q, 128);
  }
  const PolicySpec tc = resolve_policy("tempcache", {{"window", "5"}}, config, steps, Device::CPU, "test");
  EXPECT_TRUE(tc.windowed);
  EXPECT_EQ(tc.window, 5);
  EXPECT_EQ(tc.sink, 0);  // the world model's fastar_defaults.sink, not the library's 3
  EXPECT_EQ(tc.tempcache.sink, 0);
}

TEST(PolicyRegistry, DefaultsResolveOptionsThenModelThenLibrary) {
  const std::vector<float> steps = SelfForcingSchedule().timesteps();
  const WanConfig& world = testing::world_model()->config();
  const PolicySpec model_default = resolve_policy("", {}, world, steps, Device::CPU, "test");
  EXPECT_EQ(model_default.name(), "window");  // fastar_defaults: window 9, sink 0
  EXPECT_EQ(model_default.window, 9);
  EXPECT_EQ(model_default.sink, 0);
  const PolicySpec given = resolve_policy("window", {{"sink", "1"}}, world, steps, Device::CPU, "test");
  EXPECT_EQ(given.window, 9);
  EXPECT_EQ(given.sink, 1);
  const WanConfig& golden = golden_model()->config();  // no fastar_defaults
  EXPECT_EQ(resolve_policy("", {}, golden, steps, Device::CPU, "test").name(), "dense");
  const PolicySpec library = resolve_policy("arl2+window", {}, golden, steps, Device::CPU, "test");
  EXPECT_EQ(library.window, kDefaultWindow);
  EXPECT_EQ(library.sink, kDefaultSink);
  EXPECT_EQ(resolve_policy("tempcache", {{"window", "4"}}, golden, steps, Device::CPU, "test").name(), "tempcache+window");
}

TEST(PolicyRegistry, TheGrammarRejectsWhatItDoesNotKnow) {
  const std::vector<float> steps = SelfForcingSchedule().timesteps();
  const WanConfig& golden = golden_model()->config();
  struct Case {
    std::string policy;
    OptionMap options;
    std::string message;
  } cases[] = {
      {"lru", {}, "unknown policy 'lru'"},
      {"dense+annsa+annsa", {}, "names annsa twice"},
      {"annsa", {}, "needs a cache policy first"},
      {"dense+fast", {}, "unknown module 'fast'"},
      {"dense", {{"window", "3"}}, "apply only to --policy window, tempcache or arl2"},
      {"dense+window", {}, "apply only to --policy window, tempcache or arl2"},
      {"arl2+annsa", {}, "annsa wraps dense, window or tempcache, not arl2"},
      {"window", {{"tempcache-threshold", "0.8"}}, "apply only to --policy tempcache"},
      {"window", {{"annsa-bits", "3"}}, "applies only with +annsa"},
      {"window+annsa", {{"annsa-blocks", "12"}}, "--annsa-blocks must be BQxBK"},
      {"tempcache", {{"tempcache-threshold", "nan"}}, "--tempcache-threshold must be a number >= -1"},
      {"window", {{"window", "-1"}}, "--window must be in"},
  };
  for (const Case& c : cases) {
    try {
      resolve_policy(c.policy, c.options, golden, steps, Device::CPU, "test");
      ADD_FAILURE() << c.policy << " was accepted";
    } catch (const Error& e) {
      EXPECT_TRUE(testing::contains(e.what(), c.message)) << c.policy << ": " << e.what();
    }
  }
}

TEST(PolicyRegistry, MemoryEstimateBoundsWhatThePolicyHolds) {
  // The estimate is an upper bound of the CPU policy's bytes after the rollout (fp32 K/V).
  const auto model = golden_model();
  const WanConfig& c = model->config();
  const int64_t tpf = (c.latent_height / c.patch_h) * (c.latent_width / c.patch_w);
  for (const char* policy : {"dense", "window", "tempcache", "dense+annsa"}) {
    SCOPED_TRACE(policy);
    SessionOptions o;
    o.policy = policy;
    Session session(model, o);
    roll(session, 3, "", /*skip_last_commit=*/false);
    const int64_t held = session.stats().bytes;
    const int64_t estimate = policy_memory_bytes(c, session.policy(), {tpf, 3, 9}, 4);
    EXPECT_GT(held, 0);
    EXPECT_GE(estimate, held);
    EXPECT_LE(estimate, 4 * held);  // not absurdly loose
  }
}

}  // namespace
}  // namespace fastar
