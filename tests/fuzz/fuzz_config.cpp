// libFuzzer target: config.json text through every reader of it — WanConfig (Wan's and diffusers'
// fields, validate, summary), the world model's "text_encoder" section and the umT5 encoder's HF config.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "fastar/model/text_encoder.h"
#include "fastar/model/umt5_config.h"
#include "fastar/model/wan_config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The loaders turn JSON syntax errors into fastar::Error themselves (WanConfig::load checked here
  // through a file); the JSON-taking readers get whatever parses.
  const fastar_fuzz::MemFile file(data, size);
  fastar_fuzz::expect_only_fastar_errors("WanConfig::load", [&] { (void)fastar::WanConfig::load(file.path()); });

  nlohmann::json json;
  try {
    json = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  fastar_fuzz::expect_only_fastar_errors("WanConfig::from_json", [&] {
    const fastar::WanConfig c = fastar::WanConfig::from_json(json, "config.json");
    (void)c.summary();
    (void)c.patch_features_in();
    (void)c.patch_features_out();
    (void)c.is_hybrid(0);
  });
  fastar_fuzz::expect_only_fastar_errors("TextEncoderConfig::from_json", [&] {
    if (fastar::TextEncoderConfig::present(json)) (void)fastar::TextEncoderConfig::from_json(json, "config.json");
  });
  fastar_fuzz::expect_only_fastar_errors("Umt5Config::from_hf_json", [&] {
    (void)fastar::Umt5Config::from_hf_json(json, "text_encoder/config.json");
  });
  return 0;
}
