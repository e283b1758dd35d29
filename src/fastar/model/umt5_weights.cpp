#include "fastar/model/umt5_weights.h"

#include "fastar/core/error.h"

namespace fastar {

namespace {

// One registered tensor: its names under both namings, its shape and where it goes.
struct Umt5Slot {
  std::string hf_name, wan_name;
  Shape shape;
  Tensor* target;
  bool small;  // converted to fp32 at load (norms, bias tables)
};

std::vector<Umt5Slot> umt5_slots(const Umt5Config& c, Umt5Weights& w) {
  std::vector<Umt5Slot> slots;
  const int64_t d = c.d_model, inner = c.inner_dim();
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t n = 0; n < c.num_layers; ++n) {
    Umt5LayerWeights& l = w.layers[static_cast<size_t>(n)];
    const std::string hf = "encoder.block." + std::to_string(n) + ".layer.";
    const std::string wan = "blocks." + std::to_string(n) + ".";
    slots.push_back({hf + "0.layer_norm.weight", wan + "norm1.weight", {d}, &l.attention_norm, true});
    slots.push_back({hf + "0.SelfAttention.q.weight", wan + "attn.q.weight", {inner, d}, &l.q, false});
    slots.push_back({hf + "0.SelfAttention.k.weight", wan + "attn.k.weight", {inner, d}, &l.k, false});
    slots.push_back({hf + "0.SelfAttention.v.weight", wan + "attn.v.weight", {inner, d}, &l.v, false});
    slots.push_back({hf + "0.SelfAttention.o.weight", wan + "attn.o.weight", {d, inner}, &l.o, false});
    slots.push_back({hf + "0.SelfAttention.relative_attention_bias.weight", wan + "pos_embedding.embedding.weight",
                     {c.num_buckets, c.num_heads}, &l.relative_bias, true});
    slots.push_back({hf + "1.layer_norm.weight", wan + "norm2.weight", {d}, &l.ffn_norm, true});
    slots.push_back({hf + "1.DenseReluDense.wi_0.weight", wan + "ffn.gate.0.weight", {c.d_ff, d}, &l.gate, false});
    slots.push_back({hf + "1.DenseReluDense.wi_1.weight", wan + "ffn.fc1.weight", {c.d_ff, d}, &l.up, false});
    slots.push_back({hf + "1.DenseReluDense.wo.weight", wan + "ffn.fc2.weight", {d, c.d_ff}, &l.down, false});
  }
  slots.push_back({"encoder.final_layer_norm.weight", "norm.weight", {d}, &w.final_norm, true});
  return slots;
}

}  // namespace

Umt5Naming detect_umt5_naming(const Checkpoint& checkpoint) {
  if (checkpoint.find("token_embedding.weight") || checkpoint.find("blocks.0.attn.q.weight")) return Umt5Naming::Wan;
  if (checkpoint.find("shared.weight") || checkpoint.find("encoder.embed_tokens.weight") ||
      checkpoint.find("encoder.block.0.layer.0.SelfAttention.q.weight"))
    return Umt5Naming::HuggingFace;
  FASTAR_FAIL(checkpoint.path() << ": no umT5 encoder tensors (looked for 'shared.weight', "
                                   "'encoder.embed_tokens.weight' (Hugging Face names) and 'token_embedding.weight' (Wan "
                                   "names)); point at the umT5 text encoder weights (diffusers `text_encoder/`, or Wan's "
                                   "models_t5_umt5-xxl-enc-bf16 converted to safetensors)");
}

std::string umt5_embedding_name(const Checkpoint& checkpoint, Umt5Naming naming) {
  if (naming == Umt5Naming::Wan) return "token_embedding.weight";
  if (checkpoint.find("shared.weight")) return "shared.weight";
  if (checkpoint.find("encoder.embed_tokens.weight")) return "encoder.embed_tokens.weight";
  FASTAR_FAIL(checkpoint.path() << ": missing the token embedding ('shared.weight' or 'encoder.embed_tokens.weight'); "
                                   "the umT5 checkpoint is incomplete, re-download or re-convert it");
}

Umt5Weights load_umt5_weights(const Checkpoint& checkpoint, const Umt5Config& config) {
  const Umt5Naming naming = detect_umt5_naming(checkpoint);
  Umt5Weights weights;
  std::vector<Umt5Slot> slots = umt5_slots(config, weights);
  slots.push_back({umt5_embedding_name(checkpoint, naming), "token_embedding.weight", {config.vocab_size, config.d_model},
                   &weights.token_embedding, false});
  for (const Umt5Slot& slot : slots) {
    const std::string& name = naming == Umt5Naming::Wan ? slot.wan_name : slot.hf_name;
    const TensorEntry* entry = checkpoint.find(name);
    FASTAR_CHECK(entry, checkpoint.path() << ": missing tensor '" << name << "' of the umT5 encoder (expected "
                                          << config.num_layers << " layers); the checkpoint is incomplete or its "
                                          << "config.json does not match it");
    FASTAR_CHECK(dtype_is_float(entry->dtype) && entry->dtype != DType::F64,
                 checkpoint.path() << ": tensor '" << name << "' has dtype " << dtype_name(entry->dtype)
                                   << "; fastar reads F32, BF16 or F16 umT5 weights (convert fp8/GGUF files back first)");
    FASTAR_CHECK(entry->shape == slot.shape, checkpoint.path() << ": tensor '" << name << "' has shape "
                                                               << shape_to_string(entry->shape) << ", expected "
                                                               << shape_to_string(slot.shape)
                                                               << " from the umT5 config; config and weights disagree");
    const Tensor tensor = checkpoint.tensor(name);
    *slot.target = slot.small ? tensor.to_f32() : tensor;
  }
  return weights;
}

}  // namespace fastar
