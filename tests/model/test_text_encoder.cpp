// The world model's text encoder and action-conditioned DiT against their PyTorch implementation
// (tools/world_model/wan_torch.py, what training runs), through golden files written by
// tests/model/golden/make_world_golden.py: a tiny random model exported exactly as a trained one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/model/text_encoder.h"
#include "fastar/model/wan_dit.h"
#include "test_util.h"

namespace fastar {
namespace {

// fp32 on both sides with identical weights: what remains is summation order (~1e-6 relative).
// Semantic bugs (a missed position, pad rows attended, the wrong action row, RoPE at the wrong
// frame) move the outputs by >= 1e-2; the Sensitivity tests below check that for this model.
constexpr double kGoldenTolerance = 1e-4;  // max |ours − torch| / max |torch|

std::string golden(const std::string& name) { return testing::source_path("tests/model/golden/" + name); }

// max |actual − expected| / max |expected|; infinity on NaN/Inf (tests/reference/scaled_error.h).
double relative_error(const Tensor& actual, const Tensor& expected) {
  EXPECT_EQ(actual.shape(), expected.shape());
  return testing::peak_relative_error(actual.data<float>(), expected.data<float>(), expected.numel());
}

// Rows of `out` [text_len, dim] that hold anything but exact zeros.
int64_t nonzero_rows(const Tensor& out) {
  int64_t rows = 0;
  for (int64_t i = 0; i < out.size(0); ++i) {
    const float* row = out.data<float>() + i * out.size(1);
    rows += std::any_of(row, row + out.size(1), [](float x) { return x != 0.0f; });
  }
  return rows;
}

std::vector<int32_t> ids_of(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::I32);
  return std::vector<int32_t>(t.data<int32_t>(), t.data<int32_t>() + t.numel());
}

class WorldGolden : public ::testing::Test {
 protected:
  WorldGolden() : io_(Checkpoint::open(golden("world_tiny_io.safetensors"))) {}
  Tensor tensor(const std::string& name) const { return io_.tensor(name).to_f32(); }
  Checkpoint io_;
};

TEST_F(WorldGolden, TokenizerMatchesPyTorch) {
  const TextEncoder encoder = TextEncoder::load(golden("world_tiny"));
  const std::string prompt = io_.metadata().at("prompt");
  EXPECT_EQ(encoder.tokenize(prompt), ids_of(io_.tensor("te.prompt_ids")));
  EXPECT_EQ(split_prompt_words("A red  circle bounces."),
            (std::vector<std::string>{"a", "red", "circle", "bounces", "."}));
}

TEST_F(WorldGolden, TextEncoderMatchesPyTorch) {
  const TextEncoder encoder = TextEncoder::load(golden("world_tiny"));
  for (const char* name : {"case0", "case1"}) {
    SCOPED_TRACE(name);
    const std::vector<int32_t> ids = ids_of(io_.tensor(std::string("te.") + name + ".ids"));
    const Tensor out = encoder.encode(ids);
    EXPECT_LT(relative_error(out, tensor(std::string("te.") + name + ".output")), kGoldenTolerance);
    for (size_t i = 0; i < ids.size(); ++i)  // padding rows are exactly zero
      if (ids[i] == 0)
        for (int64_t j = 0; j < out.size(1); ++j) ASSERT_EQ(out.data<float>()[i * out.size(1) + j], 0.0f);
  }
}

TEST_F(WorldGolden, TextEncoderSensitivity) {
  // Moving one word changes its row and, through attention, the others: far beyond the tolerance.
  const TextEncoder encoder = TextEncoder::load(golden("world_tiny"));
  std::vector<int32_t> ids = ids_of(io_.tensor("te.case0.ids"));
  ASSERT_NE(ids[1], ids[2]) << "the swap must move a word";
  std::swap(ids[1], ids[2]);
  EXPECT_GT(relative_error(encoder.encode(ids), tensor("te.case0.output")), 100 * kGoldenTolerance);
}

TEST_F(WorldGolden, PromptsWithoutWordsEncodeToExactZeros) {
  // No word to attend to: every row is padding, exactly 0 (no NaN from an empty softmax or a
  // LayerNorm of nothing), in the full [text_len, dim] shape the DiT's cross-attention expects.
  const TextEncoder encoder = TextEncoder::load(golden("world_tiny"));
  const Tensor reference = tensor("te.case0.output");
  const int64_t text_len = reference.size(0), dim = reference.size(1);
  const Tensor full_padding = encoder.encode(std::vector<int32_t>(static_cast<size_t>(text_len), 0));
  for (const Tensor& out : {encoder.encode(std::vector<int32_t>{}), encoder.encode(std::vector<int32_t>{0, 0, 0}),
                            full_padding}) {
    ASSERT_EQ(out.shape(), (Shape{text_len, dim}));
    EXPECT_EQ(nonzero_rows(out), 0);
  }
  // Negative control: one real word (at position 2, between padding) fills its row, and only it.
  const std::vector<int32_t> case0 = ids_of(io_.tensor("te.case0.ids"));
  ASSERT_NE(case0[0], 0);
  const Tensor one_word = encoder.encode(std::vector<int32_t>{0, 0, case0[0]});
  ASSERT_EQ(one_word.shape(), (Shape{text_len, dim}));
  EXPECT_EQ(nonzero_rows(one_word), 1);
  const float* row = one_word.data<float>() + 2 * dim;
  EXPECT_TRUE(std::any_of(row, row + dim, [](float x) { return x != 0.0f; }));
  EXPECT_TRUE(std::all_of(row, row + dim, [](float x) { return std::isfinite(x); }));
}

TEST_F(WorldGolden, ActionDitMatchesPyTorch) {
  // The model folder also holds text_encoder.* tensors: WanModel::load must accept them.
  const WanModel model = WanModel::load(golden("world_tiny"));
  ASSERT_EQ(model.config().action_dim, 5);
  const Tensor latent = tensor("dit.latent"), actions = tensor("dit.actions");
  const Tensor t = tensor("dit.timesteps");
  const std::vector<float> timesteps(t.data<float>(), t.data<float>() + t.numel());
  const WanPrompt prompt = model.prepare_prompt(tensor("dit.context"));
  WanForwardArgs args;
  args.latent = &latent;
  args.timesteps = &timesteps;
  args.prompt = &prompt;
  args.actions = &actions;
  args.frame_start = std::stoll(io_.metadata().at("frame_start"));
  EXPECT_LT(relative_error(model.forward(args), tensor("dit.output")), kGoldenTolerance);
  args.causal_chunk_frames = 3;
  EXPECT_LT(relative_error(model.forward(args), tensor("dit.output_causal")), kGoldenTolerance);

  // Sensitivity: other actions are far outside the tolerance. (A shifted frame_start is not: RoPE
  // is relative, so within one call only positions relative to each other matter; the rollout
  // parity test tests/tools/test_world_model_parity.py covers positions across calls.)
  Tensor other_actions = actions.clone();
  std::fill(other_actions.data<float>(), other_actions.data<float>() + other_actions.numel(), 0.0f);
  for (int64_t f = 0; f < other_actions.size(0); ++f) other_actions.data<float>()[f * 5] = 1.0f;  // all "none"
  args.actions = &other_actions;
  EXPECT_GT(relative_error(model.forward(args), tensor("dit.output_causal")), 100 * kGoldenTolerance);
}

TEST_F(WorldGolden, PromptErrorsAreClear) {
  const TextEncoder encoder = TextEncoder::load(golden("world_tiny"));
  try {
    encoder.tokenize("a purple circle bounces");
    FAIL() << "expected an error for an unknown word";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'purple'"), std::string::npos) << message;
    EXPECT_NE(message.find("vocab.json"), std::string::npos) << message;
  }
  EXPECT_THROW(encoder.tokenize("a <pad> circle"), Error);
  std::string long_prompt;
  for (int i = 0; i < 17; ++i) long_prompt += "a ";
  EXPECT_THROW(encoder.tokenize(long_prompt), Error);  // text_len 16
  EXPECT_THROW(encoder.encode(std::vector<int32_t>{3, 99}), Error);  // id outside the vocabulary
}

TEST_F(WorldGolden, ModelsWithoutTextEncoder) {
  EXPECT_TRUE(TextEncoder::available(golden("world_tiny")));
  EXPECT_FALSE(TextEncoder::available(golden("wan_tiny_original")));
  EXPECT_THROW(TextEncoder::load(golden("wan_tiny_original")), Error);
}

}  // namespace
}  // namespace fastar
