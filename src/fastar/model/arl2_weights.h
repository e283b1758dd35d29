// ARL² checkpoint specifics (docs/arl2.md): the LoRA deltas its release trains on hybrid layers,
// merged into plain weights at load time, and the names under which LoRA-wrapped linears keep their
// base weights. The hybrid tensors themselves are registered in wan_weights.cpp with all others.
//
// ARL² (lky-ang/ARL2) names, original Wan layout, per block N:
//   self_attn.lora_{q,k,v}_A [dim, r], self_attn.lora_{q,k,v}_B [r, dim]   GDN-path LoRA on q/k/v
//   ffn.{0,2}.lora_A [in, r], ffn.{0,2}.lora_B [r, out]                   FFN LoRA (LoRALinear)
//   ffn.{0,2}.linear.{weight,bias}                                        the wrapped base linear
// A delta is scale · (A·B)ᵀ with scale = config.hybrid_lora_alpha / r.
#pragma once

#include <set>
#include <string>

#include "fastar/core/safetensors.h"
#include "fastar/model/wan_config.h"
#include "fastar/model/wan_weights.h"

namespace fastar {

// `name` itself when the checkpoint has it; else, for a LoRA-wrapped FFN linear
// (blocks.N.ffn.K.weight/bias), the wrapped name blocks.N.ffn.K.linear.weight/bias when present.
std::string arl2_base_name(const Checkpoint& checkpoint, const std::string& name);

// Merges every ARL² LoRA pair found in the checkpoint into `weights` (GDN q/k/v → hybrid.lora_q/k/v,
// FFN → ffn_in/ffn_out) and adds their names to *consumed. A pair that is incomplete, misshapen or
// on a layer that is not hybrid (GDN LoRA) is a fastar::Error.
void merge_arl2_lora(const Checkpoint& checkpoint, const WanConfig& config, WanWeights& weights,
                     std::set<std::string>* consumed);

// weight[out, in] += scale · (a[in, r] · b[r, out])ᵀ, in place on fp32 tensors.
void add_lora_delta(Tensor& weight, const Tensor& a, const Tensor& b, float scale);

}  // namespace fastar
