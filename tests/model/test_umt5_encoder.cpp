// The umT5 encoder against transformers' UMT5EncoderModel through goldens written by
// tools/pipeline_golden/make_umt5_golden.py (pipeline-spec.md §4.5, §8 items 2-3): a small random model
// (d_model 64, 4 heads × 16, d_ff 96, 3 layers, 32 buckets, max distance 128), two prompts padded to 160
// (153 and 30 real tokens), HF names in F32 and Wan names in BF16.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/model/umt5_encoder.h"
#include "fastar/model/umt5_text_pipeline.h"
#include "test_util.h"

namespace fastar {
namespace {

namespace fs = std::filesystem;

// fp32 on both sides with identical weights: what remains is summation order (~1e-7 observed).
constexpr double kF32Tolerance = 1e-5;  // max |ours − HF| / max |HF|
// BF16 weights against the F32-weight output: the weights' rounding itself (~6e-3 here).
constexpr double kBf16Tolerance = 2e-2;

std::string golden(const std::string& name) { return testing::source_path("tests/model/golden/umt5_tiny/" + name); }

// max |a − b| / max |b|; infinity on NaN/Inf (tests/reference/scaled_error.h).
double relative_error(const float* actual, const float* expected, int64_t count) {
  return testing::peak_relative_error(actual, expected, count);
}

class Umt5Golden : public ::testing::Test {
 protected:
  Umt5Golden() : io_(Checkpoint::open(golden("encoder_io.safetensors"))) {
    ids_ = io_.tensor("ids");
    mask_ = io_.tensor("mask");
    text_len_ = ids_.size(1);
  }
  std::vector<int32_t> ids(int64_t b) const {
    const int32_t* p = ids_.data<int32_t>() + b * text_len_;
    return {p, p + text_len_};
  }
  std::vector<uint8_t> mask(int64_t b) const {
    std::vector<uint8_t> m;
    for (int64_t i = 0; i < text_len_; ++i) m.push_back(mask_.data<int32_t>()[b * text_len_ + i] != 0);
    return m;
  }
  int64_t length(int64_t b) const {
    const std::vector<uint8_t> m = mask(b);
    return std::count(m.begin(), m.end(), uint8_t{1});
  }
  // [text_len, d_model] of prompt b.
  const float* expected(const std::string& name, int64_t b) const {
    outputs_[name] = io_.tensor(name);
    return outputs_[name].data<float>() + b * text_len_ * outputs_[name].size(2);
  }

  Checkpoint io_;
  Tensor ids_, mask_;
  int64_t text_len_ = 0;
  mutable std::map<std::string, Tensor> outputs_;
};

// An independent formula in double precision (pipeline-spec.md §4.3).
int64_t bucket_in_double(int64_t rel) {
  const int64_t base = rel > 0 ? 16 : 0, n = std::abs(rel);
  if (n < 8) return base + n;
  return base + std::min<int64_t>(15, 8 + static_cast<int64_t>(std::log(n / 8.0) / std::log(16.0) * 8.0));
}

TEST_F(Umt5Golden, RelativeBucketsOfEveryDistance) {
  const Tensor table = io_.tensor("relative_buckets");
  ASSERT_EQ(table.numel(), 2047);
  for (int64_t rel = -1023; rel <= 1023; ++rel) {
    SCOPED_TRACE(rel);
    const int64_t ours = umt5_relative_bucket(rel, 32, 128);
    EXPECT_EQ(ours, table.data<int32_t>()[rel + 1023]);
    EXPECT_EQ(ours, bucket_in_double(rel));
  }
  // pipeline-spec.md §4.3's table, at its edges.
  EXPECT_EQ(umt5_relative_bucket(-7, 32, 128), 7);
  EXPECT_EQ(umt5_relative_bucket(7, 32, 128), 23);
  EXPECT_EQ(umt5_relative_bucket(-16, 32, 128), 10);
  EXPECT_EQ(umt5_relative_bucket(63, 32, 128), 29);
  EXPECT_EQ(umt5_relative_bucket(91, 32, 128), 31);
  EXPECT_EQ(umt5_relative_bucket(-90, 32, 128), 14);
}

TEST_F(Umt5Golden, HuggingFaceF32WeightsMatchTransformers) {
  const Umt5Encoder encoder = Umt5Encoder::load(golden("text_encoder"));
  EXPECT_EQ(encoder.config().d_model, 64);
  EXPECT_EQ(encoder.config().num_layers, 3);
  EXPECT_EQ(encoder.weights().token_embedding.dtype(), DType::F32);
  for (int64_t b = 0; b < 2; ++b) {
    SCOPED_TRACE(b);
    const Tensor out = encoder.forward(ids(b), mask(b));  // every row, padding rows included
    ASSERT_EQ(out.shape(), (Shape{text_len_, 64}));
    EXPECT_LT(relative_error(out.data<float>(), expected("output_f32", b), out.numel()), kF32Tolerance);
  }
}

TEST_F(Umt5Golden, WanBf16WeightsStayBf16AndMatchTransformers) {
  const Umt5Encoder encoder = Umt5Encoder::load(golden("wan_text_encoder_bf16.safetensors"));
  const Umt5Encoder hf = Umt5Encoder::load(golden("text_encoder"));
  const Umt5Config& c = encoder.config();  // inferred from the shapes
  EXPECT_EQ(c.vocab_size, hf.config().vocab_size);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.d_kv, 16);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.d_ff, 96);
  EXPECT_EQ(c.num_layers, 3);
  EXPECT_EQ(c.num_buckets, 32);
  EXPECT_EQ(c.max_distance, 128);
  EXPECT_EQ(encoder.weights().token_embedding.dtype(), DType::BF16);  // no fp32 copy of the big tensors
  EXPECT_EQ(encoder.weights().layers[0].q.dtype(), DType::BF16);
  EXPECT_EQ(encoder.weights().layers[2].down.dtype(), DType::BF16);
  for (int64_t b = 0; b < 2; ++b) {
    SCOPED_TRACE(b);
    const Tensor out = encoder.forward(ids(b), mask(b));
    // HF in fp32 on the bf16-rounded weights: the same computation.
    EXPECT_LT(relative_error(out.data<float>(), expected("output_bf16_weights", b), out.numel()), kF32Tolerance);
    // the fp32-weight model: bf16 rounding of the weights only.
    const double vs_f32 = relative_error(out.data<float>(), expected("output_f32", b), out.numel());
    EXPECT_LT(vs_f32, kBf16Tolerance);
    EXPECT_GT(vs_f32, 1e-4);  // the two goldens do differ: the test above could tell bf16 from fp32 weights
  }
}

TEST_F(Umt5Golden, RealTokensOnlyEqualPaddedRun) {
  const Umt5Encoder encoder = Umt5Encoder::load(golden("text_encoder"));
  for (int64_t b = 0; b < 2; ++b) {
    SCOPED_TRACE(b);
    const int64_t L = length(b);
    const Tensor context = encoder.encode(ids(b), L);
    ASSERT_EQ(context.shape(), (Shape{text_len_, 64}));
    const Tensor padded = encoder.forward(ids(b), mask(b));
    EXPECT_LT(relative_error(context.data<float>(), padded.data<float>(), L * 64), 1e-6);
    EXPECT_LT(relative_error(context.data<float>(), expected("output_f32", b), L * 64), kF32Tolerance);
    for (int64_t i = L * 64; i < text_len_ * 64; ++i) ASSERT_EQ(context.data<float>()[i], 0.0f) << "row " << i / 64;
  }
}

// Copies the tokenizer folder and the given encoder files into a fresh model folder.
std::string make_model_folder(const std::string& name, const std::string& tokenizer_subdir) {
  const std::string dir = testing::make_temp_dir(name);
  fs::create_directories(dir + "/" + tokenizer_subdir);
  for (const char* file : {"spiece.model", "tokenizer_config.json"})
    fs::copy_file(golden(std::string("tokenizer/") + file), dir + "/" + tokenizer_subdir + "/" + file);
  return dir;
}

TEST_F(Umt5Golden, PipelineFromDiffusersLayout) {
  const std::string dir = make_model_folder("umt5_diffusers", "tokenizer");
  fs::copy(golden("text_encoder"), dir + "/text_encoder");
  const Umt5TextPipeline pipeline = Umt5TextPipeline::load(dir, text_len_);
  const std::string prompt = io_.metadata().at("prompt1");
  EXPECT_EQ(pipeline.tokenize(prompt).ids, ids(1));
  pipeline.encode(prompt);  // warm-up (page faults, thread pool)
  const auto start = std::chrono::steady_clock::now();
  const Tensor context = pipeline.encode(prompt);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ timing ] umT5 tiny: clean + tokenize + encode of one prompt (%lld real tokens): %.3f ms\n",
              static_cast<long long>(length(1)), ms);
  ASSERT_EQ(context.shape(), (Shape{text_len_, 64}));
  const int64_t L = length(1);
  EXPECT_LT(relative_error(context.data<float>(), expected("output_f32", 1), L * 64), kF32Tolerance);
  for (int64_t i = L * 64; i < context.numel(); ++i) ASSERT_EQ(context.data<float>()[i], 0.0f);
}

TEST_F(Umt5Golden, PipelineFromWanLayout) {
  const std::string dir = make_model_folder("umt5_wan", "google/umt5-xxl");
  fs::copy_file(golden("wan_text_encoder_bf16.safetensors"), dir + "/models_t5_umt5-xxl-enc-bf16.safetensors");
  const Umt5TextPipeline pipeline = Umt5TextPipeline::load(dir, text_len_);
  const std::string prompt = io_.metadata().at("prompt0");
  const Tensor context = pipeline.encode(prompt);
  const int64_t L = length(0);
  EXPECT_EQ(pipeline.tokenize(prompt).length, L);
  EXPECT_LT(relative_error(context.data<float>(), expected("output_bf16_weights", 0), L * 64), kF32Tolerance);
  for (int64_t i = L * 64; i < context.numel(); ++i) ASSERT_EQ(context.data<float>()[i], 0.0f);
}

void expect_error(const std::function<void()>& run, const std::vector<std::string>& parts) {
  try {
    run();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const std::string& part : parts) EXPECT_TRUE(testing::contains(e.what(), part)) << e.what();
  }
}

TEST_F(Umt5Golden, ErrorsSayWhatToDo) {
  expect_error([] { Umt5TextPipeline::load("/nonexistent/wan"); }, {"/nonexistent/wan", "not a folder"});
  // no encoder at all; then only the .pth
  const std::string dir = make_model_folder("umt5_errors", "google/umt5-xxl");
  expect_error([&] { Umt5TextPipeline::load(dir); }, {dir, "no umT5 text encoder"});
  std::ofstream(dir + "/models_t5_umt5-xxl-enc-bf16.pth") << "pickle";
  expect_error([&] { Umt5TextPipeline::load(dir); }, {"models_t5_umt5-xxl-enc-bf16.pth", "safetensors"});
  // config.json disagreeing with the weights
  const std::string bad_config = testing::make_temp_dir("umt5_bad_config");
  fs::copy(golden("text_encoder"), bad_config, fs::copy_options::recursive);
  std::ifstream in(bad_config + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  in.close();
  config["d_ff"] = 128;
  std::ofstream(bad_config + "/config.json") << config.dump();
  expect_error([&] { Umt5Encoder::load(bad_config); }, {"wi_0", "shape [96, 64]", "[128, 64]"});
  config["d_ff"] = 96;
  config["model_type"] = "t5";
  std::ofstream(bad_config + "/config.json") << config.dump();
  expect_error([&] { Umt5Encoder::load(bad_config); }, {"config.json", "model_type 't5'"});
  // a tokenizer whose ids the embedding cannot hold
  const Checkpoint wan = Checkpoint::open(golden("wan_text_encoder_bf16.safetensors"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : wan.names())
    tensors.emplace_back(name, name == "token_embedding.weight" ? wan.tensor(name).slice_rows(0, 800).clone()
                                                                : wan.tensor(name));
  const std::string small_vocab = make_model_folder("umt5_small_vocab", "tokenizer");
  write_safetensors(small_vocab + "/text_encoder.safetensors", tensors);
  expect_error([&] { Umt5TextPipeline::load(small_vocab); }, {"spiece.model", "800 embedding rows", "ids up to 899"});
  // a checkpoint that is no umT5
  const std::string other = testing::make_temp_dir("umt5_other");
  write_safetensors(other + "/model.safetensors", {{"weight", Tensor::zeros({2, 2})}});
  expect_error([&] { Umt5Encoder::load(other + "/model.safetensors"); }, {"no umT5 encoder tensors"});
}

}  // namespace
}  // namespace fastar
