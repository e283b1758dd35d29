// Typed weights of the Wan DiT, and the one table that maps them to checkpoint names.
//
// Every tensor is registered once (wan_weights.cpp) with its original Wan name, its diffusers name
// and its expected shape; loading checks all three and converts to fp32 for the CPU backend.
#pragma once

#include <string>
#include <vector>

#include "fastar/core/safetensors.h"
#include "fastar/core/tensor.h"
#include "fastar/model/wan_config.h"

namespace fastar {

// nn.Linear: weight [out, in], bias [out] (bias may be undefined).
struct LinearWeights {
  Tensor weight;
  Tensor bias;
  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }
};

// ARL²'s hybrid self-attention (docs/arl2.md), only for the layers in config.hybrid_layers. The
// block's self_q/k/v/o and norms stay the softmax branch's (and the memory branch's without LoRA).
struct HybridAttentionWeights {
  Tensor phi_q, phi_k, phi_v;          // [heads, head_dim(out), head_dim(in)]: per-head maps (Conv1d k=1, groups=heads)
  LinearWeights a_proj, b_proj;        // dim -> heads, no bias: decay and β logits
  LinearWeights gate_proj;             // dim -> heads, no bias: the memory branch's sigmoid gate
  Tensor A_log, dt_bias;               // [heads]
  // The memory branch's q/k/v projections with the checkpoint's GDN LoRA merged (W + α/r·(A·B)ᵀ,
  // the base bias); undefined when the checkpoint has no GDN LoRA (then the branch uses self_q/k/v).
  LinearWeights lora_q, lora_k, lora_v;
  bool defined() const { return A_log.defined(); }
};

struct WanBlockWeights {
  Tensor modulation;                         // [1, 6, dim]: shift/scale/gate for attention, shift/scale/gate for FFN
  LinearWeights self_q, self_k, self_v, self_o;
  Tensor self_norm_q, self_norm_k;           // [dim] (qk_norm)
  Tensor cross_norm_weight, cross_norm_bias; // [dim] (cross_attn_norm; Wan "norm3", diffusers "norm2")
  LinearWeights cross_q, cross_k, cross_v, cross_o;
  Tensor cross_norm_q, cross_norm_k;         // [dim] (qk_norm)
  LinearWeights ffn_in, ffn_out;             // dim -> ffn_dim -> dim (ARL² FFN LoRA merged in)
  HybridAttentionWeights hybrid;             // ARL² hybrid layers only
};

struct WanWeights {
  Tensor patch_weight;  // [dim, in_dim · pt · ph · pw] (Conv3d weight flattened, channel-major)
  Tensor patch_bias;    // [dim]
  LinearWeights text_in, text_out;        // text_dim -> dim -> dim
  LinearWeights time_in, time_out;        // freq_dim -> dim -> dim
  LinearWeights time_projection;          // dim -> 6·dim
  LinearWeights action_in, action_out;    // action_dim -> dim -> dim (fastar extension; action_dim > 0 only)
  std::vector<WanBlockWeights> blocks;
  Tensor head_modulation;                 // [1, 2, dim]: shift, scale
  LinearWeights head;                     // dim -> pt·ph·pw·out_dim
};

enum class WanNameLayout { Original, Diffusers };

// Which naming a checkpoint uses; throws if it is neither (not a Wan DiT).
WanNameLayout detect_wan_layout(const Checkpoint& checkpoint);

// Loads and checks every tensor (names, shapes, float dtypes); converts to fp32. Missing,
// misshapen or unexpected tensors are a fastar::Error naming the file, the tensor and the fix.
// Everything is checked against the checkpoint's header before anything is allocated from the
// config: first the number of transformer blocks against num_layers, then every name, dtype and
// shape, and only then is any tensor read.
WanWeights load_wan_weights(const Checkpoint& checkpoint, const WanConfig& config);

// Checks that the checkpoint's layers named `prefix` + "N." (e.g. "blocks.") are numbered exactly
// 0 … expected − 1; otherwise a fastar::Error saying how many the checkpoint holds (`what`, e.g.
// "transformer blocks") and that `config_field` (e.g. "num_layers") does not match. Names whose N is
// not a plain decimal number are left to the unexpected-tensor check of the loader.
void check_checkpoint_layer_count(const Checkpoint& checkpoint, const std::string& prefix, int64_t expected,
                                  const std::string& what, const std::string& config_field);

// The number of parameters (elements of every registered tensor) a valid config implies; a
// fastar::Error if the config is invalid.
int64_t wan_parameter_count(const WanConfig& config);

// Every checkpoint name (in `layout`) the config implies, in registration order: for tools/tests.
std::vector<std::string> wan_tensor_names(const WanConfig& config, WanNameLayout layout);

// Deterministic random weights for a config (tests, benchmarks, `fastar generate --random-weights`).
// Refuses (fastar::Error) before allocating anything when the config is invalid or its fp32
// weights would not fit in this machine's physical memory.
WanWeights random_wan_weights(const WanConfig& config, uint64_t seed);
// Writes weights in the given layout (for tools and tests).
std::vector<std::pair<std::string, Tensor>> wan_weights_to_named(const WanWeights& weights, const WanConfig& config,
                                                                  WanNameLayout layout);

}  // namespace fastar
