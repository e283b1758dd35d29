#include "fastar/model/umt5_encoder.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/kernels/cpu/ops.h"
#include "fastar/kernels/cpu/stored_weight_linear.h"

namespace fastar {

namespace fs = std::filesystem;

namespace {

void linear(const Tensor& weight, const float* in, int64_t rows, float* out) {
  cpu::stored_weight_linear(out, in, weight.raw_data(), weight.dtype(), rows, weight.size(1), weight.size(0));
}

void add_into(float* x, const float* y, int64_t count) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) x[i] += y[i];
}

// Self-attention of one layer over n tokens: o[i, h·D..] = Σ_j p[h,i,j] v[j, h·D..] over the keys j with
// key_mask 1. q, k, v, o: [n, heads·D]. bucket_of[rel + n − 1] = bucket of rel; bias: [buckets, heads].
void relative_attention(float* o, const float* q, const float* k, const float* v, const uint8_t* key_mask,
                        const int64_t* bucket_of, const float* bias, int64_t n, int64_t heads, int64_t head_dim) {
  const int64_t inner = heads * head_dim;
  std::vector<int64_t> keys;
  for (int64_t j = 0; j < n; ++j)
    if (key_mask[j]) keys.push_back(j);
  const auto num_keys = static_cast<int64_t>(keys.size());
#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(num_keys));
    std::vector<double> acc(static_cast<size_t>(head_dim));
#pragma omp for collapse(2) schedule(static)
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < n; ++i) {
        const float* qi = q + i * inner + h * head_dim;
        float* oi = o + i * inner + h * head_dim;
        if (num_keys == 0) {
          std::fill(oi, oi + head_dim, 0.0f);
          continue;
        }
        float max_score = -INFINITY;
        for (int64_t t = 0; t < num_keys; ++t) {
          const int64_t j = keys[static_cast<size_t>(t)];
          const float* kj = k + j * inner + h * head_dim;
          float dot = 0.0f;
          for (int64_t c = 0; c < head_dim; ++c) dot += qi[c] * kj[c];
          const float s = dot + bias[bucket_of[j - i + n - 1] * heads + h];
          scores[static_cast<size_t>(t)] = s;
          max_score = std::max(max_score, s);
        }
        double sum = 0.0;
        for (float& s : scores) {
          s = std::exp(s - max_score);
          sum += s;
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t t = 0; t < num_keys; ++t) {
          const float* vj = v + keys[static_cast<size_t>(t)] * inner + h * head_dim;
          const double p = scores[static_cast<size_t>(t)];
          for (int64_t c = 0; c < head_dim; ++c) acc[static_cast<size_t>(c)] += p * vj[c];
        }
        for (int64_t c = 0; c < head_dim; ++c) oi[c] = static_cast<float>(acc[static_cast<size_t>(c)] / sum);
      }
    }
  }
}

nlohmann::json read_config(const fs::path& path) {
  std::ifstream in(path);
  FASTAR_CHECK(in.good(), path.string() << ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    FASTAR_FAIL(path.string() << ": not valid JSON (" << e.what() << ")");
  }
}

}  // namespace

int64_t umt5_relative_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance) {
  const int64_t half = num_buckets / 2;
  const int64_t base = rel > 0 ? half : 0;
  const int64_t n = rel < 0 ? -rel : rel;
  const int64_t exact = half / 2;
  if (n < exact) return base + n;
  // fp32, in the reference's order: log(float(n) / exact) / log(max_distance / exact) * (half − exact)
  const float log_ratio = std::log(static_cast<float>(n) / static_cast<float>(exact)) /
                          static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(exact)));
  const auto large = exact + static_cast<int64_t>(log_ratio * static_cast<float>(half - exact));
  return base + std::min(large, half - 1);
}

Umt5Encoder::Umt5Encoder(Umt5Config config, Umt5Weights weights, std::string source)
    : config_(config), weights_(std::move(weights)), source_(std::move(source)) {
  FASTAR_ASSERT(static_cast<int64_t>(weights_.layers.size()) == config_.num_layers, "umT5 layer count");
}

Umt5Encoder Umt5Encoder::load(const std::string& path) {
  FASTAR_CHECK(fs::exists(path), path << ": no such file or folder; point at the umT5 text encoder (diffusers "
                                         "`text_encoder/` folder or a .safetensors file)");
  const Checkpoint checkpoint = Checkpoint::open(path);
  const fs::path config_path = (fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path()) / "config.json";
  Umt5Config config;
  if (fs::exists(config_path) && fs::is_directory(path)) {
    config = Umt5Config::from_hf_json(read_config(config_path), config_path.string());
  } else {
    config = Umt5Config::infer_from_weights(checkpoint);
  }
  return Umt5Encoder(config, load_umt5_weights(checkpoint, config), checkpoint.path());
}

Tensor Umt5Encoder::forward(const std::vector<int32_t>& ids, const std::vector<uint8_t>& key_mask) const {
  FASTAR_CHECK(ids.size() == key_mask.size(), "umT5 forward: " << ids.size() << " ids but " << key_mask.size()
                                                               << " mask entries");
  const auto n = static_cast<int64_t>(ids.size());
  const Umt5Config& c = config_;
  const int64_t d = c.d_model, inner = c.inner_dim();
  Tensor out = Tensor::zeros({n, d});
  if (n == 0) return out;

  // x = E[ids]                                                                    [n, d]
  std::vector<float> x(static_cast<size_t>(n * d));
  const Tensor& embedding = weights_.token_embedding;
  const auto* table = static_cast<const uint8_t*>(embedding.raw_data());
  const int64_t row_bytes = d * dtype_size(embedding.dtype());
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = ids[static_cast<size_t>(i)];
    FASTAR_CHECK(id >= 0 && id < c.vocab_size, "umT5: token id " << id << " is outside the embedding of "
                                                                 << c.vocab_size << " rows (" << source_
                                                                 << "); the tokenizer does not belong to this encoder");
    convert_to_f32(table + id * row_bytes, embedding.dtype(), x.data() + i * d, d);
  }

  std::vector<int64_t> bucket_of(static_cast<size_t>(2 * n - 1));
  for (int64_t rel = -(n - 1); rel <= n - 1; ++rel)
    bucket_of[static_cast<size_t>(rel + n - 1)] = umt5_relative_bucket(rel, c.num_buckets, c.max_distance);

  std::vector<float> h(static_cast<size_t>(n * d)), delta(static_cast<size_t>(n * d));
  std::vector<float> q(static_cast<size_t>(n * inner)), k(q.size()), v(q.size()), attn(q.size());
  std::vector<float> gate(static_cast<size_t>(n * c.d_ff)), up(gate.size());
  for (const Umt5LayerWeights& layer : weights_.layers) {
    cpu::rmsnorm_forward(h.data(), x.data(), layer.attention_norm.data<float>(), n, d, c.eps);
    linear(layer.q, h.data(), n, q.data());
    linear(layer.k, h.data(), n, k.data());
    linear(layer.v, h.data(), n, v.data());
    relative_attention(attn.data(), q.data(), k.data(), v.data(), key_mask.data(), bucket_of.data(),
                       layer.relative_bias.data<float>(), n, c.num_heads, c.d_kv);
    linear(layer.o, attn.data(), n, delta.data());
    add_into(x.data(), delta.data(), n * d);

    cpu::rmsnorm_forward(h.data(), x.data(), layer.ffn_norm.data<float>(), n, d, c.eps);
    linear(layer.gate, h.data(), n, gate.data());
    linear(layer.up, h.data(), n, up.data());
    cpu::gelu_tanh_forward(gate.data(), n * c.d_ff);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n * c.d_ff; ++i) gate[static_cast<size_t>(i)] *= up[static_cast<size_t>(i)];
    linear(layer.down, gate.data(), n, delta.data());
    add_into(x.data(), delta.data(), n * d);
  }
  cpu::rmsnorm_forward(out.data<float>(), x.data(), weights_.final_norm.data<float>(), n, d, c.eps);
  return out;
}

Tensor Umt5Encoder::encode(const std::vector<int32_t>& ids, int64_t length) const {
  const auto text_len = static_cast<int64_t>(ids.size());
  FASTAR_CHECK(length >= 1 && length <= text_len, "umT5 encode: " << length << " real tokens out of " << text_len
                                                                  << " ids; the tokenizer always gives at least </s>");
  const std::vector<int32_t> real(ids.begin(), ids.begin() + length);
  const Tensor hidden = forward(real, std::vector<uint8_t>(static_cast<size_t>(length), 1));
  Tensor context = Tensor::zeros({text_len, config_.d_model});
  std::copy(hidden.data<float>(), hidden.data<float>() + hidden.numel(), context.data<float>());
  return context;
}

}  // namespace fastar
