#include "fastar/model/text_encoder.h"

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"
#include "fastar/kernels/cpu/ops.h"
#include "fastar/model/wan_dit.h"

namespace fastar {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const std::string& path, const char* what) {
  std::ifstream in(path);
  FASTAR_CHECK(in.good(), path << ": cannot open " << what);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    FASTAR_FAIL(path << ": " << what << " is not valid JSON (" << e.what() << ")");
  }
}

// A size of the "text_encoder" section, an integer in [min, max] (the bounds sit far above the
// world model's encoder and keep every product of sizes below int64's limit); `fallback` when
// absent, or an error when absent and there is no fallback.
int64_t size_field(const nlohmann::json& json, const char* key, int64_t min, int64_t max, const std::string& source,
                   const int64_t* fallback = nullptr) {
  if (!json.contains(key) || json[key].is_null()) {
    FASTAR_CHECK(fallback, source << ": config field 'text_encoder." << key << "' is missing; it must be an integer in ["
                                  << min << ", " << max << "]");
    return *fallback;
  }
  const nlohmann::json& value = json[key];
  bool in_range = false;
  if (value.is_number_unsigned()) {  // nlohmann keeps non-negative integers unsigned, up to 2^64 − 1
    in_range = value.get<uint64_t>() >= static_cast<uint64_t>(min) && value.get<uint64_t>() <= static_cast<uint64_t>(max);
  } else if (value.is_number_integer()) {
    in_range = value.get<int64_t>() >= min && value.get<int64_t>() <= max;
  }
  FASTAR_CHECK(in_range,
               source << ": config field 'text_encoder." << key << "' must be an integer of at least " << min
                      << " and at most " << max << ", got " << value.dump()
                      << "; fix config.json, or use the one that came with the weights");
  return value.get<int64_t>();
}

void linear(const LinearWeights& lin, const float* in, int64_t rows, float* out) {
  cpu::linear_forward(out, in, lin.weight.data<float>(), lin.bias.data<float>(), rows, lin.in_features(),
                      lin.out_features());
}

// One registered tensor of the text encoder: its name (without the prefix), shape and destination.
struct TextSlot {
  std::string name;
  Shape shape;
  Tensor* target;
};

std::vector<TextSlot> text_slots(const TextEncoderConfig& c, TextEncoderWeights& w) {
  std::vector<TextSlot> slots;
  const int64_t d = c.dim;
  auto linear_slots = [&](LinearWeights& lin, const std::string& name, int64_t out, int64_t in) {
    slots.push_back({name + ".weight", {out, in}, &lin.weight});
    slots.push_back({name + ".bias", {out}, &lin.bias});
  };
  auto norm_slots = [&](Tensor& weight, Tensor& bias, const std::string& name) {
    slots.push_back({name + ".weight", {d}, &weight});
    slots.push_back({name + ".bias", {d}, &bias});
  };
  slots.push_back({"token_embedding.weight", {c.vocab_size, d}, &w.token_embedding});
  slots.push_back({"position_embedding", {c.text_len, d}, &w.position_embedding});
  w.layers.resize(static_cast<size_t>(c.layers));
  for (int64_t i = 0; i < c.layers; ++i) {
    TextEncoderLayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string p = "layers." + std::to_string(i) + ".";
    norm_slots(l.norm1_weight, l.norm1_bias, p + "norm1");
    linear_slots(l.q, p + "q", d, d);
    linear_slots(l.k, p + "k", d, d);
    linear_slots(l.v, p + "v", d, d);
    linear_slots(l.o, p + "o", d, d);
    norm_slots(l.norm2_weight, l.norm2_bias, p + "norm2");
    linear_slots(l.ffn_in, p + "ffn.0", c.ffn_dim, d);
    linear_slots(l.ffn_out, p + "ffn.2", d, c.ffn_dim);
  }
  norm_slots(w.norm_weight, w.norm_bias, "norm");
  return slots;
}

}  // namespace

bool TextEncoderConfig::present(const nlohmann::json& config) {
  return config.is_object() && config.contains("text_encoder") && !config["text_encoder"].is_null();
}

TextEncoderConfig TextEncoderConfig::from_json(const nlohmann::json& config, const std::string& source) {
  FASTAR_CHECK(present(config) && config["text_encoder"].is_object(),
               source << ": no 'text_encoder' section; this model takes prompt embeddings (--prompt-embeds)");
  const nlohmann::json& te = config["text_encoder"];
  const WanConfig wan = WanConfig::from_json(config, source);
  TextEncoderConfig c;
  const int64_t no_layers = 0;
  c.vocab_size = size_field(te, "vocab_size", 1, int64_t{1} << 20, source);
  c.layers = size_field(te, "layers", 0, 1024, source, &no_layers);
  if (c.layers > 0) {
    c.heads = size_field(te, "heads", 1, 1024, source);
    c.ffn_dim = size_field(te, "ffn_dim", 1, 262144, source);
  }
  c.text_len = wan.text_len;
  c.dim = wan.text_dim;
  c.eps = wan.eps;
  FASTAR_CHECK(c.dim % c.heads == 0, source << ": text_dim " << c.dim << " is not divisible by text_encoder.heads "
                                            << c.heads);
  return c;
}

std::vector<std::string> split_prompt_words(const std::string& text) {
  std::vector<std::string> words;
  std::string current;
  auto flush = [&] {
    if (!current.empty()) words.push_back(current);
    current.clear();
  };
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isspace(c)) {
      flush();
    } else if (c == '.') {
      flush();
      words.emplace_back(".");
    } else {
      current.push_back(static_cast<char>(std::tolower(c)));
    }
  }
  flush();
  return words;
}

TextEncoderWeights load_text_encoder_weights(const Checkpoint& checkpoint, const TextEncoderConfig& config) {
  // The layer count before anything is sized from it, then every name and shape before any data is read.
  check_checkpoint_layer_count(checkpoint, std::string(kTextEncoderPrefix) + "layers.", config.layers,
                               "text-encoder layers", "text_encoder.layers");
  TextEncoderWeights weights;
  std::set<std::string> expected;
  const std::vector<TextSlot> slots = text_slots(config, weights);
  for (const TextSlot& slot : slots) {
    const std::string name = kTextEncoderPrefix + slot.name;
    expected.insert(name);
    const TensorEntry* entry = checkpoint.find(name);
    FASTAR_CHECK(entry, checkpoint.path() << ": missing tensor '" << name << "' of the text encoder (config: "
                                          << config.layers << " layers); the weights do not match config.json");
    FASTAR_CHECK(dtype_is_float(entry->dtype), checkpoint.path() << ": tensor '" << name << "' has dtype "
                                                                 << dtype_name(entry->dtype) << "; must be F32, BF16 or F16");
    FASTAR_CHECK(entry->shape == slot.shape, checkpoint.path() << ": tensor '" << name << "' has shape "
                                                               << shape_to_string(entry->shape) << " but config.json implies "
                                                               << shape_to_string(slot.shape));
  }
  for (const TextSlot& slot : slots) *slot.target = checkpoint.tensor(kTextEncoderPrefix + slot.name).to_f32();
  for (const std::string& name : checkpoint.names())
    FASTAR_CHECK(name.rfind(kTextEncoderPrefix, 0) != 0 || expected.count(name),
                 checkpoint.path() << ": unexpected text-encoder tensor '" << name
                                   << "'; check text_encoder.layers in config.json");
  return weights;
}

TextEncoder::TextEncoder(TextEncoderConfig config, TextEncoderWeights weights, std::vector<std::string> vocabulary,
                         std::string vocabulary_source)
    : config_(config), weights_(std::move(weights)), vocabulary_(std::move(vocabulary)),
      vocabulary_source_(std::move(vocabulary_source)) {
  FASTAR_CHECK(static_cast<int64_t>(vocabulary_.size()) == config_.vocab_size,
               vocabulary_source_ << ": " << vocabulary_.size() << " words, but the text encoder has "
                                  << config_.vocab_size << " (config text_encoder.vocab_size); use the vocab.json "
                                                           "exported with these weights");
}

bool TextEncoder::available(const std::string& model_path) {
  const ModelFiles files = locate_model_files(model_path);
  return TextEncoderConfig::present(read_json(files.config, "the model config"));
}

TextEncoder TextEncoder::load(const std::string& model_path) {
  const ModelFiles files = locate_model_files(model_path);
  const TextEncoderConfig config = TextEncoderConfig::from_json(read_json(files.config, "the model config"), files.config);
  const std::string vocab_path = (fs::path(files.config).parent_path() / "vocab.json").string();
  FASTAR_CHECK(fs::exists(vocab_path), vocab_path << ": missing; a model with a text encoder needs its word list "
                                                     "(vocab.json, a JSON list of words) beside config.json");
  const nlohmann::json vocab_json = read_json(vocab_path, "the vocabulary");
  FASTAR_CHECK(vocab_json.is_array(), vocab_path << ": must be a JSON list of words");
  std::vector<std::string> vocabulary;
  for (const auto& word : vocab_json) {
    FASTAR_CHECK(word.is_string(), vocab_path << ": every entry must be a string, got " << word.dump());
    vocabulary.push_back(word.get<std::string>());
  }
  Checkpoint checkpoint = Checkpoint::open(files.weights);
  return TextEncoder(config, load_text_encoder_weights(checkpoint, config), std::move(vocabulary), vocab_path);
}

std::vector<int32_t> TextEncoder::tokenize(const std::string& text) const {
  const std::vector<std::string> words = split_prompt_words(text);
  FASTAR_CHECK(static_cast<int64_t>(words.size()) <= config_.text_len,
               "prompt: " << words.size() << " words (\".\" counts as one), more than this model's limit of "
                          << config_.text_len);
  std::vector<int32_t> ids;
  for (size_t i = 0; i < words.size(); ++i) {
    int32_t id = -1;
    for (size_t v = 0; v < vocabulary_.size(); ++v)
      if (vocabulary_[v] == words[i]) id = static_cast<int32_t>(v);
    const bool special = id == 0 || (id > 0 && words[i].size() > 1 && words[i].front() == '<' && words[i].back() == '>');
    FASTAR_CHECK(id >= 0 && !special, "prompt: unknown word '" << words[i] << "' (word " << i + 1
                                                               << "); the words this model knows are listed in "
                                                               << vocabulary_source_ << " (see docs/world.md for the grammar)");
    ids.push_back(id);
  }
  return ids;
}

Tensor TextEncoder::encode(const std::vector<int32_t>& ids) const {
  const TextEncoderConfig& c = config_;
  const int64_t d = c.dim;
  FASTAR_CHECK(static_cast<int64_t>(ids.size()) <= c.text_len,
               "text encoder: " << ids.size() << " token ids, more than text_len " << c.text_len);
  // The non-padding rows, in order: attention sees only these, padding rows stay zero.
  std::vector<int64_t> rows;
  for (size_t i = 0; i < ids.size(); ++i) {
    FASTAR_CHECK(ids[i] >= 0 && ids[i] < c.vocab_size, "text encoder: token id " << ids[i] << " outside [0, "
                                                                                 << c.vocab_size << ")");
    if (ids[i] != 0) rows.push_back(static_cast<int64_t>(i));
  }
  Tensor out = Tensor::zeros({c.text_len, d});
  const int64_t n = static_cast<int64_t>(rows.size());
  if (n == 0) return out;

  // x[n, d] = token embedding + position embedding.
  std::vector<float> x(static_cast<size_t>(n * d)), h(x.size()), q(x.size()), k(x.size()), v(x.size()), attn(x.size()),
      y(x.size()), ffn(static_cast<size_t>(n * c.ffn_dim));
  const float* tok = weights_.token_embedding.data<float>();
  const float* pos = weights_.position_embedding.data<float>();
  for (int64_t r = 0; r < n; ++r) {
    const int64_t i = rows[static_cast<size_t>(r)];
    for (int64_t j = 0; j < d; ++j) x[static_cast<size_t>(r * d + j)] = tok[ids[static_cast<size_t>(i)] * d + j] + pos[i * d + j];
  }
  for (const TextEncoderLayerWeights& l : weights_.layers) {
    cpu::layernorm_forward(h.data(), x.data(), l.norm1_weight.data<float>(), l.norm1_bias.data<float>(), n, d, c.eps);
    linear(l.q, h.data(), n, q.data());
    linear(l.k, h.data(), n, k.data());
    linear(l.v, h.data(), n, v.data());
    cpu::attention_forward(packed_attention_params(q.data(), k.data(), v.data(), attn.data(), n, n, c.heads, d / c.heads));
    linear(l.o, attn.data(), n, y.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
    cpu::layernorm_forward(h.data(), x.data(), l.norm2_weight.data<float>(), l.norm2_bias.data<float>(), n, d, c.eps);
    linear(l.ffn_in, h.data(), n, ffn.data());
    cpu::gelu_tanh_forward(ffn.data(), n * c.ffn_dim);
    linear(l.ffn_out, ffn.data(), n, y.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
  }
  cpu::layernorm_forward(h.data(), x.data(), weights_.norm_weight.data<float>(), weights_.norm_bias.data<float>(), n, d,
                         c.eps);
  float* o = out.data<float>();
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(o + rows[static_cast<size_t>(r)] * d, h.data() + r * d, static_cast<size_t>(d) * sizeof(float));
  return out;
}

}  // namespace fastar
