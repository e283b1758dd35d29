// Inputs a user controls — config.json sizes, the checkpoint's block count, prompt embeddings,
// fastar_defaults, --random-weights — are checked before anything is allocated from them, with an
// error that names the field and says what to do (issue 21's user-trial review).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/model/text_encoder.h"
#include "fastar/model/wan_dit.h"
#include "test_util.h"

namespace fastar {
namespace {

namespace fs = std::filesystem;

// The message of the fastar::Error that `f` throws; a test failure if it throws none (or another type).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a fastar::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected a fastar::Error";
  return "";
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "'" << (text) << "' lacks '" << (part) << "'"

std::string golden(const std::string& name) { return testing::source_path("tests/model/golden/" + name); }

nlohmann::json tiny_wan_json() {
  return {{"dim", 32}, {"num_heads", 2}, {"num_layers", 2}, {"ffn_dim", 64}, {"in_dim", 4},
          {"out_dim", 4}, {"text_dim", 8}, {"text_len", 4}, {"latent_height", 4}, {"latent_width", 6}};
}

// ---- config sizes -------------------------------------------------------------------------------

TEST(WanConfigSizes, OutOfRangeSizesAreRejectedWithTheFieldName) {
  constexpr int64_t kHuge = int64_t{1} << 40;
  const struct {
    const char* field;
    nlohmann::json value;
  } cases[] = {
      {"num_layers", 1000000},       {"num_layers", int64_t{1} << 62}, {"dim", kHuge},      {"ffn_dim", kHuge},
      {"num_heads", kHuge},          {"in_dim", kHuge},                {"out_dim", kHuge},  {"text_dim", kHuge},
      {"text_len", kHuge},           {"freq_dim", kHuge},              {"action_dim", kHuge},
      {"latent_height", kHuge},      {"latent_width", kHuge},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.field) + " = " + c.value.dump());
    nlohmann::json json = tiny_wan_json();
    json[c.field] = c.value;
    const std::string message = error_of([&] { WanConfig::from_json(json, "cfg.json"); });
    EXPECT_CONTAINS(message, "cfg.json");
    EXPECT_CONTAINS(message, std::string("'") + c.field + "'");
    EXPECT_CONTAINS(message, "at most");
  }
  nlohmann::json json = tiny_wan_json();
  json["patch_size"] = {1, kHuge, 2};
  EXPECT_CONTAINS(error_of([&] { WanConfig::from_json(json, "cfg.json"); }), "patch_size");
  // 2^64 − 1 is an unsigned JSON integer: it must not wrap to −1 and be reported as such.
  json = tiny_wan_json();
  json["num_layers"] = std::numeric_limits<uint64_t>::max();
  EXPECT_CONTAINS(error_of([&] { WanConfig::from_json(json, "cfg.json"); }), "18446744073709551615");
}

TEST(WanConfigSizes, DiffusersHeadProductCannotOverflow) {
  // dim = num_attention_heads · attention_head_dim: each factor is checked before the product.
  nlohmann::json json = {{"_class_name", "WanTransformer3DModel"},
                         {"num_attention_heads", int64_t{1} << 40},
                         {"attention_head_dim", int64_t{1} << 40}};
  EXPECT_CONTAINS(error_of([&] { WanConfig::from_json(json, "cfg.json"); }), "num_attention_heads");
  json = {{"_class_name", "WanTransformer3DModel"}, {"num_attention_heads", 12}, {"attention_head_dim", int64_t{1} << 60}};
  EXPECT_CONTAINS(error_of([&] { WanConfig::from_json(json, "cfg.json"); }), "attention_head_dim");
  json = {{"_class_name", "WanTransformer3DModel"}, {"num_attention_heads", -12}, {"attention_head_dim", -128}};
  EXPECT_CONTAINS(error_of([&] { WanConfig::from_json(json, "cfg.json"); }), "num_attention_heads");
}

TEST(WanConfigSizes, ReleasedModelSizesStayAccepted) {
  // Wan2.1-14B T2V, the largest released Wan2.1 DiT.
  const nlohmann::json wan14b = {{"dim", 5120},     {"ffn_dim", 13824}, {"num_heads", 40},  {"num_layers", 40},
                                 {"in_dim", 16},    {"out_dim", 16},    {"text_dim", 4096}, {"text_len", 512},
                                 {"freq_dim", 256}, {"patch_size", {1, 2, 2}}};
  EXPECT_NO_THROW(WanConfig::from_json(wan14b, "wan14b.json"));
}

TEST(WanConfigSizes, NegativeFastarDefaultsAreRejected) {
  for (const char* field : {"window", "sink"}) {
    SCOPED_TRACE(field);
    nlohmann::json json = tiny_wan_json();
    json["fastar_defaults"] = {{"policy", "window"}, {field, -1}};
    const std::string message = error_of([&] { WanConfig::from_json(json, "cfg.json"); });
    EXPECT_CONTAINS(message, "cfg.json");
    EXPECT_CONTAINS(message, std::string("fastar_defaults.") + field);
    json["fastar_defaults"] = {{"policy", "window"}, {field, 0}};
    EXPECT_NO_THROW(WanConfig::from_json(json, "cfg.json"));
  }
}

// ---- the checkpoint against the config ----------------------------------------------------------

TEST(WanModelLoad, BlockCountMustMatchNumLayersBeforeAnythingIsAllocated) {
  const std::string dir = testing::make_temp_dir("wan_block_count");
  fs::copy(golden("wan_tiny_original") + "/diffusion_pytorch_model.safetensors",
           dir + "/diffusion_pytorch_model.safetensors");
  nlohmann::json json = nlohmann::json::parse(std::ifstream(golden("wan_tiny_original") + "/config.json"));
  for (const int64_t layers : {1000, 1, 3}) {
    SCOPED_TRACE(layers);
    json["num_layers"] = layers;
    std::ofstream(dir + "/config.json") << json.dump();
    const std::string message = error_of([&] { WanModel::load(dir); });
    EXPECT_CONTAINS(message, dir);
    EXPECT_CONTAINS(message, "2 transformer blocks");
    EXPECT_CONTAINS(message, "num_layers " + std::to_string(layers));
  }
}

TEST(TextEncoderConfig, SizesAreCheckedAndMustMatchTheCheckpoint) {
  nlohmann::json json = nlohmann::json::parse(std::ifstream(golden("world_tiny") + "/config.json"));
  const struct {
    const char* field;
    nlohmann::json value;
  } cases[] = {{"layers", "two"}, {"layers", 1000000}, {"vocab_size", int64_t{1} << 40}, {"heads", int64_t{1} << 40},
               {"ffn_dim", int64_t{1} << 40}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.field) + " = " + c.value.dump());
    nlohmann::json edited = json;
    edited["text_encoder"][c.field] = c.value;
    const std::string message = error_of([&] { TextEncoderConfig::from_json(edited, "cfg.json"); });
    EXPECT_CONTAINS(message, "cfg.json");
    EXPECT_CONTAINS(message, std::string("text_encoder.") + c.field);
  }
  const std::string dir = testing::make_temp_dir("text_encoder_layers");
  for (const char* file : {"model.safetensors", "vocab.json"}) fs::copy(golden("world_tiny") + "/" + file, dir + "/" + file);
  json["text_encoder"]["layers"] = 3;
  std::ofstream(dir + "/config.json") << json.dump();
  const std::string message = error_of([&] { TextEncoder::load(dir); });
  EXPECT_CONTAINS(message, "2 text-encoder layers");
  EXPECT_CONTAINS(message, "text_encoder.layers 3");
}

// ---- prompt embeddings --------------------------------------------------------------------------

TEST(PromptContext, NonFiniteValuesAreRejected) {
  const WanConfig config = WanConfig::from_json(tiny_wan_json(), "cfg.json");
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    Tensor context = Tensor::zeros({3, config.text_dim});
    context.data<float>()[1 * config.text_dim + 2] = bad;
    const std::string message = error_of([&] { pad_prompt_context(context, config, "prompt.safetensors"); });
    EXPECT_CONTAINS(message, "prompt.safetensors");
    EXPECT_CONTAINS(message, "row 1");
    EXPECT_CONTAINS(message, "not finite");
  }
  Tensor fine = Tensor::zeros({3, config.text_dim}, DType::BF16);
  EXPECT_EQ(pad_prompt_context(fine, config, "prompt.safetensors").size(0), config.text_len);
}

// ---- random weights -----------------------------------------------------------------------------

TEST(RandomWeights, ParameterCountMatchesTheRegistry) {
  const WanConfig config = WanConfig::from_json(tiny_wan_json(), "cfg.json");
  int64_t total = 0;
  for (const auto& [name, tensor] : wan_weights_to_named(random_wan_weights(config, 3), config, WanNameLayout::Original))
    total += tensor.numel();
  EXPECT_EQ(wan_parameter_count(config), total);
}

TEST(RandomWeights, AbsurdConfigIsRefusedBeforeFillingAnything) {
  // A config every field of which is in range, but whose weights (~7e13 parameters) fit no machine.
  const nlohmann::json json = {{"dim", 65536},    {"num_heads", 512}, {"num_layers", 1024},
                               {"ffn_dim", 262144}, {"text_dim", 4096}, {"text_len", 512}};
  const WanConfig config = WanConfig::from_json(json, "absurd.json");
  const std::string message = error_of([&] { random_wan_weights(config, 1); });
  EXPECT_CONTAINS(message, "random weights");
  EXPECT_CONTAINS(message, "GiB");
  EXPECT_CONTAINS(message, "num_layers");
}

}  // namespace
}  // namespace fastar
