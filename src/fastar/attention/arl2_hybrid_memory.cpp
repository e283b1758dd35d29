#include "fastar/attention/arl2_hybrid_memory.h"

#include <cmath>
#include <sstream>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"
#include "fastar/kernels/cpu/gated_delta_rule.h"
#include "fastar/kernels/cpu/ops.h"

namespace fastar {

namespace {

constexpr float kL2NormEps = 1e-6f;  // flash-linear-attention's l2_norm: x / sqrt(Σx² + eps)

// out[rows, out] = in[rows, in] · Wᵀ (+ b)
void linear(const LinearWeights& lin, const float* in, int64_t rows, float* out) {
  cpu::linear_forward(out, in, lin.weight.data<float>(), lin.bias.defined() ? lin.bias.data<float>() : nullptr, rows,
                      lin.in_features(), lin.out_features());
}

// Per-head map: out[t, h, i] = Σ_j phi[h, i, j] · in[t, h, j].  in/out: [rows, heads·head_dim].
void per_head_map(const Tensor& phi, const float* in, float* out, int64_t rows, int64_t heads, int64_t head_dim) {
  const float* w = phi.data<float>();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      const float* x = in + (t * heads + h) * head_dim;
      const float* wh = w + h * head_dim * head_dim;
      float* y = out + (t * heads + h) * head_dim;
      for (int64_t i = 0; i < head_dim; ++i) {
        float acc = 0.0f;
        for (int64_t j = 0; j < head_dim; ++j) acc += wh[i * head_dim + j] * x[j];
        y[i] = acc;
      }
    }
}

// In place, each head vector of x[rows, heads·head_dim]: x / sqrt(Σx² + eps).
void l2_normalize_heads(float* x, int64_t rows, int64_t heads, int64_t head_dim) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows * heads; ++r) {
    float* v = x + r * head_dim;
    double sum = 0.0;
    for (int64_t i = 0; i < head_dim; ++i) sum += static_cast<double>(v[i]) * v[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum + kL2NormEps));
    for (int64_t i = 0; i < head_dim; ++i) v[i] *= inv;
  }
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }  // PyTorch's threshold

}  // namespace

Arl2HybridMemory::Arl2HybridMemory(const WanConfig& config, const WanWeights& weights, std::unique_ptr<CrossFrameMemory> inner)
    : config_(config), weights_(weights), inner_(std::move(inner)) {
  FASTAR_CHECK(!config.hybrid_layers.empty(), "arl2 policy: the model has no hybrid layers (config 'hybrid_layers' is empty); "
                                              "use --policy dense or window, or a checkpoint trained with ARL²");
  FASTAR_CHECK(inner_, "arl2 policy: an inner policy for the non-hybrid layers is required");
  FASTAR_CHECK(static_cast<int64_t>(weights.blocks.size()) == config.num_layers, "arl2 policy: weights do not match the config");
  const int64_t heads = config.num_heads, hd = config.head_dim();
  layer_state_.assign(static_cast<size_t>(config.num_layers), -1);
  for (int64_t layer : config.hybrid_layers) {
    FASTAR_CHECK(weights.blocks[static_cast<size_t>(layer)].hybrid.defined(),
                 "arl2 policy: layer " << layer << " is listed in hybrid_layers but the weights carry no hybrid tensors");
    layer_state_[static_cast<size_t>(layer)] = static_cast<int64_t>(states_.size());
    states_.emplace_back(static_cast<size_t>(heads * hd * hd), 0.0f);
    commits_.push_back(0);
  }
}

void Arl2HybridMemory::attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v,
                              float* out) {
  if (is_hybrid(layer)) attend_hybrid(layer, call, q, k, v, out);
  else inner_->attend(layer, call, q, k, v, out);
}

void Arl2HybridMemory::attend_hybrid(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v,
                                     float* out) {
  const WanConfig& c = config_;
  const int64_t n = call.num_frames * call.tokens_per_frame, heads = c.num_heads, hd = c.head_dim(), dim = c.dim;
  FASTAR_CHECK(call.layer_input && call.q_normed && call.k_normed && call.grid_height * call.grid_width == call.tokens_per_frame,
               "arl2 policy: layer " << layer << " is hybrid but the call carries no layer inputs (x, pre-RoPE q/k, "
                                                 "frame grid); the DiT must honour wants_layer_inputs()");
  const WanBlockWeights& block = weights_.blocks[static_cast<size_t>(layer)];
  const HybridAttentionWeights& hy = block.hybrid;
  const float* x = call.layer_input;
  std::vector<float>& state = states_[static_cast<size_t>(layer_state_[static_cast<size_t>(layer)])];

  // Softmax branch: this chunk's tokens only, bidirectional.
  AttentionParams local = packed_attention_params(q, k, v, out, n, n, heads, hd);
  cpu::attention_forward(local);

  // q̂ or k̂ = L2norm(RoPE(φ(base))), base = the qk-normed projection (the merged GDN LoRA one if any).
  std::vector<float> base(static_cast<size_t>(n * dim));
  auto memory_key = [&](const LinearWeights& lora, const Tensor& norm, const float* normed, const Tensor& phi) {
    const float* src = normed;
    if (lora.weight.defined()) {
      linear(lora, x, n, base.data());
      if (c.qk_norm) cpu::rmsnorm_forward(base.data(), base.data(), norm.data<float>(), n, dim, c.eps);
      src = base.data();
    }
    std::vector<float> mapped(static_cast<size_t>(n * dim));
    per_head_map(phi, src, mapped.data(), n, heads, hd);
    cpu::rope_3d_forward(mapped.data(), dim, call.num_frames, call.grid_height, call.grid_width, call.frame_start, heads, hd);
    l2_normalize_heads(mapped.data(), n, heads, hd);
    return mapped;
  };
  const std::vector<float> q_hat = memory_key(hy.lora_q, block.self_norm_q, call.q_normed, hy.phi_q);

  // Memory branch: out += sigmoid(x·W_gateᵀ) · scale · q̂·S, against the state before this call.
  std::vector<float> gate(static_cast<size_t>(n * heads));
  linear(hy.gate_proj, x, n, gate.data());
  for (float& g : gate) g = sigmoid(g);
  GatedDeltaRuleParams read = packed_gated_delta_rule_params(q_hat.data(), nullptr, nullptr, out, nullptr, nullptr,
                                                             state.data(), n, heads, hd);
  read.read_gate = gate.data();
  read.accumulate = true;
  cpu::gated_delta_rule_read(read);
  if (!call.commit) return;

  // Clean pass: S ← gated delta rule over the chunk's tokens.
  const std::vector<float> k_hat = memory_key(hy.lora_k, block.self_norm_k, call.k_normed, hy.phi_k);
  const float* v_base = v;
  if (hy.lora_v.weight.defined()) {
    linear(hy.lora_v, x, n, base.data());
    v_base = base.data();
  }
  std::vector<float> v_hat(static_cast<size_t>(n * dim)), log_alpha(static_cast<size_t>(n * heads)), beta(log_alpha.size());
  per_head_map(hy.phi_v, v_base, v_hat.data(), n, heads, hd);
  linear(hy.a_proj, x, n, log_alpha.data());
  linear(hy.b_proj, x, n, beta.data());
  const float* a_log = hy.A_log.data<float>();
  const float* dt_bias = hy.dt_bias.data<float>();
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      float& g = log_alpha[static_cast<size_t>(t * heads + h)];
      g = -std::exp(a_log[h]) * softplus(g + dt_bias[h]);
      float& b = beta[static_cast<size_t>(t * heads + h)];
      b = 2.0f * sigmoid(b);
    }
  GatedDeltaRuleParams update = packed_gated_delta_rule_params(nullptr, k_hat.data(), v_hat.data(), nullptr, log_alpha.data(),
                                                               beta.data(), state.data(), n, heads, hd);
  cpu::gated_delta_rule_update_chunked(update);
  commits_[static_cast<size_t>(layer_state_[static_cast<size_t>(layer)])] += 1;
}

int64_t Arl2HybridMemory::cached_frames(int64_t layer) const { return is_hybrid(layer) ? 0 : inner_->cached_frames(layer); }

int64_t Arl2HybridMemory::bytes() const {
  int64_t total = inner_->bytes();
  for (const std::vector<float>& s : states_) total += static_cast<int64_t>(s.size() * sizeof(float));
  return total;
}

std::string Arl2HybridMemory::describe() const {
  std::ostringstream out;
  out << "arl2 (" << states_.size() << " of " << config_.num_layers << " layers hybrid: chunk softmax + gated delta-rule state; "
      << "other layers: " << inner_->describe() << ")";
  return out.str();
}

const std::vector<float>& Arl2HybridMemory::state(int64_t layer) const {
  FASTAR_CHECK(is_hybrid(layer), "arl2 policy: layer " << layer << " is not hybrid");
  return states_[static_cast<size_t>(layer_state_[static_cast<size_t>(layer)])];
}

int64_t Arl2HybridMemory::committed_chunks(int64_t layer) const {
  FASTAR_CHECK(is_hybrid(layer), "arl2 policy: layer " << layer << " is not hybrid");
  return commits_[static_cast<size_t>(layer_state_[static_cast<size_t>(layer)])];
}

MemoryStats Arl2HybridMemory::summary() const {
  MemoryStats s = inner_->summary();
  s.bytes = bytes();
  return s;
}

}  // namespace fastar
