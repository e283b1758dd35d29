#include "fastar/model/arl2_weights.h"

#include "fastar/core/error.h"

namespace fastar {

namespace {

std::string block_prefix(int64_t layer) { return "blocks." + std::to_string(layer) + "."; }

// Loads one LoRA pair (A [in, r], B [r, out]) if either half is present; returns false if neither is.
bool load_lora_pair(const Checkpoint& checkpoint, const std::string& a_name, const std::string& b_name, int64_t in,
                    int64_t out, Tensor* a, Tensor* b, std::set<std::string>* consumed) {
  const TensorEntry* a_entry = checkpoint.find(a_name);
  const TensorEntry* b_entry = checkpoint.find(b_name);
  if (!a_entry && !b_entry) return false;
  FASTAR_CHECK(a_entry && b_entry, checkpoint.path() << ": LoRA tensor '" << (a_entry ? b_name : a_name)
                                                     << "' is missing while '" << (a_entry ? a_name : b_name)
                                                     << "' is present; an ARL² checkpoint has both halves of each pair");
  FASTAR_CHECK(a_entry->shape.size() == 2 && b_entry->shape.size() == 2 && a_entry->shape[0] == in &&
                   b_entry->shape[1] == out && a_entry->shape[1] == b_entry->shape[0] && a_entry->shape[1] > 0,
               checkpoint.path() << ": LoRA pair '" << a_name << "' " << shape_to_string(a_entry->shape) << " / '" << b_name
                                 << "' " << shape_to_string(b_entry->shape) << " does not fit a [" << in << " -> " << out
                                 << "] linear; expected A [" << in << ", r] and B [r, " << out << "]");
  FASTAR_CHECK(dtype_is_float(a_entry->dtype) && dtype_is_float(b_entry->dtype),
               checkpoint.path() << ": LoRA pair '" << a_name << "' must be a float dtype");
  *a = checkpoint.tensor(a_name).to_f32();
  *b = checkpoint.tensor(b_name).to_f32();
  consumed->insert(a_name);
  consumed->insert(b_name);
  return true;
}

}  // namespace

std::string arl2_base_name(const Checkpoint& checkpoint, const std::string& name) {
  if (checkpoint.find(name)) return name;
  for (const char* layer : {".ffn.0.", ".ffn.2."}) {
    const size_t at = name.find(layer);
    if (at == std::string::npos || name.rfind("blocks.", 0) != 0) continue;
    const std::string wrapped = name.substr(0, at + 7) + "linear." + name.substr(at + 7);
    if (checkpoint.find(wrapped)) return wrapped;
  }
  return name;
}

void add_lora_delta(Tensor& weight, const Tensor& a, const Tensor& b, float scale) {
  const int64_t out = weight.size(0), in = weight.size(1), rank = a.size(1);
  FASTAR_ASSERT(a.size(0) == in && b.size(0) == rank && b.size(1) == out, "LoRA shapes checked by the loader");
  Tensor merged = weight.clone();
  float* w = merged.data<float>();
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      double delta = 0.0;
      for (int64_t r = 0; r < rank; ++r) delta += static_cast<double>(pa[i * rank + r]) * pb[r * out + o];
      w[o * in + i] += static_cast<float>(scale * delta);
    }
  weight = merged;  // never writes through storage shared with another tensor
}

void merge_arl2_lora(const Checkpoint& checkpoint, const WanConfig& config, WanWeights& weights,
                     std::set<std::string>* consumed) {
  const int64_t d = config.dim;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    WanBlockWeights& block = weights.blocks[static_cast<size_t>(layer)];
    const std::string prefix = block_prefix(layer);
    FASTAR_CHECK(config.is_hybrid(layer) || !(checkpoint.find(prefix + "self_attn.A_log") || checkpoint.find(prefix + "attn1.A_log")),
                 checkpoint.path() << ": layer " << layer << " has ARL² hybrid-attention tensors (A_log, phi_*, ...) but "
                                      "is not in the config's hybrid_layers; list every hybrid layer in config.json");
    Tensor a, b;
    // FFN LoRA (LoRALinear around ffn.0 and ffn.2), on hybrid layers or on all layers.
    struct Ffn {
      const char* name;
      LinearWeights* linear;
      int64_t in, out;
    };
    for (const Ffn& ffn : {Ffn{"ffn.0.", &block.ffn_in, d, config.ffn_dim}, Ffn{"ffn.2.", &block.ffn_out, config.ffn_dim, d}})
      if (load_lora_pair(checkpoint, prefix + ffn.name + "lora_A", prefix + ffn.name + "lora_B", ffn.in, ffn.out, &a, &b, consumed))
        add_lora_delta(ffn.linear->weight, a, b, config.hybrid_lora_alpha / static_cast<float>(a.size(1)));
    // GDN-path LoRA on q/k/v: a separate merged projection for the memory branch.
    struct Gdn {
      const char* name;
      const LinearWeights* base;
      LinearWeights* merged;
    };
    HybridAttentionWeights& hy = block.hybrid;
    for (const Gdn& gdn : {Gdn{"q", &block.self_q, &hy.lora_q}, Gdn{"k", &block.self_k, &hy.lora_k},
                           Gdn{"v", &block.self_v, &hy.lora_v}}) {
      const std::string a_name = prefix + "self_attn.lora_" + gdn.name + "_A", b_name = prefix + "self_attn.lora_" + gdn.name + "_B";
      if (!load_lora_pair(checkpoint, a_name, b_name, d, d, &a, &b, consumed)) continue;
      FASTAR_CHECK(config.is_hybrid(layer), checkpoint.path() << ": '" << a_name << "' is a hybrid-layer tensor but layer "
                                                              << layer << " is not in the config's hybrid_layers; add it");
      gdn.merged->weight = gdn.base->weight;
      gdn.merged->bias = gdn.base->bias;
      add_lora_delta(gdn.merged->weight, a, b, config.hybrid_lora_alpha / static_cast<float>(a.size(1)));
    }
    const int merged = hy.lora_q.weight.defined() + hy.lora_k.weight.defined() + hy.lora_v.weight.defined();
    FASTAR_CHECK(merged == 0 || merged == 3, checkpoint.path() << ": layer " << layer << " has GDN LoRA for only " << merged
                                                               << " of q/k/v; an ARL² checkpoint has all three");
  }
}

}  // namespace fastar
