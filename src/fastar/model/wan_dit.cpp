#include "fastar/model/wan_dit.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/kernels/cpu/attention.h"
#include "fastar/kernels/cpu/ops.h"

namespace fastar {

namespace fs = std::filesystem;

namespace {

// out[rows, out] = in[rows, in] · Wᵀ + b
void linear(const LinearWeights& lin, const float* in, int64_t rows, float* out) {
  cpu::linear_forward(out, in, lin.weight.data<float>(), lin.bias.defined() ? lin.bias.data<float>() : nullptr, rows,
                      lin.in_features(), lin.out_features());
}

std::vector<float> buffer(int64_t count) { return std::vector<float>(static_cast<size_t>(count)); }

}  // namespace

WanModel::WanModel(WanConfig config, WanWeights weights) : config_(std::move(config)), weights_(std::move(weights)) {}

ModelFiles locate_model_files(const std::string& path) {
  FASTAR_CHECK(fs::exists(path), path << ": no such model file or folder");
  ModelFiles files;
  if (fs::is_directory(path)) {
    files.weights = path;  // Checkpoint::open picks the safetensors (single or index) inside
    for (const char* name : {"config.json", "transformer_config.json"}) {
      if (fs::exists(fs::path(path) / name)) {
        files.config = (fs::path(path) / name).string();
        break;
      }
    }
    FASTAR_CHECK(!files.config.empty(), path << ": model folder has no config.json; fastar reads the DiT "
                                                "configuration from Wan's or diffusers' config.json beside the weights");
  } else {
    files.weights = path;
    const fs::path beside = fs::path(path).parent_path() / "config.json";
    FASTAR_CHECK(fs::exists(beside), path << ": no config.json beside the weights (looked for " << beside.string()
                                          << "); put the model's config.json there");
    files.config = beside.string();
  }
  return files;
}

WanModel WanModel::load(const std::string& path) {
  const ModelFiles files = locate_model_files(path);
  WanConfig config = WanConfig::load(files.config);
  Checkpoint checkpoint = Checkpoint::open(files.weights);
  WanWeights weights = load_wan_weights(checkpoint, config);
  return WanModel(std::move(config), std::move(weights));
}

namespace {

// A NaN or an infinity in a prompt embedding would turn every frame into NaN without a word.
void check_context_finite(const Tensor& context_f32, const std::string& source) {
  const float* values = context_f32.data<float>();
  const int64_t columns = context_f32.size(1);
  for (int64_t i = 0; i < context_f32.numel(); ++i) {
    FASTAR_CHECK(std::isfinite(values[i]), source << ": prompt embedding value at row " << i / columns << ", column "
                                                  << i % columns << " is not finite (" << values[i]
                                                  << "); re-encode the prompt or re-export the embedding");
  }
}

}  // namespace

Tensor pad_prompt_context(const Tensor& context, const WanConfig& config, const std::string& source) {
  FASTAR_CHECK(context.dim() == 2 && context.size(1) == config.text_dim,
               source << ": prompt embedding has shape " << shape_to_string(context.shape()) << "; this model needs [rows, "
                      << config.text_dim << "] with rows <= " << config.text_len);
  FASTAR_CHECK(context.size(0) <= config.text_len, source << ": prompt embedding has " << context.size(0)
                                                          << " rows, more than the model's text_len " << config.text_len);
  FASTAR_CHECK(dtype_is_float(context.dtype()), source << ": prompt embedding has dtype " << dtype_name(context.dtype())
                                                        << "; it must be F32, BF16 or F16");
  Tensor f32 = context.is_contiguous() ? context.to_f32() : context.clone().to_f32();
  check_context_finite(f32, source);
  Tensor padded = Tensor::zeros({config.text_len, config.text_dim});
  std::memcpy(padded.data<float>(), f32.data<float>(), static_cast<size_t>(f32.nbytes()));
  return padded;
}

WanPrompt WanModel::prepare_prompt(const Tensor& context) const {
  const WanConfig& c = config_;
  FASTAR_CHECK(context.dim() == 2 && context.size(1) == c.text_dim,
               "prompt embedding has shape " << shape_to_string(context.shape()) << "; this model needs [rows, "
                                             << c.text_dim << "]");
  const int64_t rows = context.size(0);
  Tensor ctx = context.is_contiguous() ? context.to_f32() : context.clone().to_f32();
  check_context_finite(ctx, "prompt");
  // Text MLP: Linear → GELU(tanh) → Linear.
  std::vector<float> hidden = buffer(rows * c.dim), embedded = buffer(rows * c.dim);
  linear(weights_.text_in, ctx.data<float>(), rows, hidden.data());
  cpu::gelu_tanh_forward(hidden.data(), rows * c.dim);
  linear(weights_.text_out, hidden.data(), rows, embedded.data());

  WanPrompt prompt;
  prompt.rows = rows;
  static std::atomic<uint64_t> next_prompt_id{1};
  prompt.id = next_prompt_id++;
  const float* context_rows = ctx.data<float>();
  for (int64_t r = rows; r > 0 && prompt.valid_rows == 0; --r)
    for (int64_t j = 0; j < c.text_dim; ++j)
      if (context_rows[(r - 1) * c.text_dim + j] != 0.0f) {
        prompt.valid_rows = r;
        break;
      }
  for (const WanBlockWeights& b : weights_.blocks) {
    Tensor k = Tensor::zeros({rows, c.dim}), v = Tensor::zeros({rows, c.dim});
    linear(b.cross_k, embedded.data(), rows, k.data<float>());
    linear(b.cross_v, embedded.data(), rows, v.data<float>());
    if (c.qk_norm) cpu::rmsnorm_forward(k.data<float>(), k.data<float>(), b.cross_norm_k.data<float>(), rows, c.dim, c.eps);
    prompt.cross_k.push_back(k);
    prompt.cross_v.push_back(v);
  }
  return prompt;
}

void WanModel::time_embedding(const std::vector<float>& t_frames, const Tensor* actions, std::vector<float>* e_out,
                              std::vector<float>* e0_out) const {
  const WanConfig& c = config_;
  const int64_t grid_f = static_cast<int64_t>(t_frames.size()), d = c.dim;
  std::vector<float> sinusoid = buffer(grid_f * c.freq_dim), hidden = buffer(grid_f * d), e = buffer(grid_f * d);
  cpu::timestep_embedding(sinusoid.data(), t_frames.data(), grid_f, c.freq_dim);
  linear(weights_.time_in, sinusoid.data(), grid_f, hidden.data());
  cpu::silu_forward(hidden.data(), grid_f * d);
  linear(weights_.time_out, hidden.data(), grid_f, e.data());
  if (c.action_dim > 0) {
    FASTAR_CHECK(actions && actions->dim() == 2 && actions->size(0) == grid_f * c.patch_t && actions->size(1) == c.action_dim,
                 "this model takes per-frame actions [" << grid_f * c.patch_t << ", " << c.action_dim << "]");
    Tensor act = actions->to_f32();
    std::vector<float> act_frames = buffer(grid_f * c.action_dim), act_hidden = buffer(grid_f * d), act_e = buffer(grid_f * d);
    for (int64_t f = 0; f < grid_f; ++f)
      std::memcpy(&act_frames[static_cast<size_t>(f * c.action_dim)], act.data<float>() + f * c.patch_t * c.action_dim,
                  static_cast<size_t>(c.action_dim) * 4);
    linear(weights_.action_in, act_frames.data(), grid_f, act_hidden.data());
    cpu::silu_forward(act_hidden.data(), grid_f * d);
    linear(weights_.action_out, act_hidden.data(), grid_f, act_e.data());
    for (int64_t i = 0; i < grid_f * d; ++i) e[static_cast<size_t>(i)] += act_e[static_cast<size_t>(i)];
  }
  std::vector<float> e_act = e, e0 = buffer(grid_f * 6 * d);
  cpu::silu_forward(e_act.data(), grid_f * d);
  linear(weights_.time_projection, e_act.data(), grid_f, e0.data());
  *e_out = std::move(e);
  *e0_out = std::move(e0);
}

Tensor WanModel::forward(const WanForwardArgs& args) const {
  const WanConfig& c = config_;
  FASTAR_ASSERT(args.latent && args.timesteps && args.prompt, "forward: latent, timesteps and prompt are required");
  const Tensor& latent = *args.latent;
  FASTAR_CHECK(latent.dim() == 4 && latent.size(0) == c.in_dim,
               "latent has shape " << shape_to_string(latent.shape()) << "; the model expects [" << c.in_dim
                                   << ", frames, height, width]");
  const int64_t frames = latent.size(1), height = latent.size(2), width = latent.size(3);
  FASTAR_CHECK(frames % c.patch_t == 0 && height % c.patch_h == 0 && width % c.patch_w == 0,
               "latent [" << frames << ", " << height << ", " << width << "] (frames, height, width) is not divisible by the patch size ("
                          << c.patch_t << ", " << c.patch_h << ", " << c.patch_w << ")");
  FASTAR_CHECK(static_cast<int64_t>(args.timesteps->size()) == frames,
               "got " << args.timesteps->size() << " timesteps for " << frames << " frames; give one per latent frame");
  FASTAR_CHECK(args.frame_start % c.patch_t == 0, "frame_start must be a multiple of the temporal patch size");
  FASTAR_CHECK(static_cast<int64_t>(args.prompt->cross_k.size()) == c.num_layers, "prompt was prepared for another model");

  const int64_t grid_f = frames / c.patch_t, grid_h = height / c.patch_h, grid_w = width / c.patch_w;
  const int64_t tokens_per_frame = grid_h * grid_w;
  const int64_t n = grid_f * tokens_per_frame;  // tokens in this call
  const int64_t d = c.dim, heads = c.num_heads, hd = c.head_dim();
  const int64_t frame_start = args.frame_start / c.patch_t;
  const int64_t text_rows = args.prompt->rows;

  // 1. Patch embedding: [n, in·pt·ph·pw] · Wᵀ.                                          x: [n, d]
  Tensor lat = latent.is_contiguous() ? latent.to_f32() : latent.clone().to_f32();
  std::vector<float> patches = buffer(n * c.patch_features_in()), x = buffer(n * d);
  cpu::patchify(patches.data(), lat.data<float>(), c.in_dim, frames, height, width, c.patch_t, c.patch_h, c.patch_w);
  cpu::linear_forward(x.data(), patches.data(), weights_.patch_weight.data<float>(), weights_.patch_bias.data<float>(), n,
                      c.patch_features_in(), d);

  // 2. Time embedding per token-frame.                                   e: [grid_f, d], e0: [grid_f, 6d]
  std::vector<float> t_frames(static_cast<size_t>(grid_f));
  for (int64_t f = 0; f < grid_f; ++f) t_frames[static_cast<size_t>(f)] = (*args.timesteps)[static_cast<size_t>(f * c.patch_t)];
  std::vector<float> e, e0;
  time_embedding(t_frames, args.actions, &e, &e0);

  // Working buffers, reused by every block.
  std::vector<float> h = buffer(n * d), q = buffer(n * d), k = buffer(n * d), v = buffer(n * d), attn = buffer(n * d),
                     y = buffer(n * d), ffn = buffer(n * c.ffn_dim), mod = buffer(grid_f * 6 * d);
  std::vector<float> q_normed, k_normed;  // pre-RoPE copies, only for policies that want layer inputs

  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    const WanBlockWeights& b = weights_.blocks[static_cast<size_t>(layer)];
    // Per-frame modulation m = table + e0, [grid_f, 6, d]: shift/scale/gate (attn), shift/scale/gate (FFN).
    const float* table = b.modulation.data<float>();
    for (int64_t f = 0; f < grid_f; ++f)
      for (int64_t i = 0; i < 6 * d; ++i) mod[static_cast<size_t>(f * 6 * d + i)] = table[i] + e0[static_cast<size_t>(f * 6 * d + i)];
    const int64_t ms = 6 * d;  // row stride of one frame's modulation
    const float* m = mod.data();

    // Self-attention over [memory + this call].
    cpu::adaln_modulate_forward(h.data(), x.data(), m + 0 * d, m + 1 * d, ms, grid_f, tokens_per_frame, d, c.eps);
    linear(b.self_q, h.data(), n, q.data());
    linear(b.self_k, h.data(), n, k.data());
    linear(b.self_v, h.data(), n, v.data());
    if (c.qk_norm) {
      cpu::rmsnorm_forward(q.data(), q.data(), b.self_norm_q.data<float>(), n, d, c.eps);
      cpu::rmsnorm_forward(k.data(), k.data(), b.self_norm_k.data<float>(), n, d, c.eps);
    }
    // ARL² hybrid layers (docs/arl2.md) also need x and the pre-RoPE q/k.
    const bool layer_inputs = args.memory && args.memory->wants_layer_inputs(layer);
    FASTAR_CHECK(!c.is_hybrid(layer) || layer_inputs,
                 "layer " << layer << " is an ARL² hybrid layer (config 'hybrid_layers'); run this model with the arl2 "
                                      "memory policy (fastar generate --policy arl2)");
    if (layer_inputs) {
      q_normed.assign(q.begin(), q.end());
      k_normed.assign(k.begin(), k.end());
    }
    cpu::rope_3d_forward(q.data(), d, grid_f, grid_h, grid_w, frame_start, heads, hd);
    cpu::rope_3d_forward(k.data(), d, grid_f, grid_h, grid_w, frame_start, heads, hd);
    if (args.memory) {
      MemoryCall call{frame_start, grid_f, tokens_per_frame, args.commit};
      call.timesteps = t_frames.data();
      if (layer_inputs) {
        call.layer_input = h.data();
        call.q_normed = q_normed.data();
        call.k_normed = k_normed.data();
        call.grid_height = grid_h;
        call.grid_width = grid_w;
      }
      args.memory->attend(layer, call, q.data(), k.data(), v.data(), attn.data());
    } else {
      AttentionParams p = packed_attention_params(q.data(), k.data(), v.data(), attn.data(), n, n, heads, hd);
      p.causal_block = args.causal_chunk_frames > 0 ? (args.causal_chunk_frames / c.patch_t) * tokens_per_frame : 0;
      cpu::attention_forward(p);
    }
    linear(b.self_o, attn.data(), n, y.data());
    cpu::gated_residual_add(x.data(), y.data(), m + 2 * d, ms, grid_f, tokens_per_frame, d);

    // Cross-attention to the prompt: no modulation, no gate, no RoPE, no mask. Its input is the
    // affine LayerNorm norm3 of x with cross_attn_norm, x itself without (Wan's nn.Identity).
    const float* cross_input = x.data();
    if (c.cross_attn_norm) {
      cpu::layernorm_forward(h.data(), x.data(), b.cross_norm_weight.data<float>(), b.cross_norm_bias.data<float>(), n,
                             d, c.eps);
      cross_input = h.data();
    }
    linear(b.cross_q, cross_input, n, q.data());
    if (c.qk_norm) cpu::rmsnorm_forward(q.data(), q.data(), b.cross_norm_q.data<float>(), n, d, c.eps);
    const float* prompt_k = args.prompt->cross_k[static_cast<size_t>(layer)].data<float>();
    const float* prompt_v = args.prompt->cross_v[static_cast<size_t>(layer)].data<float>();
    if (args.cross_attention) {
      const CrossAttentionCall call{layer, frame_start, grid_f, tokens_per_frame, t_frames.data(), heads, hd,
                                    args.prompt->id, text_rows, args.prompt->valid_rows};
      args.cross_attention->attend(call, q.data(), prompt_k, prompt_v, attn.data());
    } else {
      cpu::attention_forward(packed_attention_params(q.data(), prompt_k, prompt_v, attn.data(), n, text_rows, heads, hd));
    }
    linear(b.cross_o, attn.data(), n, y.data());
    cpu::gated_residual_add(x.data(), y.data(), nullptr, 0, grid_f, tokens_per_frame, d);

    // FFN: Linear → GELU(tanh) → Linear, modulated and gated per frame.
    cpu::adaln_modulate_forward(h.data(), x.data(), m + 3 * d, m + 4 * d, ms, grid_f, tokens_per_frame, d, c.eps);
    linear(b.ffn_in, h.data(), n, ffn.data());
    cpu::gelu_tanh_forward(ffn.data(), n * c.ffn_dim);
    linear(b.ffn_out, ffn.data(), n, y.data());
    cpu::gated_residual_add(x.data(), y.data(), m + 5 * d, ms, grid_f, tokens_per_frame, d);
  }

  // Head: (shift, scale) = head table + e (not e0), then Linear, then unpatchify.
  std::vector<float> head_mod = buffer(grid_f * 2 * d);
  const float* head_table = weights_.head_modulation.data<float>();
  for (int64_t f = 0; f < grid_f; ++f)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < d; ++i)
        head_mod[static_cast<size_t>((f * 2 + j) * d + i)] = head_table[j * d + i] + e[static_cast<size_t>(f * d + i)];
  cpu::adaln_modulate_forward(h.data(), x.data(), head_mod.data(), head_mod.data() + d, 2 * d, grid_f, tokens_per_frame,
                              d, c.eps);
  std::vector<float> out_tokens = buffer(n * c.patch_features_out());
  linear(weights_.head, h.data(), n, out_tokens.data());
  Tensor out = Tensor::zeros({c.out_dim, frames, height, width});
  cpu::unpatchify(out.data<float>(), out_tokens.data(), c.out_dim, frames, height, width, c.patch_t, c.patch_h, c.patch_w);
  return out;
}

}  // namespace fastar
