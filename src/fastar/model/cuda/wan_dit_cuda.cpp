#include "fastar/model/cuda/wan_dit_cuda.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/flash_attention.h"
#include "fastar/kernels/cuda/gemm.h"
#include "fastar/kernels/cuda/ops.h"
#include "fastar/kernels/cuda/small_rows_linear.h"
#include "fastar/kernels/cuda/cuda_check.h"

namespace fastar::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr const char* kMemoryHint =
    "lower --frames or use --policy window (a smaller KV cache), or a smaller --latent-size";

Tensor upload(const Tensor& host, DType dtype) {
  return to_device(host.to_dtype(dtype));
}

struct DeviceLinear {
  Tensor weight, bias;  // bf16 [out, in], bf16 [out]
  int64_t in = 0, out = 0;
};

DeviceLinear upload_linear(const LinearWeights& lin) {
  DeviceLinear d;
  d.weight = upload(lin.weight, DType::BF16);
  if (lin.bias.defined()) d.bias = upload(lin.bias, DType::BF16);
  d.in = lin.in_features();
  d.out = lin.out_features();
  return d;
}

const float* f32(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace

struct CudaWanModel::DeviceWeights {
  Tensor patch_weight, patch_bias;
  struct Block {
    Tensor modulation;  // fp32 [6·dim]
    DeviceLinear self_q, self_k, self_v, self_o, cross_q, cross_o, ffn_in, ffn_out;
    Tensor self_norm_q, self_norm_k, cross_norm_weight, cross_norm_bias, cross_norm_q;  // fp32 [dim]
  };
  std::vector<Block> blocks;
  DeviceLinear head;
  DeviceLinear time_in, time_out, time_projection, action_in, action_out;
  Tensor head_modulation;  // fp32 [2·dim]: shift row, scale row
};

// ---- model -------------------------------------------------------------------------------------

CudaWanModel::CudaWanModel(const WanModel& host, int64_t max_tokens, cudaStream_t stream)
    : host_(host), stream_(stream), w_(std::make_unique<DeviceWeights>()), gemm_(std::make_unique<Gemm>()),
      max_tokens_(max_tokens) {
  const WanConfig& c = host.config();
  const WanWeights& hw = host.weights();
  FASTAR_CHECK(c.head_dim() == 64 || c.head_dim() == 128,
               "the CUDA backend supports head dims 64 and 128; this model has " << c.head_dim() << " (use --device cpu)");
  FASTAR_CHECK(c.dim % 8 == 0 && c.ffn_dim % 8 == 0, "the CUDA backend needs dim and ffn_dim divisible by 8");
  w_->patch_weight = upload(hw.patch_weight, DType::BF16);
  w_->patch_bias = upload(hw.patch_bias, DType::BF16);
  for (const WanBlockWeights& b : hw.blocks) {
    DeviceWeights::Block d;
    d.modulation = upload(b.modulation.reshape({6 * c.dim}), DType::F32);
    d.self_q = upload_linear(b.self_q);
    d.self_k = upload_linear(b.self_k);
    d.self_v = upload_linear(b.self_v);
    d.self_o = upload_linear(b.self_o);
    d.cross_q = upload_linear(b.cross_q);
    d.cross_o = upload_linear(b.cross_o);
    d.ffn_in = upload_linear(b.ffn_in);
    d.ffn_out = upload_linear(b.ffn_out);
    if (c.qk_norm) {
      d.self_norm_q = upload(b.self_norm_q, DType::F32);
      d.self_norm_k = upload(b.self_norm_k, DType::F32);
      d.cross_norm_q = upload(b.cross_norm_q, DType::F32);
    }
    if (c.cross_attn_norm) {
      d.cross_norm_weight = upload(b.cross_norm_weight, DType::F32);
      d.cross_norm_bias = upload(b.cross_norm_bias, DType::F32);
    }
    w_->blocks.push_back(std::move(d));
  }
  w_->head = upload_linear(hw.head);
  w_->time_in = upload_linear(hw.time_in);
  w_->time_out = upload_linear(hw.time_out);
  w_->time_projection = upload_linear(hw.time_projection);
  if (c.action_dim > 0) {
    w_->action_in = upload_linear(hw.action_in);
    w_->action_out = upload_linear(hw.action_out);
  }
  w_->head_modulation = upload(hw.head_modulation.reshape({2 * c.dim}), DType::F32);

  auto alloc = [&](int64_t bytes) {
    buffers_.push_back(allocate_device(std::max<int64_t>(bytes, 256), kMemoryHint));
    return buffers_.back()->data();
  };
  const int64_t n = max_tokens, d = c.dim;
  const int64_t max_frames = std::min<int64_t>(n, kSmallRowsMax);  // token-frames per call (the embedding MLPs' rows)
  max_frames_ = max_frames;
  x_ = static_cast<float*>(alloc(n * d * 4));
  h_ = alloc(n * d * 2);
  q_ = alloc(n * d * 2);
  kc_ = alloc(n * d * 2);
  vc_ = alloc(n * d * 2);
  q_normed_ = alloc(n * d * 2);
  k_normed_ = alloc(n * d * 2);
  attn_ = alloc(n * d * 2);
  y_ = alloc(n * d * 2);
  ffn_ = alloc(n * c.ffn_dim * 2);
  patches_ = alloc(n * std::max(c.patch_features_in(), c.patch_features_out()) * 2);
  t_ = static_cast<float*>(alloc(max_frames * 4));
  actions_ = static_cast<float*>(alloc(max_frames * std::max<int64_t>(c.action_dim, 1) * 4));
  sinusoid_ = static_cast<float*>(alloc(max_frames * c.freq_dim * 4));
  hidden_ = static_cast<float*>(alloc(max_frames * d * 4));
  e_ = static_cast<float*>(alloc(max_frames * d * 4));
  e_act_ = static_cast<float*>(alloc(max_frames * d * 4));
  e0_ = static_cast<float*>(alloc(max_frames * 6 * d * 4));
  mod_ = static_cast<float*>(alloc(max_frames * 6 * d * 4));
  head_mod_ = static_cast<float*>(alloc(max_frames * 2 * d * 4));
  const char* graphs = std::getenv("FASTAR_CUDA_GRAPHS");
  graphs_enabled_ = !(graphs && std::strcmp(graphs, "0") == 0);
}

CudaWanModel::~CudaWanModel() {
  if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
  for (auto& [stage, event] : profile_events_) cudaEventDestroy(event);
}

void CudaWanModel::set_prompt(const WanPrompt& prompt) {
  FASTAR_CHECK(static_cast<int64_t>(prompt.cross_k.size()) == config().num_layers, "prompt was prepared for another model");
  cross_policy_has_prompt_ = false;  // until the policy has taken this prompt (an upload or the policy may throw)
  cross_k_.clear();
  cross_v_.clear();
  for (size_t layer = 0; layer < prompt.cross_k.size(); ++layer) {
    cross_k_.push_back(upload(prompt.cross_k[layer], DType::BF16));
    cross_v_.push_back(upload(prompt.cross_v[layer], DType::BF16));
  }
  prompt_rows_ = prompt.rows;
  if (cross_policy_) cross_policy_->set_prompt(prompt);
  cross_policy_has_prompt_ = true;
  graph_key_uses_ = 0;  // a captured graph points at the old prompt's buffers
}

void CudaWanModel::set_cross_attention(CudaCrossAttentionPolicy* policy) {
  cross_policy_ = policy;
  cross_policy_has_prompt_ = false;
  graph_key_uses_ = 0;
}

void CudaWanModel::forward(float* v_out, const float* latent, int64_t frames, int64_t height, int64_t width,
                           const std::vector<float>& timesteps, int64_t frame_start, CudaCrossFrameMemory* memory,
                           bool commit, const Tensor* actions) {
  const WanConfig& c = config();
  FASTAR_CHECK(!cross_k_.empty(), "CudaWanModel::forward before set_prompt");
  FASTAR_CHECK(!cross_policy_ || cross_policy_has_prompt_, "CudaWanModel::forward: call set_prompt after set_cross_attention");
  FASTAR_CHECK(frames % c.patch_t == 0 && height % c.patch_h == 0 && width % c.patch_w == 0,
               "latent size not divisible by the patch size");
  FASTAR_CHECK(static_cast<int64_t>(timesteps.size()) == frames, "one timestep per latent frame");
  const int64_t grid_f = frames / c.patch_t, grid_h = height / c.patch_h, grid_w = width / c.patch_w;
  const int64_t tpf = grid_h * grid_w, n = grid_f * tpf;
  FASTAR_CHECK(n <= max_tokens_, "chunk of " << n << " tokens exceeds the " << max_tokens_ << " the GPU buffers were sized for");
  FASTAR_CHECK(grid_f <= max_frames_, "chunk of " << grid_f << " token-frames; the GPU path takes at most " << max_frames_);
  cudaStream_t st = stream_;

  // Per-call inputs (outside any graph): the token-frames' timesteps, and actions.
  host_staging_.assign(static_cast<size_t>(grid_f), 0.0f);
  for (int64_t f = 0; f < grid_f; ++f) host_staging_[static_cast<size_t>(f)] = timesteps[static_cast<size_t>(f * c.patch_t)];
  if (memory) memory->begin(CudaMemoryCall{frame_start / c.patch_t, grid_f, tpf, commit, host_staging_.data()});
  if (cross_policy_) cross_policy_->begin(CudaCrossAttentionCall{frame_start / c.patch_t, grid_f, tpf, host_staging_.data()});
  FASTAR_CUDA_CHECK(cudaMemcpyAsync(t_, host_staging_.data(), static_cast<size_t>(grid_f) * 4, cudaMemcpyHostToDevice, st));
  if (c.action_dim > 0) {
    FASTAR_CHECK(actions && actions->dim() == 2 && actions->size(0) == frames && actions->size(1) == c.action_dim,
                 "this model takes per-frame actions [" << frames << ", " << c.action_dim << "]");
    const Tensor act = actions->to_f32();
    std::vector<float> rows(static_cast<size_t>(grid_f * c.action_dim));
    for (int64_t f = 0; f < grid_f; ++f)
      std::memcpy(&rows[static_cast<size_t>(f * c.action_dim)], act.data<float>() + f * c.patch_t * c.action_dim,
                  static_cast<size_t>(c.action_dim) * 4);
    FASTAR_CUDA_CHECK(cudaMemcpyAsync(actions_, rows.data(), rows.size() * 4, cudaMemcpyHostToDevice, st));
  }

  if (profiling_) {  // eager, with an event after each stage
    forward_body(v_out, latent, frames, height, width, frame_start, memory);
    if (memory && commit) memory->commit(st);
    return;
  }
  const GraphKey key{frames,  height, width, frame_start, memory ? memory->layout_version() : 0,
                     cross_policy_ ? cross_policy_->layout_version() : 0, commit, v_out, latent, memory};
  if (!graphs_enabled_) {
    forward_body(v_out, latent, frames, height, width, frame_start, memory);
  } else {
    if (!(key == graph_key_) || graph_key_uses_ == 0) {
      graph_key_ = key;
      graph_key_uses_ = 0;
    }
    if (graph_key_uses_ == 0) {
      // First forward of this shape: eager (creates the cuBLASLt plans and loads the kernels).
      forward_body(v_out, latent, frames, height, width, frame_start, memory);
    } else {
      if (graph_key_uses_ == 1) {
        cudaGraph_t graph = nullptr;
        FASTAR_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        try {
          forward_body(v_out, latent, frames, height, width, frame_start, memory);
        } catch (...) {
          cudaStreamEndCapture(st, &graph);
          if (graph) cudaGraphDestroy(graph);
          throw;
        }
        FASTAR_CUDA_CHECK(cudaStreamEndCapture(st, &graph));
        bool updated = false;
        if (graph_exec_) {
          cudaGraphExecUpdateResultInfo info{};
          updated = cudaGraphExecUpdate(graph_exec_, graph, &info) == cudaSuccess;
          if (!updated) {
            cudaGetLastError();
            cudaGraphExecDestroy(graph_exec_);
            graph_exec_ = nullptr;
          }
        }
        if (!updated) {
          const cudaError_t status = cudaGraphInstantiate(&graph_exec_, graph, 0);
          cudaGraphDestroy(graph);
          FASTAR_CUDA_CHECK(status);
        } else {
          cudaGraphDestroy(graph);
        }
      }
      FASTAR_CUDA_CHECK(cudaGraphLaunch(graph_exec_, st));
      ++graph_replays_;
    }
    ++graph_key_uses_;
  }
  if (memory && commit) memory->commit(st);
}

void CudaWanModel::set_profiling(bool on) {
  profiling_ = on;
  graph_key_uses_ = 0;
}

std::vector<std::pair<std::string, double>> CudaWanModel::take_profile() {
  std::vector<std::pair<std::string, double>> stages;
  FASTAR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (size_t i = 1; i < profile_events_.size(); ++i) {
    float ms = 0;
    if (profile_events_[i].first.empty()) continue;  // the start of the next forward
    FASTAR_CUDA_CHECK(cudaEventElapsedTime(&ms, profile_events_[i - 1].second, profile_events_[i].second));
    auto it = std::find_if(stages.begin(), stages.end(), [&](const auto& s) { return s.first == profile_events_[i].first; });
    if (it == stages.end()) stages.emplace_back(profile_events_[i].first, ms);
    else it->second += ms;
  }
  for (auto& [stage, event] : profile_events_) cudaEventDestroy(event);
  profile_events_.clear();
  return stages;
}

void CudaWanModel::time_embedding(int64_t grid_f) {
  // e = MLP(sinusoid(t)) (+ action MLP); e0 = Linear(SiLU(e)); head (shift, scale) = table + e.
  const WanConfig& c = config();
  const int64_t d = c.dim;
  cudaStream_t st = stream_;
  const DeviceWeights& w = *w_;
  timestep_mlp_input(sinusoid_, t_, grid_f, c.freq_dim, st);
  small_rows_linear(hidden_, sinusoid_, w.time_in.weight.data<bf16>(), w.time_in.bias.data<bf16>(), grid_f, c.freq_dim, d,
                    false, st);
  silu(hidden_, grid_f * d, st);
  small_rows_linear(e_, hidden_, w.time_out.weight.data<bf16>(), w.time_out.bias.data<bf16>(), grid_f, d, d, false, st);
  if (c.action_dim > 0) {
    small_rows_linear(hidden_, actions_, w.action_in.weight.data<bf16>(), w.action_in.bias.data<bf16>(), grid_f,
                      c.action_dim, d, false, st);
    silu(hidden_, grid_f * d, st);
    small_rows_linear(e_, hidden_, w.action_out.weight.data<bf16>(), w.action_out.bias.data<bf16>(), grid_f, d, d, true, st);
  }
  FASTAR_CUDA_CHECK(cudaMemcpyAsync(e_act_, e_, static_cast<size_t>(grid_f * d) * 4, cudaMemcpyDeviceToDevice, st));
  silu(e_act_, grid_f * d, st);
  small_rows_linear(e0_, e_act_, w.time_projection.weight.data<bf16>(), w.time_projection.bias.data<bf16>(), grid_f, d,
                    6 * d, false, st);
  add_rows(head_mod_, w.head_modulation.data<float>(), e_, grid_f, d, st);
  add_rows(head_mod_ + grid_f * d, w.head_modulation.data<float>() + d, e_, grid_f, d, st);
}

void CudaWanModel::forward_body(float* v_out, const float* latent, int64_t frames, int64_t height, int64_t width,
                                int64_t frame_start, CudaCrossFrameMemory* memory) {
  const WanConfig& c = config();
  const int64_t grid_f = frames / c.patch_t, grid_h = height / c.patch_h, grid_w = width / c.patch_w;
  const int64_t tpf = grid_h * grid_w, n = grid_f * tpf, d = c.dim, hd = c.head_dim(), heads = c.num_heads;
  const int64_t fs = frame_start / c.patch_t;
  cudaStream_t st = stream_;
  // Profiling (off unless set_profiling(true)): an event after each stage; stage time = gap to the previous event.
  auto mark = [&](const char* stage) {
    if (!profiling_) return;
    cudaEvent_t event;
    FASTAR_CUDA_CHECK(cudaEventCreate(&event));
    FASTAR_CUDA_CHECK(cudaEventRecord(event, st));
    profile_events_.emplace_back(stage, event);
  };
  mark("");

  // Patch embedding -> residual stream x (fp32).
  patchify(static_cast<bf16*>(patches_), latent, c.in_dim, frames, height, width, c.patch_t, c.patch_h, c.patch_w, st);
  linear_bf16(*gemm_, static_cast<bf16*>(h_), static_cast<const bf16*>(patches_), w_->patch_weight.data<bf16>(),
              w_->patch_bias.data<bf16>(), n, c.patch_features_in(), d, LinearEpilogue::Bias, st);
  bf16_to_f32(x_, static_cast<const bf16*>(h_), n * d, st);
  mark("patch embedding");
  time_embedding(grid_f);
  mark("time embedding");

  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    const DeviceWeights::Block& b = w_->blocks[static_cast<size_t>(layer)];
    add_rows(mod_, b.modulation.data<float>(), e0_, grid_f, 6 * d, st);
    const int64_t ms = 6 * d;

    // Self-attention over [cache + chunk]: the chunk's K/V are written straight into the cache tail.
    adaln_modulate(static_cast<bf16*>(h_), x_, mod_, mod_ + d, ms, grid_f, tpf, d, c.eps, st);
    mark("norms + modulation");
    bf16* k_chunk = memory ? memory->chunk_k(layer) : static_cast<bf16*>(kc_);
    bf16* v_chunk = memory ? memory->chunk_v(layer) : static_cast<bf16*>(vc_);
    linear_bf16(*gemm_, static_cast<bf16*>(q_), static_cast<const bf16*>(h_), b.self_q.weight.data<bf16>(),
                b.self_q.bias.data<bf16>(), n, d, d, LinearEpilogue::Bias, st);
    linear_bf16(*gemm_, k_chunk, static_cast<const bf16*>(h_), b.self_k.weight.data<bf16>(), b.self_k.bias.data<bf16>(), n, d,
                d, LinearEpilogue::Bias, st);
    linear_bf16(*gemm_, v_chunk, static_cast<const bf16*>(h_), b.self_v.weight.data<bf16>(), b.self_v.bias.data<bf16>(), n, d,
                d, LinearEpilogue::Bias, st);
    mark("self q/k/v GEMMs");
    // ARL² hybrid layers (memory->wants_layer_inputs) also read x and the pre-RoPE q/k: norm, keep a
    // copy, then RoPE; every other layer runs the fused norm + RoPE.
    const bool layer_inputs = memory && memory->wants_layer_inputs(layer);
    CudaLayerInputs inputs;
    if (layer_inputs) {
      rmsnorm_rope(static_cast<bf16*>(q_), d, f32(b.self_norm_q), grid_f, grid_h, grid_w, fs, heads, hd, c.eps, false, st);
      rmsnorm_rope(k_chunk, d, f32(b.self_norm_k), grid_f, grid_h, grid_w, fs, heads, hd, c.eps, false, st);
      FASTAR_CUDA_CHECK(cudaMemcpyAsync(q_normed_, q_, static_cast<size_t>(n * d) * 2, cudaMemcpyDeviceToDevice, st));
      FASTAR_CUDA_CHECK(cudaMemcpyAsync(k_normed_, k_chunk, static_cast<size_t>(n * d) * 2, cudaMemcpyDeviceToDevice, st));
      rmsnorm_rope(static_cast<bf16*>(q_), d, nullptr, grid_f, grid_h, grid_w, fs, heads, hd, c.eps, true, st);
      rmsnorm_rope(k_chunk, d, nullptr, grid_f, grid_h, grid_w, fs, heads, hd, c.eps, true, st);
      inputs = CudaLayerInputs{static_cast<const bf16*>(h_), static_cast<const bf16*>(q_normed_),
                               static_cast<const bf16*>(k_normed_), grid_h, grid_w};
    } else {
      FASTAR_CHECK(!c.is_hybrid(layer), "layer " << layer << " is an ARL² hybrid layer (config 'hybrid_layers'); run this "
                                                     "model with the arl2 memory policy (fastar generate --policy arl2)");
      rmsnorm_rope(static_cast<bf16*>(q_), d, f32(b.self_norm_q), grid_f, grid_h, grid_w, fs, heads, hd, c.eps, true, st);
      rmsnorm_rope(k_chunk, d, f32(b.self_norm_k), grid_f, grid_h, grid_w, fs, heads, hd, c.eps, true, st);
    }
    mark("q/k RMSNorm + RoPE");
    if (memory) {
      memory->attend(layer, static_cast<const bf16*>(q_), static_cast<bf16*>(attn_), st, layer_inputs ? &inputs : nullptr);
    } else {
      FASTAR_CHECK(!c.is_hybrid(layer), "layer " << layer << " is an ARL² hybrid layer; it needs the arl2 memory policy");
      AttentionParams self = packed_attention_params(q_, kc_, vc_, attn_, n, n, heads, hd);
      FASTAR_CUDA_CHECK(attention_forward_bf16(self, st));
    }
    mark("self-attention");
    linear_bf16(*gemm_, static_cast<bf16*>(y_), static_cast<const bf16*>(attn_), b.self_o.weight.data<bf16>(),
                b.self_o.bias.data<bf16>(), n, d, d, LinearEpilogue::Bias, st);
    mark("self o GEMM");
    gated_residual_add(x_, static_cast<const bf16*>(y_), mod_ + 2 * d, ms, grid_f, tpf, d, st);
    mark("residual adds");

    // Cross-attention to the prompt (cached K/V, no RoPE, no gate). Its input is norm3(x) with
    // cross_attn_norm, x itself (rounded to bf16 for the GEMM) without (Wan's nn.Identity).
    if (c.cross_attn_norm)
      layernorm(static_cast<bf16*>(h_), x_, f32(b.cross_norm_weight), f32(b.cross_norm_bias), n, d, c.eps, st);
    else
      convert_f32_to_bf16(static_cast<uint16_t*>(h_), x_, n * d, st);
    mark("norms + modulation");
    linear_bf16(*gemm_, static_cast<bf16*>(q_), static_cast<const bf16*>(h_), b.cross_q.weight.data<bf16>(),
                b.cross_q.bias.data<bf16>(), n, d, d, LinearEpilogue::Bias, st);
    if (c.qk_norm)
      rmsnorm_rope(static_cast<bf16*>(q_), d, f32(b.cross_norm_q), grid_f, grid_h, grid_w, fs, heads, hd, c.eps, false, st);
    mark("cross q GEMM + norm");
    const void* prompt_k = cross_k_[static_cast<size_t>(layer)].raw_data();
    const void* prompt_v = cross_v_[static_cast<size_t>(layer)].raw_data();
    if (cross_policy_) {  // AnnCA: per frame, only the prompt rows near some query
      cross_policy_->attend(layer, static_cast<const bf16*>(q_), static_cast<const bf16*>(prompt_k),
                            static_cast<const bf16*>(prompt_v), prompt_rows_, static_cast<bf16*>(attn_), st);
    } else {
      AttentionParams cross = packed_attention_params(q_, prompt_k, prompt_v, attn_, n, prompt_rows_, heads, hd);
      FASTAR_CUDA_CHECK(attention_forward_bf16(cross, st));
    }
    mark("cross-attention");
    linear_bf16(*gemm_, static_cast<bf16*>(y_), static_cast<const bf16*>(attn_), b.cross_o.weight.data<bf16>(),
                b.cross_o.bias.data<bf16>(), n, d, d, LinearEpilogue::Bias, st);
    mark("cross o GEMM");
    gated_residual_add(x_, static_cast<const bf16*>(y_), nullptr, 0, grid_f, tpf, d, st);
    mark("residual adds");

    // FFN with GELU(tanh) fused into the first GEMM's epilogue.
    adaln_modulate(static_cast<bf16*>(h_), x_, mod_ + 3 * d, mod_ + 4 * d, ms, grid_f, tpf, d, c.eps, st);
    mark("norms + modulation");
    linear_bf16(*gemm_, static_cast<bf16*>(ffn_), static_cast<const bf16*>(h_), b.ffn_in.weight.data<bf16>(),
                b.ffn_in.bias.data<bf16>(), n, d, c.ffn_dim, LinearEpilogue::BiasGeluTanh, st);
    mark("FFN in GEMM + GELU");
    linear_bf16(*gemm_, static_cast<bf16*>(y_), static_cast<const bf16*>(ffn_), b.ffn_out.weight.data<bf16>(),
                b.ffn_out.bias.data<bf16>(), n, c.ffn_dim, d, LinearEpilogue::Bias, st);
    mark("FFN out GEMM");
    gated_residual_add(x_, static_cast<const bf16*>(y_), mod_ + 5 * d, ms, grid_f, tpf, d, st);
    mark("residual adds");
  }

  adaln_modulate(static_cast<bf16*>(h_), x_, head_mod_, head_mod_ + grid_f * d, d, grid_f, tpf, d, c.eps, st);
  linear_bf16(*gemm_, static_cast<bf16*>(patches_), static_cast<const bf16*>(h_), w_->head.weight.data<bf16>(),
              w_->head.bias.data<bf16>(), n, d, c.patch_features_out(), LinearEpilogue::Bias, st);
  unpatchify(v_out, static_cast<const bf16*>(patches_), c.out_dim, frames, height, width, c.patch_t, c.patch_h, c.patch_w, st);
  mark("head");
}

}  // namespace fastar::cuda
