// Inputs found by tests/fuzz/fuzz_config (issue 21, item 2): config.json fields of the wrong JSON
// type must give a fastar::Error naming the field, never nlohmann's type_error (which the CLI can
// only report as "error (unexpected)").
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/model/umt5_config.h"
#include "fastar/model/wan_config.h"

namespace fastar {
namespace {

// The message of the fastar::Error that `f` throws; a test failure if it throws none or another type.
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

nlohmann::json umt5_json() {
  return {{"model_type", "umt5"}, {"feed_forward_proj", "gated-gelu"}, {"vocab_size", 64}, {"d_model", 16},
          {"d_kv", 4}, {"num_heads", 4}, {"d_ff", 32}, {"num_layers", 2}, {"relative_attention_num_buckets", 32},
          {"relative_attention_max_distance", 128}, {"layer_norm_epsilon", 1e-6}};
}

TEST(ConfigFuzzRegressions, WanStringFieldsOfAnotherTypeAreFastarErrors) {
  // fuzz_config crash: json.value("_class_name", ...) / json.value("model_type", ...) threw type_error 302.
  for (const nlohmann::json& value : {nlohmann::json(5), nlohmann::json::array({"WanModel"}), nlohmann::json(true)}) {
    nlohmann::json json = {{"dim", 64}, {"num_heads", 4}};
    json["_class_name"] = value;
    EXPECT_CONTAINS(error_of([&] { WanConfig::from_json(json, "cfg.json"); }), "'_class_name' must be a string");
    json.erase("_class_name");
    json["model_type"] = value;
    EXPECT_CONTAINS(error_of([&] { WanConfig::from_json(json, "cfg.json"); }), "'model_type' must be a string");
  }
  // The accepted forms stay accepted: strings, and null as "absent".
  EXPECT_NO_THROW(WanConfig::from_json({{"_class_name", "WanModel"}, {"model_type", "t2v"}}, "cfg.json"));
  EXPECT_NO_THROW(WanConfig::from_json({{"_class_name", nullptr}, {"model_type", nullptr}}, "cfg.json"));
  EXPECT_EQ(WanConfig::from_json({{"_class_name", "WanTransformer3DModel"}, {"num_attention_heads", 4},
                                  {"attention_head_dim", 16}}, "cfg.json").dim, 64);
}

TEST(ConfigFuzzRegressions, Umt5StringFieldsOfAnotherTypeAreFastarErrors) {
  // fuzz_config crash: {"feed_forward_proj": 64} (and a numeric model_type) threw type_error 302.
  EXPECT_NO_THROW(Umt5Config::from_hf_json(umt5_json(), "config.json"));
  for (const char* key : {"feed_forward_proj", "model_type"}) {
    nlohmann::json json = umt5_json();
    json[key] = 64;
    EXPECT_CONTAINS(error_of([&] { Umt5Config::from_hf_json(json, "config.json"); }),
                    std::string("'") + key + "' must be a string");
  }
}

}  // namespace
}  // namespace fastar
