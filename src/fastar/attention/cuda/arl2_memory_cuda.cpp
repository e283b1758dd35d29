#include "fastar/attention/cuda/arl2_memory_cuda.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/arl2_ops.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/flash_attention.h"
#include "fastar/kernels/cuda/gated_delta_rule.h"
#include "fastar/kernels/cuda/gemm.h"
#include "fastar/kernels/cuda/ops.h"

namespace fastar::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr const char* kHint = "use fewer --frames per chunk or a smaller --latent-size";
constexpr float kL2NormEps = 1e-6f;  // as the CPU policy

void check(cudaError_t status, const char* what) {
  FASTAR_CHECK(status == cudaSuccess, "CUDA error in " << what << ": " << cudaGetErrorString(status));
}

// [heads, D, D] per-head maps -> a block-diagonal [dim, dim] nn.Linear weight (out, in), bf16 on the device.
Tensor block_diagonal(const Tensor& phi, int64_t heads, int64_t head_dim) {
  const int64_t dim = heads * head_dim;
  Tensor full = Tensor::zeros({dim, dim});
  const Tensor p = phi.to_f32();
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < head_dim; ++i)
      std::memcpy(full.data<float>() + (h * head_dim + i) * dim + h * head_dim, p.data<float>() + (h * head_dim + i) * head_dim,
                  static_cast<size_t>(head_dim) * 4);
  return to_device(full.to_dtype(DType::BF16));
}

}  // namespace

struct CudaArl2Memory::HybridLayer {
  int64_t layer = 0;
  Tensor phi_q, phi_k, phi_v;           // bf16 [dim, dim] block-diagonal
  Tensor lora_q, lora_k, lora_v;        // bf16 [dim, dim] (undefined: the branch reuses the layer's q/k/v)
  Tensor lora_q_bias, lora_k_bias, lora_v_bias;
  Tensor proj;                          // bf16 [proj_width, dim]: gate, a, b rows, zero padding
  Tensor a_log, dt_bias;                // fp32 [heads]
  Tensor norm_q, norm_k;                // fp32 [dim] (the lora path's qk-norm)
  std::shared_ptr<Storage> state;       // fp32 [heads, D, D]
};

CudaArl2Memory::CudaArl2Memory(const WanModel& model, std::unique_ptr<CudaCrossFrameMemory> inner, int64_t max_tokens)
    : model_(model), inner_(std::move(inner)), gemm_(std::make_unique<Gemm>()), max_tokens_(max_tokens) {
  const WanConfig& c = model.config();
  FASTAR_CHECK(!c.hybrid_layers.empty(), "arl2 policy: the model has no hybrid layers (config 'hybrid_layers' is empty)");
  FASTAR_CHECK(inner_, "arl2 policy: an inner policy for the non-hybrid layers is required");
  const int64_t heads = c.num_heads, hd = c.head_dim(), dim = c.dim;
  proj_width_ = (3 * heads + 7) / 8 * 8;
  slot_.assign(static_cast<size_t>(c.num_layers), -1);
  for (int64_t layer : c.hybrid_layers) {
    const WanBlockWeights& b = model.weights().blocks[static_cast<size_t>(layer)];
    const HybridAttentionWeights& hy = b.hybrid;
    FASTAR_CHECK(hy.defined(), "arl2 policy: layer " << layer << " is listed in hybrid_layers but has no hybrid tensors");
    HybridLayer L;
    L.layer = layer;
    L.phi_q = block_diagonal(hy.phi_q, heads, hd);
    L.phi_k = block_diagonal(hy.phi_k, heads, hd);
    L.phi_v = block_diagonal(hy.phi_v, heads, hd);
    auto upload_lora = [&](const LinearWeights& lin, Tensor* w, Tensor* bias) {
      if (!lin.weight.defined()) return;
      *w = to_device(lin.weight.to_dtype(DType::BF16));
      *bias = to_device(lin.bias.defined() ? lin.bias.to_dtype(DType::BF16) : Tensor::zeros({dim}).to_dtype(DType::BF16));
    };
    upload_lora(hy.lora_q, &L.lora_q, &L.lora_q_bias);
    upload_lora(hy.lora_k, &L.lora_k, &L.lora_k_bias);
    upload_lora(hy.lora_v, &L.lora_v, &L.lora_v_bias);
    Tensor proj = Tensor::zeros({proj_width_, dim});
    int64_t row = 0;
    for (const LinearWeights* lin : {&hy.gate_proj, &hy.a_proj, &hy.b_proj}) {
      const Tensor w = lin->weight.to_f32();
      FASTAR_CHECK(w.dim() == 2 && w.size(0) == heads && w.size(1) == dim, "arl2 policy: layer " << layer
                                                                             << " has a gate/a/b projection of the wrong shape");
      std::memcpy(proj.data<float>() + row * dim, w.data<float>(), static_cast<size_t>(heads * dim) * 4);
      row += heads;
    }
    L.proj = to_device(proj.to_dtype(DType::BF16));
    L.a_log = to_device(hy.A_log.to_f32());
    L.dt_bias = to_device(hy.dt_bias.to_f32());
    if (c.qk_norm) {
      L.norm_q = to_device(b.self_norm_q.to_f32());
      L.norm_k = to_device(b.self_norm_k.to_f32());
    }
    L.state = allocate_device(heads * hd * hd * 4, kHint);
    check(cudaMemset(L.state->data(), 0, static_cast<size_t>(heads * hd * hd) * 4), "zeroing the ARL² state");
    slot_[static_cast<size_t>(layer)] = static_cast<int64_t>(layers_.size());
    layers_.push_back(std::move(L));
  }
  auto alloc = [&](int64_t bytes) {
    buffers_.push_back(allocate_device(std::max<int64_t>(bytes, 256), kHint));
    return buffers_.back()->data();
  };
  const int64_t n = max_tokens;
  stage_k_ = static_cast<bf16*>(alloc(n * dim * 2));
  stage_v_ = static_cast<bf16*>(alloc(n * dim * 2));
  hat_ = static_cast<bf16*>(alloc(n * dim * 2));
  hat_k_ = static_cast<bf16*>(alloc(n * dim * 2));
  hat_v_ = static_cast<bf16*>(alloc(n * dim * 2));
  tmp_ = static_cast<bf16*>(alloc(n * dim * 2));
  proj_ = static_cast<bf16*>(alloc(n * proj_width_ * 2));
  gate_ = static_cast<float*>(alloc(n * heads * 4));
  log_alpha_ = static_cast<float*>(alloc(n * heads * 4));
  beta_ = static_cast<float*>(alloc(n * heads * 4));
  GatedDeltaRuleParams sizing;
  sizing.tokens = n;
  sizing.heads = heads;
  sizing.key_dim = hd;
  sizing.value_dim = hd;
  workspace_bytes_ = gated_delta_rule_workspace_bytes(sizing);
  workspace_ = alloc(static_cast<int64_t>(workspace_bytes_));
}

CudaArl2Memory::~CudaArl2Memory() = default;

void CudaArl2Memory::begin(const CudaMemoryCall& call) {
  FASTAR_CHECK(call.num_frames * call.tokens_per_frame <= max_tokens_,
               "arl2 policy: a call of " << call.num_frames * call.tokens_per_frame << " tokens; sized for " << max_tokens_);
  call_ = call;
  inner_->begin(call);
}

bf16* CudaArl2Memory::chunk_k(int64_t layer) { return slot_[static_cast<size_t>(layer)] >= 0 ? stage_k_ : inner_->chunk_k(layer); }
bf16* CudaArl2Memory::chunk_v(int64_t layer) { return slot_[static_cast<size_t>(layer)] >= 0 ? stage_v_ : inner_->chunk_v(layer); }

void CudaArl2Memory::attend(int64_t layer, const bf16* q, bf16* out, cudaStream_t st, const CudaLayerInputs* inputs) {
  const int64_t slot = slot_[static_cast<size_t>(layer)];
  if (slot < 0) {
    inner_->attend(layer, q, out, st, nullptr);
    return;
  }
  FASTAR_CHECK(inputs && inputs->x && inputs->q_normed && inputs->k_normed,
               "arl2 policy: hybrid layer " << layer << " was called without its layer inputs");
  const WanConfig& c = model_.config();
  const HybridLayer& L = layers_[static_cast<size_t>(slot)];
  const int64_t n = call_.num_frames * call_.tokens_per_frame, heads = c.num_heads, hd = c.head_dim(), dim = c.dim;
  const int64_t gh = inputs->grid_height, gw = inputs->grid_width, fs = call_.frame_start;

  // Softmax branch: the call's own tokens, bidirectional.
  AttentionParams local = packed_attention_params(q, stage_k_, stage_v_, out, n, n, heads, hd);
  check(attention_forward_bf16(local, st), "attention_forward_bf16 (ARL² chunk-local)");

  // q̂ or k̂ = L2norm(RoPE(φ · base)), base = the qk-normed projection (the merged GDN LoRA one if any).
  auto memory_key = [&](const Tensor& lora, const Tensor& lora_bias, const Tensor& norm, const bf16* normed,
                        const Tensor& phi, bf16* dst) {
    const bf16* src = normed;
    if (lora.defined()) {
      linear_bf16(*gemm_, tmp_, inputs->x, lora.data<bf16>(), lora_bias.data<bf16>(), n, dim, dim, LinearEpilogue::Bias, st);
      rmsnorm_rope(tmp_, dim, norm.defined() ? norm.data<float>() : nullptr, call_.num_frames, gh, gw, fs, heads, hd,
                   c.eps, false, st);
      src = tmp_;
    }
    linear_bf16(*gemm_, dst, src, phi.data<bf16>(), nullptr, n, dim, dim, LinearEpilogue::None, st);
    rmsnorm_rope(dst, dim, nullptr, call_.num_frames, gh, gw, fs, heads, hd, c.eps, true, st);
    l2_normalize_heads(dst, n, heads, hd, kL2NormEps, st);
  };
  memory_key(L.lora_q, L.lora_q_bias, L.norm_q, inputs->q_normed, L.phi_q, hat_);

  // Gates: one GEMM for the gate, decay and β logits of every token.
  linear_bf16(*gemm_, proj_, inputs->x, L.proj.data<bf16>(), nullptr, n, dim, proj_width_, LinearEpilogue::None, st);
  arl2_gates(gate_, log_alpha_, beta_, proj_, proj_width_, L.a_log.data<float>(), L.dt_bias.data<float>(), n, heads, st);

  // Memory branch: out += gate · scale · q̂·S against the state before this call.
  // One layout for the read and the update: bf16 [tokens, heads·D] rows, per-token gates [tokens, heads],
  // the layer's fp32 state [heads, D, D].
  GatedDeltaRuleParams base;
  base.q_row_stride = base.k_row_stride = base.v_row_stride = base.o_row_stride = dim;
  base.q_head_stride = base.k_head_stride = base.v_head_stride = base.o_head_stride = hd;
  base.io_dtype = DType::BF16;
  base.gate_row_stride = heads;
  base.state = static_cast<float*>(L.state->data());
  base.state_head_stride = hd * hd;
  base.tokens = n;
  base.heads = heads;
  base.key_dim = hd;
  base.value_dim = hd;
  base.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  GatedDeltaRuleParams read = base;
  read.q = hat_;
  read.o = out;
  read.read_gate = gate_;
  read.accumulate = true;
  check(gated_delta_rule_read(read, st), "gated_delta_rule_read");
  if (!call_.commit) return;

  // Clean pass: S ← gated delta rule over the call's tokens (raster order).
  memory_key(L.lora_k, L.lora_k_bias, L.norm_k, inputs->k_normed, L.phi_k, hat_k_);
  const bf16* v_src = stage_v_;
  if (L.lora_v.defined()) {
    linear_bf16(*gemm_, tmp_, inputs->x, L.lora_v.data<bf16>(), L.lora_v_bias.data<bf16>(), n, dim, dim, LinearEpilogue::Bias, st);
    v_src = tmp_;
  }
  linear_bf16(*gemm_, hat_v_, v_src, L.phi_v.data<bf16>(), nullptr, n, dim, dim, LinearEpilogue::None, st);
  GatedDeltaRuleParams update = base;
  update.k = hat_k_;
  update.v = hat_v_;
  update.log_alpha = log_alpha_;
  update.beta = beta_;
  check(gated_delta_rule_update(update, workspace_, workspace_bytes_, st), "gated_delta_rule_update");
}

void CudaArl2Memory::commit(cudaStream_t stream) { inner_->commit(stream); }

int64_t CudaArl2Memory::bytes() const {
  const WanConfig& c = model_.config();
  return inner_->bytes() + static_cast<int64_t>(layers_.size()) * c.num_heads * c.head_dim() * c.head_dim() * 4;
}

std::string CudaArl2Memory::describe() const {
  std::ostringstream out;
  out << "arl2 (" << layers_.size() << " of " << model_.config().num_layers
      << " layers hybrid: chunk softmax + gated delta-rule state, GPU; other layers: " << inner_->describe() << ")";
  return out.str();
}

Tensor CudaArl2Memory::state(int64_t layer) const {
  const int64_t slot = slot_[static_cast<size_t>(layer)];
  FASTAR_CHECK(slot >= 0, "arl2 policy: layer " << layer << " is not hybrid");
  const WanConfig& c = model_.config();
  Tensor host = Tensor::zeros({c.num_heads, c.head_dim(), c.head_dim()});
  check(cudaMemcpy(host.raw_data(), layers_[static_cast<size_t>(slot)].state->data(), static_cast<size_t>(host.nbytes()),
                   cudaMemcpyDeviceToHost),
        "copying the ARL² state");
  return host;
}

MemoryStats CudaArl2Memory::summary() const {
  MemoryStats s = inner_->summary();
  s.bytes = bytes();
  return s;
}

}  // namespace fastar::cuda
