#include "fastar/model/wan_config.h"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"

namespace fastar {

namespace {

// The sizes a config may give, [min, max]. The bounds sit far above every released Wan2.1 DiT (the
// largest, 14B: dim 5120, ffn_dim 13824, 40 heads, 40 layers, text 512 × 4096) and low enough that
// no product of them overflows int64, so that a typo in config.json is reported before fastar sizes
// any per-layer structure or buffer from it. `example` is a real value, for the message.
struct SizeRange {
  int64_t min, max;
  const char* example;
};
constexpr SizeRange kDimRange{1, 65536, "Wan2.1-14B has 5120"};
constexpr SizeRange kFfnDimRange{1, 262144, "Wan2.1-14B has 13824"};
constexpr SizeRange kNumHeadsRange{1, 1024, "Wan2.1-14B has 40"};
constexpr SizeRange kHeadDimRange{1, 1024, "Wan2.1 has 128"};
constexpr SizeRange kNumLayersRange{1, 1024, "Wan2.1-14B has 40"};
constexpr SizeRange kChannelsRange{1, 1024, "Wan2.1 T2V has 16"};
constexpr SizeRange kTextDimRange{1, 65536, "Wan2.1 has 4096"};
constexpr SizeRange kTextLenRange{1, 65536, "Wan2.1 has 512"};
constexpr SizeRange kFreqDimRange{1, 65536, "Wan2.1 has 256"};
constexpr SizeRange kPatchRange{1, 16, "Wan2.1 has (1, 2, 2)"};
constexpr SizeRange kActionDimRange{0, 65536, "the world model has 5"};
constexpr SizeRange kLatentSideRange{1, 8192, "480p video is 60 × 104 latents"};
// text_len × text_dim: the padded prompt context every prompt is turned into (Wan: 512 × 4096).
constexpr int64_t kMaxTextElements = int64_t{1} << 26;

void check_range(int64_t value, const char* field, const SizeRange& range, const std::string& source) {
  FASTAR_CHECK(value >= range.min && value <= range.max,
               source << ": config field '" << field << "' must be at least " << range.min << " and at most "
                      << range.max << ", got " << value << " (" << range.example
                      << "); fix config.json, or use the config.json that came with the weights");
}

int64_t get_int(const nlohmann::json& json, const char* key, int64_t fallback, const std::string& source) {
  if (!json.contains(key) || json[key].is_null()) return fallback;
  const nlohmann::json& value = json[key];
  FASTAR_CHECK(value.is_number_integer(), source << ": config field '" << key << "' must be an integer, got "
                                                 << value.dump());
  // Unsigned JSON integers above int64 would wrap to negative values and be reported as such.
  FASTAR_CHECK(!value.is_number_unsigned() || value.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX),
               source << ": config field '" << key << "' is " << value.dump()
                      << ", far beyond any model size; fix config.json");
  return value.get<int64_t>();
}

// A string field; json.value() would throw nlohmann's type_error for a non-string value.
std::string get_string(const nlohmann::json& json, const char* key, const std::string& fallback,
                       const std::string& source) {
  if (!json.contains(key) || json[key].is_null()) return fallback;
  FASTAR_CHECK(json[key].is_string(), source << ": config field '" << key << "' must be a string, got "
                                             << json[key].dump());
  return json[key].get<std::string>();
}

bool get_bool(const nlohmann::json& json, const char* key, bool fallback, const std::string& source) {
  if (!json.contains(key) || json[key].is_null()) return fallback;
  FASTAR_CHECK(json[key].is_boolean(), source << ": config field '" << key << "' must be true or false, got "
                                              << json[key].dump());
  return json[key].get<bool>();
}

}  // namespace

WanConfig WanConfig::from_json(const nlohmann::json& json, const std::string& source) {
  FASTAR_CHECK(json.is_object(), source << ": config must be a JSON object");
  WanConfig c;
  const bool diffusers = json.contains("num_attention_heads") || json.contains("attention_head_dim") ||
                         get_string(json, "_class_name", "", source) == "WanTransformer3DModel";
  if (diffusers) {
    // dim = heads × head dim: both factors are checked before the product is formed.
    c.num_heads = get_int(json, "num_attention_heads", 12, source);
    check_range(c.num_heads, "num_attention_heads", kNumHeadsRange, source);
    const int64_t head_dim = get_int(json, "attention_head_dim", 128, source);
    check_range(head_dim, "attention_head_dim", kHeadDimRange, source);
    c.dim = c.num_heads * head_dim;
    c.in_dim = get_int(json, "in_channels", 16, source);
    c.out_dim = get_int(json, "out_channels", c.in_dim, source);
    if (json.contains("qk_norm") && !json["qk_norm"].is_null()) {
      FASTAR_CHECK(json["qk_norm"].is_string(), source << ": config field 'qk_norm' must be a string");
      const std::string qk = json["qk_norm"].get<std::string>();
      FASTAR_CHECK(qk == "rms_norm_across_heads", source << ": qk_norm '" << qk
                                                         << "' is not supported (fastar runs Wan2.1's "
                                                            "'rms_norm_across_heads')");
    } else {
      c.qk_norm = json.contains("qk_norm") ? false : true;
    }
    FASTAR_CHECK(!json.contains("image_dim") || json["image_dim"].is_null(),
                 source << ": image-conditioned (I2V) Wan models are not supported yet; use a T2V checkpoint");
    FASTAR_CHECK(!json.contains("added_kv_proj_dim") || json["added_kv_proj_dim"].is_null(),
                 source << ": added_kv_proj_dim (I2V image cross-attention) is not supported yet");
  } else {
    c.dim = get_int(json, "dim", 1536, source);
    c.num_heads = get_int(json, "num_heads", 12, source);
    c.in_dim = get_int(json, "in_dim", 16, source);
    c.out_dim = get_int(json, "out_dim", c.in_dim, source);
    c.qk_norm = get_bool(json, "qk_norm", true, source);
    const std::string model_type = get_string(json, "model_type", "t2v", source);
    FASTAR_CHECK(model_type == "t2v", source << ": model_type '" << model_type
                                             << "' is not supported yet; fastar runs T2V Wan DiTs");
  }
  c.ffn_dim = get_int(json, "ffn_dim", 8960, source);
  c.num_layers = get_int(json, "num_layers", 30, source);
  c.text_dim = get_int(json, "text_dim", 4096, source);
  c.text_len = get_int(json, "text_len", 512, source);
  c.freq_dim = get_int(json, "freq_dim", 256, source);
  c.cross_attn_norm = get_bool(json, "cross_attn_norm", true, source);
  c.action_dim = get_int(json, "action_dim", 0, source);
  c.latent_height = get_int(json, "latent_height", 60, source);
  c.latent_width = get_int(json, "latent_width", 104, source);
  if (json.contains("hybrid_layers") && !json["hybrid_layers"].is_null()) {
    const auto& list = json["hybrid_layers"];
    FASTAR_CHECK(list.is_array(), source << ": config field 'hybrid_layers' must be a list of layer indices, got " << list.dump());
    for (const auto& item : list) {
      FASTAR_CHECK(item.is_number_integer(), source << ": config field 'hybrid_layers' must hold integers, got " << item.dump());
      c.hybrid_layers.push_back(item.get<int64_t>());
    }
  }
  if (json.contains("fastar_defaults")) {
    const auto& d = json["fastar_defaults"];
    FASTAR_CHECK(d.is_object(), source << ": config field 'fastar_defaults' must be an object like "
                                          "{\"policy\": \"window\", \"window\": 9, \"sink\": 0}");
    if (d.contains("policy")) {
      FASTAR_CHECK(d["policy"].is_string(), source << ": fastar_defaults.policy must be a string");
      c.default_policy = d["policy"].get<std::string>();
    }
    c.default_window = get_int(d, "window", -1, source + " fastar_defaults");
    FASTAR_CHECK(!d.contains("window") || d["window"].is_null() || c.default_window >= 0,
                 source << ": fastar_defaults.window must be a number of latent frames >= 0, got " << c.default_window
                        << "; leave it out to use the CLI's default");
    if (d.contains("ann_layers")) {
      FASTAR_CHECK(d["ann_layers"].is_string(), source << ": fastar_defaults.ann_layers must be a string like \"0,2,5-7\"");
      c.default_ann_layers = d["ann_layers"].get<std::string>();
    }
    c.default_sink = get_int(d, "sink", -1, source + " fastar_defaults");
    FASTAR_CHECK(!d.contains("sink") || d["sink"].is_null() || c.default_sink >= 0,
                 source << ": fastar_defaults.sink must be a number of latent frames >= 0, got " << c.default_sink
                        << "; leave it out to use the CLI's default");
  }
  if (json.contains("hybrid_lora_alpha")) {
    FASTAR_CHECK(json["hybrid_lora_alpha"].is_number(), source << ": config field 'hybrid_lora_alpha' must be a number");
    c.hybrid_lora_alpha = json["hybrid_lora_alpha"].get<float>();
  }
  if (json.contains("eps")) {
    FASTAR_CHECK(json["eps"].is_number(), source << ": config field 'eps' must be a number");
    c.eps = json["eps"].get<float>();
  }
  if (json.contains("patch_size")) {
    const auto& p = json["patch_size"];
    FASTAR_CHECK(p.is_array() && p.size() == 3 && p[0].is_number_integer() && p[1].is_number_integer() &&
                     p[2].is_number_integer(),
                 source << ": config field 'patch_size' must be a list of three integers (t, h, w), got " << p.dump());
    c.patch_t = p[0].get<int64_t>();
    c.patch_h = p[1].get<int64_t>();
    c.patch_w = p[2].get<int64_t>();
  }
  c.validate(source);
  return c;
}

WanConfig WanConfig::load(const std::string& path) {
  std::ifstream in(path);
  FASTAR_CHECK(in.good(), path << ": cannot open the model config; a Wan model folder needs a config.json "
                                  "(Wan's or diffusers') beside its safetensors");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    FASTAR_FAIL(path << ": config is not valid JSON (" << e.what() << ")");
  }
  return from_json(json, path);
}

void WanConfig::validate(const std::string& source) const {
  // Every field that sizes an allocation (weights, per-layer structures, activations, the padded
  // prompt), within its range; the ranges keep every product below int64's limit.
  check_range(dim, "dim", kDimRange, source);
  check_range(ffn_dim, "ffn_dim", kFfnDimRange, source);
  check_range(num_heads, "num_heads", kNumHeadsRange, source);
  check_range(num_layers, "num_layers", kNumLayersRange, source);
  check_range(in_dim, "in_dim", kChannelsRange, source);
  check_range(out_dim, "out_dim", kChannelsRange, source);
  check_range(text_dim, "text_dim", kTextDimRange, source);
  check_range(text_len, "text_len", kTextLenRange, source);
  check_range(freq_dim, "freq_dim", kFreqDimRange, source);
  check_range(patch_t, "patch_size[0]", kPatchRange, source);
  check_range(patch_h, "patch_size[1]", kPatchRange, source);
  check_range(patch_w, "patch_size[2]", kPatchRange, source);
  check_range(action_dim, "action_dim", kActionDimRange, source);
  check_range(latent_height, "latent_height", kLatentSideRange, source);
  check_range(latent_width, "latent_width", kLatentSideRange, source);
  FASTAR_CHECK(text_len * text_dim <= kMaxTextElements,
               source << ": text_len × text_dim = " << text_len << " × " << text_dim << " is above " << kMaxTextElements
                      << " values per prompt (Wan: 512 × 4096); fix config.json");
  FASTAR_CHECK(default_window >= -1 && default_sink >= -1,
               source << ": fastar_defaults window and sink must be >= 0 (got " << default_window << ", " << default_sink
                      << ")");
  FASTAR_CHECK(dim % num_heads == 0, source << ": dim " << dim << " is not divisible by num_heads " << num_heads);
  FASTAR_CHECK(head_dim() % 2 == 0 && head_dim() >= 6,
               source << ": head dim " << head_dim() << " is unsupported (3D RoPE needs an even head dim >= 6)");
  FASTAR_CHECK(freq_dim % 2 == 0, source << ": freq_dim must be even, got " << freq_dim);
  FASTAR_CHECK(eps > 0.0f && std::isfinite(eps), source << ": eps must be a positive number, got " << eps);
  FASTAR_CHECK(static_cast<int64_t>(hybrid_layers.size()) <= num_layers,
               source << ": hybrid_layers lists " << hybrid_layers.size() << " layers, more than num_layers " << num_layers);
  for (size_t i = 0; i < hybrid_layers.size(); ++i) {
    FASTAR_CHECK(hybrid_layers[i] >= 0 && hybrid_layers[i] < num_layers,
                 source << ": hybrid_layers entry " << hybrid_layers[i] << " is not a layer index in [0, " << num_layers << ")");
    for (size_t j = 0; j < i; ++j)
      FASTAR_CHECK(hybrid_layers[j] != hybrid_layers[i], source << ": hybrid_layers lists layer " << hybrid_layers[i] << " twice");
  }
  FASTAR_CHECK(hybrid_lora_alpha > 0.0f && std::isfinite(hybrid_lora_alpha),
               source << ": hybrid_lora_alpha must be a positive number, got " << hybrid_lora_alpha);
}

bool WanConfig::is_hybrid(int64_t layer) const {
  for (int64_t h : hybrid_layers)
    if (h == layer) return true;
  return false;
}

std::string WanConfig::summary() const {
  std::ostringstream out;
  out << "  dim              " << dim << "\n"
      << "  heads × head_dim " << num_heads << " × " << head_dim() << "\n"
      << "  layers           " << num_layers << "\n"
      << "  ffn_dim          " << ffn_dim << "\n"
      << "  patch (t,h,w)    (" << patch_t << ", " << patch_h << ", " << patch_w << ")\n"
      << "  channels in/out  " << in_dim << " / " << out_dim << "\n"
      << "  text dim / len   " << text_dim << " / " << text_len << "\n"
      << "  freq_dim         " << freq_dim << "\n"
      << "  eps              " << eps << "\n"
      << "  qk_norm          " << (qk_norm ? "rms across heads" : "off") << "\n"
      << "  cross_attn_norm  " << (cross_attn_norm ? "on" : "off") << "\n"
      << "  action_dim       " << action_dim << (action_dim ? " (fastar extension)" : " (off)") << "\n"
      << "  latent size      " << latent_height << " × " << latent_width << " (default for generate)\n";
  out << "  hybrid layers    ";
  if (hybrid_layers.empty()) out << "none";
  else {
    for (size_t i = 0; i < hybrid_layers.size(); ++i) out << (i ? "," : "") << hybrid_layers[i];
    out << " (" << hybrid_layers.size() << " of " << num_layers << ", ARL² gated delta-rule memory; LoRA alpha "
        << hybrid_lora_alpha << ")";
  }
  out << "\n";
  return out.str();
}

}  // namespace fastar
