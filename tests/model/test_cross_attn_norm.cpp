// "cross_attn_norm" (wan-spec.md): Wan's norm3 / diffusers' norm2 is an affine LayerNorm before
// cross-attention when the flag is true and the identity when it is false (then the checkpoint has
// no norm3 tensors). Checked on a one-block model whose self-attention, FFN and time modulation are
// switched off (zero gates, zero time embedding), so its output is computed here in double from the
// weights: head(LN(x0 + cross_o(Attn(cross_q(norm(x0)), prompt K, prompt V)))), x0 the patch embedding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fastar/core/safetensors.h"
#include "fastar/model/wan_dit.h"
#include "reference/attention_oracle.h"
#include "test_util.h"

namespace fastar {
namespace {

constexpr int64_t kFrames = 1, kHeight = 2, kWidth = 3, kTokens = kFrames * kHeight * kWidth;

nlohmann::json one_block_config(bool cross_attn_norm) {
  return {{"dim", 32},      {"num_heads", 2},      {"num_layers", 1},     {"ffn_dim", 64},
          {"in_dim", 4},    {"out_dim", 4},        {"text_dim", 8},       {"text_len", 4},
          {"qk_norm", false}, {"cross_attn_norm", cross_attn_norm}, {"patch_size", {1, 1, 1}},
          {"latent_height", kHeight}, {"latent_width", kWidth}};
}

void fill(Tensor& t, float value) { std::fill(t.data<float>(), t.data<float>() + t.numel(), value); }

// Random weights with every gate, the time embedding and the head modulation at zero: the block's
// self-attention and FFN add nothing and the head's adaptive LayerNorm is a plain LayerNorm.
WanWeights cross_attention_only_weights(const WanConfig& config) {
  WanWeights w = random_wan_weights(config, 7);
  for (WanBlockWeights& block : w.blocks) fill(block.modulation, 0.0f);
  fill(w.time_out.weight, 0.0f);
  fill(w.time_out.bias, 0.0f);
  fill(w.time_projection.weight, 0.0f);
  fill(w.time_projection.bias, 0.0f);
  fill(w.head_modulation, 0.0f);
  // A large common offset in every token: a LayerNorm removes it, the identity keeps it.
  for (int64_t i = 0; i < w.patch_bias.numel(); ++i) w.patch_bias.data<float>()[i] += 3.0f;
  return w;
}

// rows × out = rows × in · Wᵀ + b, in double.
std::vector<double> linear(const LinearWeights& lin, const std::vector<double>& in, int64_t rows) {
  const int64_t n_in = lin.in_features(), n_out = lin.out_features();
  std::vector<double> out(static_cast<size_t>(rows * n_out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < n_out; ++o) {
      double sum = lin.bias.defined() ? lin.bias.data<float>()[o] : 0.0;
      for (int64_t i = 0; i < n_in; ++i) sum += double{lin.weight.data<float>()[o * n_in + i]} * in[static_cast<size_t>(r * n_in + i)];
      out[static_cast<size_t>(r * n_out + o)] = sum;
    }
  return out;
}

std::vector<double> layer_norm(const std::vector<double>& in, int64_t rows, int64_t dim, double eps,
                               const Tensor* weight, const Tensor* bias) {
  std::vector<double> out(in.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < dim; ++i) mean += in[static_cast<size_t>(r * dim + i)];
    mean /= static_cast<double>(dim);
    for (int64_t i = 0; i < dim; ++i) var += std::pow(in[static_cast<size_t>(r * dim + i)] - mean, 2);
    var /= static_cast<double>(dim);
    for (int64_t i = 0; i < dim; ++i) {
      double v = (in[static_cast<size_t>(r * dim + i)] - mean) / std::sqrt(var + eps);
      if (weight) v *= weight->data<float>()[i];
      if (bias) v += bias->data<float>()[i];
      out[static_cast<size_t>(r * dim + i)] = v;
    }
  }
  return out;
}

// The model's output [out_dim, frames, height, width] in double; `norm_before_cross` chooses what
// feeds cross-attention's query projection: a LayerNorm of x (affine with norm3 when the model has
// it) or x itself.
std::vector<double> reference_output(const WanModel& model, const Tensor& latent, const WanPrompt& prompt,
                                     bool norm_before_cross) {
  const WanConfig& c = model.config();
  const WanWeights& w = model.weights();
  const int64_t d = c.dim, heads = c.num_heads, hd = c.head_dim(), rows = prompt.rows;
  std::vector<double> patches(static_cast<size_t>(kTokens * c.in_dim));
  for (int64_t t = 0; t < kTokens; ++t)
    for (int64_t ch = 0; ch < c.in_dim; ++ch)
      patches[static_cast<size_t>(t * c.in_dim + ch)] = latent.data<float>()[ch * kTokens + t];
  const std::vector<double> x0 = linear({w.patch_weight, w.patch_bias}, patches, kTokens);
  const WanBlockWeights& b = w.blocks[0];
  const Tensor* norm_weight = b.cross_norm_weight.defined() ? &b.cross_norm_weight : nullptr;
  const Tensor* norm_bias = b.cross_norm_bias.defined() ? &b.cross_norm_bias : nullptr;
  const std::vector<double> h = norm_before_cross ? layer_norm(x0, kTokens, d, c.eps, norm_weight, norm_bias) : x0;
  const std::vector<double> q = linear(b.cross_q, h, kTokens);
  testing::OracleAttentionArgs a;  // cross-attention over the prompt rows, no mask
  a.q = testing::OracleOperand::packed(q.data(), heads, hd);
  a.k = testing::OracleOperand::packed(prompt.cross_k[0].data<float>(), heads, hd);
  a.v = testing::OracleOperand::packed(prompt.cross_v[0].data<float>(), heads, hd);
  a.heads = heads, a.head_dim = hd, a.q_len = kTokens, a.kv_len = rows;
  a.scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const std::vector<double> attn = testing::attention_oracle(a).o;
  const std::vector<double> y = linear(b.cross_o, attn, kTokens);
  std::vector<double> x = x0;
  for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
  const std::vector<double> tokens = linear(w.head, layer_norm(x, kTokens, d, c.eps, nullptr, nullptr), kTokens);
  std::vector<double> out(static_cast<size_t>(c.out_dim * kTokens));
  for (int64_t t = 0; t < kTokens; ++t)
    for (int64_t ch = 0; ch < c.out_dim; ++ch) out[static_cast<size_t>(ch * kTokens + t)] = tokens[static_cast<size_t>(t * c.out_dim + ch)];
  return out;
}

class CrossAttnNorm : public ::testing::TestWithParam<bool> {};

TEST_P(CrossAttnNorm, FlagChoosesLayerNormOrIdentityBeforeCrossAttention) {
  const bool flag = GetParam();
  const nlohmann::json config_json = one_block_config(flag);
  const WanConfig config = WanConfig::from_json(config_json, "test");

  // Through the files, as a user's model: without the flag the checkpoint has no norm3 tensors.
  const std::string dir = testing::make_temp_dir(std::string("cross_attn_norm_") + (flag ? "on" : "off"));
  std::ofstream(dir + "/config.json") << config_json.dump();
  const auto named = wan_weights_to_named(cross_attention_only_weights(config), config, WanNameLayout::Original);
  const bool has_norm3 = std::any_of(named.begin(), named.end(),
                                     [](const auto& entry) { return entry.first.find("norm3") != std::string::npos; });
  EXPECT_EQ(has_norm3, flag);
  write_safetensors(dir + "/diffusion_pytorch_model.safetensors", named);
  const WanModel model = WanModel::load(dir);

  Tensor latent = Tensor::zeros({config.in_dim, kFrames, kHeight, kWidth});
  const std::vector<float> latent_values = testing::random_normal(latent.numel(), 11);
  std::copy(latent_values.begin(), latent_values.end(), latent.data<float>());
  Tensor context = Tensor::zeros({3, config.text_dim});
  const std::vector<float> context_values = testing::random_normal(context.numel(), 12);
  std::copy(context_values.begin(), context_values.end(), context.data<float>());
  const WanPrompt prompt = model.prepare_prompt(context);
  const std::vector<float> timesteps(kFrames, 500.0f);
  WanForwardArgs args;
  args.latent = &latent;
  args.timesteps = &timesteps;
  args.prompt = &prompt;
  const Tensor out = model.forward(args);

  const std::vector<double> expected = reference_output(model, latent, prompt, flag);
  EXPECT_LE(testing::max_scaled_error(out.data<float>(), expected.data(), out.numel(), 1e-4, 1e-4), 1.0);
  // A LayerNorm without norm3's affine (what fastar once did with the flag off) gives a clearly
  // different output, so the check above can fail.
  if (!flag) {
    const std::vector<double> with_norm = reference_output(model, latent, prompt, true);
    EXPECT_GT(testing::max_scaled_error(out.data<float>(), with_norm.data(), out.numel(), 1e-4, 1e-4), 100.0);
  }
}

INSTANTIATE_TEST_SUITE_P(OnAndOff, CrossAttnNorm, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "On" : "Off"; });

}  // namespace
}  // namespace fastar
