#include "fastar/model/umt5_config.h"

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/model/umt5_weights.h"

namespace fastar {

namespace {

int64_t positive_field(const nlohmann::json& config, const char* key, const std::string& source) {
  FASTAR_CHECK(config.contains(key) && config[key].is_number_integer() && config[key].get<int64_t>() > 0,
               source << ": field '" << key << "' must be a positive integer; is this a UMT5 config.json?");
  return config[key].get<int64_t>();
}

const TensorEntry& required(const Checkpoint& checkpoint, const std::string& name, size_t rank) {
  const TensorEntry* entry = checkpoint.find(name);
  FASTAR_CHECK(entry, checkpoint.path() << ": missing tensor '" << name
                                        << "' needed to infer the umT5 configuration; the checkpoint is incomplete");
  FASTAR_CHECK(entry->shape.size() == rank, checkpoint.path() << ": tensor '" << name << "' has shape "
                                                              << shape_to_string(entry->shape) << ", expected rank " << rank);
  return *entry;
}

}  // namespace

Umt5Config Umt5Config::from_hf_json(const nlohmann::json& config, const std::string& source) {
  FASTAR_CHECK(config.is_object(), source << ": not a JSON object");
  for (const char* key : {"model_type", "feed_forward_proj"})
    FASTAR_CHECK(!config.contains(key) || config[key].is_string(),
                 source << ": field '" << key << "' must be a string, got " << config[key].dump());
  if (config.contains("model_type")) {
    const std::string type = config["model_type"].get<std::string>();
    FASTAR_CHECK(type == "umt5", source << ": model_type '" << type << "'; fastar's encoder implements umT5 (a "
                                            "relative-position table in every layer), not T5/mT5 (one shared table)");
  }
  const std::string ffn = config.value("feed_forward_proj", std::string("gated-gelu"));
  FASTAR_CHECK(ffn == "gated-gelu", source << ": feed_forward_proj '" << ffn
                                           << "'; fastar implements umT5's 'gated-gelu' feed-forward only");
  Umt5Config c;
  c.vocab_size = positive_field(config, "vocab_size", source);
  c.d_model = positive_field(config, "d_model", source);
  c.d_kv = positive_field(config, "d_kv", source);
  c.num_heads = positive_field(config, "num_heads", source);
  c.d_ff = positive_field(config, "d_ff", source);
  c.num_layers = positive_field(config, "num_layers", source);
  c.num_buckets = positive_field(config, "relative_attention_num_buckets", source);
  c.max_distance = positive_field(config, "relative_attention_max_distance", source);
  FASTAR_CHECK(config.contains("layer_norm_epsilon") && config["layer_norm_epsilon"].is_number(),
               source << ": field 'layer_norm_epsilon' must be a number");
  c.eps = config["layer_norm_epsilon"].get<float>();
  FASTAR_CHECK(c.num_buckets % 4 == 0 && c.max_distance > c.num_buckets / 4,
               source << ": relative_attention_num_buckets " << c.num_buckets << " must be a multiple of 4 and "
                      << "relative_attention_max_distance " << c.max_distance << " above a quarter of it");
  return c;
}

Umt5Config Umt5Config::infer_from_weights(const Checkpoint& checkpoint) {
  const Umt5Naming naming = detect_umt5_naming(checkpoint);
  const bool wan = naming == Umt5Naming::Wan;
  auto layer_name = [&](int64_t n, const char* hf, const char* wan_suffix) {
    return wan ? "blocks." + std::to_string(n) + "." + wan_suffix
               : "encoder.block." + std::to_string(n) + ".layer." + hf;
  };
  Umt5Config c;
  const TensorEntry& embedding = required(checkpoint, umt5_embedding_name(checkpoint, naming), 2);
  c.vocab_size = embedding.shape[0];
  c.d_model = embedding.shape[1];
  while (checkpoint.find(layer_name(c.num_layers, "0.SelfAttention.q.weight", "attn.q.weight"))) ++c.num_layers;
  FASTAR_CHECK(c.num_layers > 0, checkpoint.path() << ": no encoder blocks found; the checkpoint is incomplete");
  const TensorEntry& bias = required(
      checkpoint, layer_name(0, "0.SelfAttention.relative_attention_bias.weight", "pos_embedding.embedding.weight"), 2);
  c.num_buckets = bias.shape[0];
  c.num_heads = bias.shape[1];
  const TensorEntry& q = required(checkpoint, layer_name(0, "0.SelfAttention.q.weight", "attn.q.weight"), 2);
  FASTAR_CHECK(q.shape[0] % c.num_heads == 0, checkpoint.path() << ": q has " << q.shape[0]
                                                                << " rows, not a multiple of the " << c.num_heads
                                                                << " heads of the relative-bias table");
  c.d_kv = q.shape[0] / c.num_heads;
  c.d_ff = required(checkpoint, layer_name(0, "1.DenseReluDense.wi_0.weight", "ffn.gate.0.weight"), 2).shape[0];
  return c;
}

}  // namespace fastar
