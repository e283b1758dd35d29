// ARL² at the model level: config field, checkpoint names (with LoRA merged at load time) and clear
// errors for missing/misshapen hybrid tensors, and a deterministic hybrid rollout.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fastar/attention/arl2_hybrid_memory.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/model/wan_dit.h"
#include "fastar/rollout/self_forcing.h"
#include "test_util.h"

namespace fastar {
namespace {

nlohmann::json tiny_json(std::vector<int64_t> hybrid) {
  return {{"dim", 32},     {"num_heads", 2}, {"num_layers", 3}, {"ffn_dim", 64},      {"in_dim", 4},
          {"out_dim", 4},  {"text_dim", 8},  {"text_len", 4},   {"hybrid_layers", hybrid}, {"hybrid_lora_alpha", 8.0},
          {"latent_height", 4}, {"latent_width", 6}};
}

// Writes config.json + a checkpoint with ARL²'s names; `edit` may change the tensors before writing.
std::string write_model(const std::string& name, const nlohmann::json& config_json,
                        const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& edit = nullptr) {
  const std::string dir = testing::make_temp_dir(name);
  std::ofstream(dir + "/config.json") << config_json.dump();
  const WanConfig config = WanConfig::from_json(config_json, "test");
  auto named = wan_weights_to_named(random_wan_weights(config, 1), config, WanNameLayout::Original);
  if (edit) edit(named);
  write_safetensors(dir + "/diffusion_pytorch_model.safetensors", named);
  return dir;
}

Tensor random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor t = Tensor::zeros({rows, cols});
  const auto values = testing::random_normal(rows * cols, seed, 0.1f);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

TEST(Arl2Model, ConfigListsHybridLayersAndRejectsBadIndices) {
  const WanConfig c = WanConfig::from_json(tiny_json({0, 2}), "test");
  EXPECT_TRUE(c.is_hybrid(0));
  EXPECT_FALSE(c.is_hybrid(1));
  EXPECT_NE(c.summary().find("hybrid layers    0,2 (2 of 3"), std::string::npos);
  EXPECT_THROW(WanConfig::from_json(tiny_json({3}), "test"), Error);
  EXPECT_THROW(WanConfig::from_json(tiny_json({1, 1}), "test"), Error);
}

TEST(Arl2Model, LoadsArl2NamesAndMergesLora) {
  const int64_t rank = 4, d = 32, ffn = 64;
  const float scale = 8.0f / rank;  // hybrid_lora_alpha / r
  const Tensor qa = random_matrix(d, rank, 1), qb = random_matrix(rank, d, 2), fa = random_matrix(d, rank, 3),
               fb = random_matrix(rank, ffn, 4);
  Tensor base_q, base_ffn;
  const std::string dir = write_model("arl2_lora", tiny_json({0, 1}), [&](auto& named) {
    for (auto& [name, tensor] : named) {
      if (name == "blocks.1.self_attn.q.weight") base_q = tensor;
      if (name == "blocks.1.ffn.0.weight") {
        base_ffn = tensor;
        name = "blocks.1.ffn.0.linear.weight";  // LoRALinear keeps the base under .linear
      }
      if (name == "blocks.1.ffn.0.bias") name = "blocks.1.ffn.0.linear.bias";
    }
    named.push_back({"blocks.1.ffn.0.lora_A", fa});
    named.push_back({"blocks.1.ffn.0.lora_B", fb});
    for (const char* p : {"q", "k", "v"}) {
      named.push_back({std::string("blocks.1.self_attn.lora_") + p + "_A", qa});
      named.push_back({std::string("blocks.1.self_attn.lora_") + p + "_B", qb});
    }
  });
  const WanModel model = WanModel::load(dir);
  const WanBlockWeights& b1 = model.weights().blocks[1];
  ASSERT_TRUE(b1.hybrid.defined());
  ASSERT_TRUE(b1.hybrid.lora_q.weight.defined());
  EXPECT_FALSE(model.weights().blocks[0].hybrid.lora_q.weight.defined());  // layer 0 has no LoRA
  EXPECT_FALSE(model.weights().blocks[2].hybrid.defined());                // layer 2 is not hybrid
  // Merged W + s·(A·B)ᵀ, checked entry by entry in double; the softmax branch keeps the base W.
  for (int64_t o = 0; o < d; o += 5)
    for (int64_t i = 0; i < d; i += 3) {
      double delta = 0;
      for (int64_t r = 0; r < rank; ++r) delta += double(qa.data<float>()[i * rank + r]) * qb.data<float>()[r * d + o];
      EXPECT_NEAR(b1.hybrid.lora_q.weight.data<float>()[o * d + i], base_q.data<float>()[o * d + i] + scale * delta, 1e-5);
      EXPECT_EQ(b1.self_q.weight.data<float>()[o * d + i], base_q.data<float>()[o * d + i]);
    }
  for (int64_t o = 0; o < ffn; o += 7)
    for (int64_t i = 0; i < d; i += 3) {
      double delta = 0;
      for (int64_t r = 0; r < rank; ++r) delta += double(fa.data<float>()[i * rank + r]) * fb.data<float>()[r * ffn + o];
      EXPECT_NEAR(b1.ffn_in.weight.data<float>()[o * d + i], base_ffn.data<float>()[o * d + i] + scale * delta, 1e-5);
    }
}

TEST(Arl2Model, MissingOrMisshapenHybridTensorsAreClearErrors) {
  auto expect_error = [](const std::string& dir, const std::string& needle) {
    try {
      WanModel::load(dir);
      ADD_FAILURE() << "loaded " << dir;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(write_model("arl2_missing", tiny_json({0}),
                           [](auto& named) {
                             std::erase_if(named, [](const auto& e) { return e.first == "blocks.0.self_attn.A_log"; });
                           }),
               "missing tensor 'blocks.0.self_attn.A_log'");
  expect_error(write_model("arl2_shape", tiny_json({0}),
                           [](auto& named) {
                             for (auto& [name, t] : named)
                               if (name == "blocks.0.self_attn.phi_q.weight") t = Tensor::zeros({32, 16});
                           }),
               "'blocks.0.self_attn.phi_q.weight' has shape");
}

TEST(Arl2Model, HybridTensorsOnAnUnlistedLayerAndHalfLoraPairsAreErrors) {
  const std::string dir = write_model("arl2_unlisted2", tiny_json({0, 1}));
  std::ofstream(dir + "/config.json") << tiny_json({0}).dump();  // layer 1's hybrid tensors now unlisted
  EXPECT_THROW(WanModel::load(dir), Error);
  const std::string half = write_model("arl2_half", tiny_json({0}), [](auto& named) {
    named.push_back({"blocks.0.self_attn.lora_q_A", random_matrix(32, 4, 1)});
  });
  EXPECT_THROW(WanModel::load(half), Error);
}

TEST(Arl2Model, HybridRolloutRunsAndIsDeterministic) {
  const WanConfig config = WanConfig::from_json(tiny_json({0, 1}), "test");
  const WanModel model(config, random_wan_weights(config, 21));
  const WanPrompt prompt = model.prepare_prompt(Tensor::zeros({config.text_len, config.text_dim}));
  RolloutConfig rc;
  rc.seed = 5;
  rc.latent_height = 4;
  rc.latent_width = 6;
  rc.schedule.frames_per_chunk = 2;
  auto run = [&](std::vector<float>* state_bytes) {
    Arl2HybridMemory memory(config, model.weights(),
                            std::make_unique<DenseMemory>(config.num_layers, config.num_heads, config.head_dim()));
    SelfForcingRollout rollout(model, memory, prompt, rc);
    std::vector<Tensor> chunks;
    for (int i = 0; i < 4; ++i) chunks.push_back(rollout.next_chunk());
    if (state_bytes) *state_bytes = memory.state(0);
    return chunks;
  };
  std::vector<float> s1, s2;
  const auto a = run(&s1), b = run(&s2);
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].numel(), b[i].numel());
    EXPECT_EQ(0, std::memcmp(a[i].data<float>(), b[i].data<float>(), static_cast<size_t>(a[i].nbytes()))) << "chunk " << i;
    for (int64_t j = 0; j < a[i].numel(); ++j) ASSERT_TRUE(std::isfinite(a[i].data<float>()[j]));
  }
  EXPECT_EQ(s1, s2);
  double norm = 0;
  for (float s : s1) norm += std::fabs(s);
  EXPECT_GT(norm, 0.0);
  // Without the arl2 policy the hybrid model refuses to run.
  DenseMemory dense(config.num_layers, config.num_heads, config.head_dim());
  SelfForcingRollout wrong(model, dense, prompt, rc);
  EXPECT_THROW(wrong.next_chunk(), Error);
}

}  // namespace
}  // namespace fastar
