#include "fastar/model/wan_weights.h"

#include <unistd.h>

#include <cmath>
#include <functional>
#include <exception>
#include <iomanip>
#include <random>
#include <set>
#include <sstream>

#include "fastar/core/error.h"
#include "fastar/model/arl2_weights.h"

namespace fastar {

namespace {

// One registered tensor: both names, the expected shape, and where it goes.
struct WeightSlot {
  std::string original;
  std::string diffusers;
  Shape shape;
  Tensor* target;
  Shape stored_shape;  // shape kept in memory (e.g. Conv3d weight flattened); empty = as `shape`
};

std::string block_name(int64_t layer, const std::string& rest) { return "blocks." + std::to_string(layer) + "." + rest; }

// The single registry of Wan DiT tensor names (wan-spec.md §2). Both layouts come from here.
std::vector<WeightSlot> weight_slots(const WanConfig& c, WanWeights& w) {
  const int64_t d = c.dim;
  std::vector<WeightSlot> slots;
  auto linear = [&](LinearWeights& lin, const std::string& original, const std::string& diffusers, int64_t out,
                    int64_t in) {
    slots.push_back({original + ".weight", diffusers + ".weight", {out, in}, &lin.weight, {}});
    slots.push_back({original + ".bias", diffusers + ".bias", {out}, &lin.bias, {}});
  };
  slots.push_back({"patch_embedding.weight", "patch_embedding.weight",
                   {d, c.in_dim, c.patch_t, c.patch_h, c.patch_w}, &w.patch_weight, {d, c.patch_features_in()}});
  slots.push_back({"patch_embedding.bias", "patch_embedding.bias", {d}, &w.patch_bias, {}});
  linear(w.text_in, "text_embedding.0", "condition_embedder.text_embedder.linear_1", d, c.text_dim);
  linear(w.text_out, "text_embedding.2", "condition_embedder.text_embedder.linear_2", d, d);
  linear(w.time_in, "time_embedding.0", "condition_embedder.time_embedder.linear_1", d, c.freq_dim);
  linear(w.time_out, "time_embedding.2", "condition_embedder.time_embedder.linear_2", d, d);
  linear(w.time_projection, "time_projection.1", "condition_embedder.time_proj", 6 * d, d);
  if (c.action_dim > 0) {  // fastar extension: the same name in both layouts
    linear(w.action_in, "action_embedding.0", "action_embedding.0", d, c.action_dim);
    linear(w.action_out, "action_embedding.2", "action_embedding.2", d, d);
  }
  w.blocks.resize(static_cast<size_t>(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    WanBlockWeights& b = w.blocks[static_cast<size_t>(i)];
    auto both = [&](const std::string& original, const std::string& diffusers) {
      return std::pair{block_name(i, original), block_name(i, diffusers)};
    };
    auto add = [&](std::pair<std::string, std::string> names, Shape shape, Tensor* target) {
      slots.push_back({names.first, names.second, std::move(shape), target, {}});
    };
    auto block_linear = [&](LinearWeights& lin, const std::string& original, const std::string& diffusers,
                            int64_t out, int64_t in) { linear(lin, block_name(i, original), block_name(i, diffusers), out, in); };
    add(both("modulation", "scale_shift_table"), {1, 6, d}, &b.modulation);
    block_linear(b.self_q, "self_attn.q", "attn1.to_q", d, d);
    block_linear(b.self_k, "self_attn.k", "attn1.to_k", d, d);
    block_linear(b.self_v, "self_attn.v", "attn1.to_v", d, d);
    block_linear(b.self_o, "self_attn.o", "attn1.to_out.0", d, d);
    if (c.qk_norm) {
      add(both("self_attn.norm_q.weight", "attn1.norm_q.weight"), {d}, &b.self_norm_q);
      add(both("self_attn.norm_k.weight", "attn1.norm_k.weight"), {d}, &b.self_norm_k);
    }
    if (c.cross_attn_norm) {  // Wan's norm3 is diffusers' norm2
      add(both("norm3.weight", "norm2.weight"), {d}, &b.cross_norm_weight);
      add(both("norm3.bias", "norm2.bias"), {d}, &b.cross_norm_bias);
    }
    block_linear(b.cross_q, "cross_attn.q", "attn2.to_q", d, d);
    block_linear(b.cross_k, "cross_attn.k", "attn2.to_k", d, d);
    block_linear(b.cross_v, "cross_attn.v", "attn2.to_v", d, d);
    block_linear(b.cross_o, "cross_attn.o", "attn2.to_out.0", d, d);
    if (c.qk_norm) {
      add(both("cross_attn.norm_q.weight", "attn2.norm_q.weight"), {d}, &b.cross_norm_q);
      add(both("cross_attn.norm_k.weight", "attn2.norm_k.weight"), {d}, &b.cross_norm_k);
    }
    block_linear(b.ffn_in, "ffn.0", "ffn.net.0.proj", c.ffn_dim, d);
    block_linear(b.ffn_out, "ffn.2", "ffn.net.2", d, c.ffn_dim);
    if (c.is_hybrid(i)) {  // ARL² (docs/arl2.md): HybridBlockAttention's names under self_attn / attn1
      HybridAttentionWeights& hy = b.hybrid;
      const int64_t heads = c.num_heads, hd = c.head_dim();
      auto hybrid = [&](const std::string& rest, Shape shape, Tensor* target, Shape stored = {}) {
        slots.push_back({block_name(i, "self_attn." + rest), block_name(i, "attn1." + rest), std::move(shape), target,
                         std::move(stored)});
      };
      hybrid("phi_q.weight", {d, hd, 1}, &hy.phi_q, {heads, hd, hd});
      hybrid("phi_k.weight", {d, hd, 1}, &hy.phi_k, {heads, hd, hd});
      hybrid("phi_v.weight", {d, hd, 1}, &hy.phi_v, {heads, hd, hd});
      hybrid("a_proj.weight", {heads, d}, &hy.a_proj.weight);
      hybrid("b_proj.weight", {heads, d}, &hy.b_proj.weight);
      hybrid("gate_proj.weight", {heads, d}, &hy.gate_proj.weight);
      hybrid("A_log", {heads}, &hy.A_log);
      hybrid("dt_bias", {heads}, &hy.dt_bias);
    }
  }
  slots.push_back({"head.modulation", "scale_shift_table", {1, 2, d}, &w.head_modulation, {}});
  linear(w.head, "head.head", "proj_out", c.patch_features_out(), d);
  return slots;
}

const std::string& slot_name(const WeightSlot& slot, WanNameLayout layout) {
  return layout == WanNameLayout::Original ? slot.original : slot.diffusers;
}

const char* layout_name(WanNameLayout layout) {
  return layout == WanNameLayout::Original ? "original Wan" : "diffusers";
}

// This machine's physical memory in bytes (a generous stand-in when the system does not say).
int64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return int64_t{1} << 40;
  int64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<int64_t>(pages), static_cast<int64_t>(page_size), &bytes)) return INT64_MAX;
  return bytes;
}

}  // namespace

WanNameLayout detect_wan_layout(const Checkpoint& checkpoint) {
  if (checkpoint.find("head.head.weight") || checkpoint.find("time_projection.1.weight")) return WanNameLayout::Original;
  if (checkpoint.find("proj_out.weight") || checkpoint.find("condition_embedder.time_proj.weight"))
    return WanNameLayout::Diffusers;
  std::ostringstream hint;
  const auto names = checkpoint.names();
  for (size_t i = 0; i < names.size() && i < 5; ++i) hint << (i ? ", " : "") << names[i];
  if (!names.empty() && names[0].rfind("model.", 0) == 0)
    FASTAR_FAIL(checkpoint.path() << ": tensor names start with 'model.' (a forcing-family training checkpoint?); "
                                     "convert it with tools/convert_forcing_checkpoint.py first");
  FASTAR_FAIL(checkpoint.path() << ": not a Wan DiT checkpoint: found neither 'head.head.weight' (Wan names) nor "
                                   "'proj_out.weight' (diffusers names); first tensors: "
                                << hint.str());
}

void check_checkpoint_layer_count(const Checkpoint& checkpoint, const std::string& prefix, int64_t expected,
                                  const std::string& what, const std::string& config_field) {
  std::set<int64_t> indices;
  for (const std::string& name : checkpoint.names()) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t digits_end = name.find('.', prefix.size());
    if (digits_end == std::string::npos) continue;
    const std::string digits = name.substr(prefix.size(), digits_end - prefix.size());
    const bool plain_number = !digits.empty() && digits.size() <= 9 && (digits == "0" || digits[0] != '0') &&
                              digits.find_first_not_of("0123456789") == std::string::npos;
    if (plain_number) indices.insert(std::stoll(digits));
  }
  const int64_t found = static_cast<int64_t>(indices.size());
  FASTAR_CHECK(found == expected, checkpoint.path() << ": the checkpoint holds " << found << " " << what << " ("
                                                    << prefix << "N.*) but the config says " << config_field << " "
                                                    << expected << "; use the config.json that came with these "
                                                                   "weights, or set "
                                                    << config_field << " to " << found);
  int64_t next = 0;
  for (const int64_t index : indices) {
    FASTAR_CHECK(index == next, checkpoint.path() << ": the checkpoint's " << what << " are not numbered 0 to "
                                                  << expected - 1 << ": " << prefix << next << ".* is missing and "
                                                  << prefix << index
                                                  << ".* is present; the checkpoint is incomplete, re-download or "
                                                     "re-export it");
    ++next;
  }
}

int64_t wan_parameter_count(const WanConfig& config) {
  config.validate("the model config");
  WanWeights scratch;
  int64_t total = 0;
  for (const WeightSlot& slot : weight_slots(config, scratch)) {
    int64_t numel = 1;
    for (const int64_t extent : slot.shape)
      FASTAR_CHECK(!__builtin_mul_overflow(numel, extent, &numel),
                   "the model config: tensor '" << slot.original << "' has more elements than int64 holds; lower dim, "
                                                                    "ffn_dim or num_layers");
    FASTAR_CHECK(!__builtin_add_overflow(total, numel, &total),
                 "the model config: the parameter count overflows int64; lower dim, ffn_dim or num_layers");
  }
  return total;
}

WanWeights load_wan_weights(const Checkpoint& checkpoint, const WanConfig& config) {
  config.validate("the config of " + checkpoint.path());
  const WanNameLayout layout = detect_wan_layout(checkpoint);
  // The block count first: num_layers sizes everything below.
  check_checkpoint_layer_count(checkpoint, "blocks.", config.num_layers, "transformer blocks", "num_layers");
  WanWeights weights;
  const std::vector<WeightSlot> slots = weight_slots(config, weights);
  // Every name, dtype and shape from the header before any tensor is read or converted.
  std::set<std::string> expected;
  for (const WeightSlot& slot : slots) {
    const std::string& name = slot_name(slot, layout);
    expected.insert(arl2_base_name(checkpoint, name));
    const TensorEntry* entry = checkpoint.find(arl2_base_name(checkpoint, name));
    FASTAR_CHECK(entry, checkpoint.path() << ": missing tensor '" << name << "' (" << layout_name(layout)
                                          << " names); the checkpoint is incomplete or does not match its config "
                                             "(num_layers="
                                          << config.num_layers << ", qk_norm=" << config.qk_norm
                                          << ", cross_attn_norm=" << config.cross_attn_norm
                                          << ", action_dim=" << config.action_dim << ")");
    FASTAR_CHECK(dtype_is_float(entry->dtype), checkpoint.path() << ": tensor '" << name << "' has dtype "
                                                                 << dtype_name(entry->dtype)
                                                                 << "; Wan weights must be F32, BF16 or F16");
    FASTAR_CHECK(entry->shape == slot.shape, checkpoint.path()
                                                 << ": tensor '" << name << "' has shape " << shape_to_string(entry->shape)
                                                 << " but the config expects " << shape_to_string(slot.shape)
                                                 << "; the config file does not match these weights");
  }
  for (const WeightSlot& slot : slots) {
    Tensor value = checkpoint.tensor(arl2_base_name(checkpoint, slot_name(slot, layout))).to_f32();
    *slot.target = slot.stored_shape.empty() ? value : value.reshape(slot.stored_shape);
  }
  merge_arl2_lora(checkpoint, config, weights, &expected);  // LoRA deltas of ARL² checkpoints, if any
  std::vector<std::string> unexpected;
  for (const std::string& name : checkpoint.names())
    // text_encoder.* belong to the model's own text encoder (model/text_encoder.h), loaded separately.
    if (!expected.count(name) && name.rfind("text_encoder.", 0) != 0) unexpected.push_back(name);
  if (!unexpected.empty()) {
    std::ostringstream list;
    for (size_t i = 0; i < unexpected.size() && i < 5; ++i) list << (i ? ", " : "") << "'" << unexpected[i] << "'";
    FASTAR_FAIL(checkpoint.path() << ": " << unexpected.size() << " tensor(s) that a Wan2.1 T2V DiT with this config "
                                                                  "does not have, e.g. "
                                  << list.str()
                                  << "; check num_layers in the config, or the model is a variant fastar does not "
                                     "support yet (I2V, VACE)");
  }
  return weights;
}

std::vector<std::string> wan_tensor_names(const WanConfig& config, WanNameLayout layout) {
  WanWeights scratch;
  std::vector<std::string> names;
  for (const WeightSlot& slot : weight_slots(config, scratch)) names.push_back(slot_name(slot, layout));
  return names;
}

WanWeights random_wan_weights(const WanConfig& config, uint64_t seed) {
  // The whole size first: an absurd config must not fill every tensor that fits before failing.
  const int64_t parameters = wan_parameter_count(config);
  const int64_t memory = physical_memory_bytes();
  int64_t bytes = 0;
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  FASTAR_CHECK(!__builtin_mul_overflow(parameters, int64_t{4}, &bytes) && bytes <= memory,
               "random weights for this config need " << std::fixed << std::setprecision(1)
                                                      << static_cast<double>(parameters) * 4.0 / kGiB << " GiB ("
                   << parameters << " fp32 parameters), more than this machine's "
                   << static_cast<double>(memory) / kGiB
                   << " GiB of memory; lower dim, ffn_dim or num_layers in the config");
  WanWeights weights;
  const std::vector<WeightSlot> slots = weight_slots(config, weights);
  // Tensor `index`, from its own generator seeded by (seed, index): the tensors are filled in parallel
  // (1.4 B values for Wan2.1-1.3B) and each is the same whatever the thread count.
  auto random_tensor = [&](int64_t index) {
    const WeightSlot& slot = slots[static_cast<size_t>(index)];
    uint64_t mixed = seed ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(index + 1));  // splitmix64 finaliser
    mixed = (mixed ^ (mixed >> 30)) * 0xbf58476d1ce4e5b9ull;
    mixed = (mixed ^ (mixed >> 27)) * 0x94d049bb133111ebull;
    std::mt19937_64 rng(mixed ^ (mixed >> 31));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const Shape& shape = slot.stored_shape.empty() ? slot.shape : slot.stored_shape;
    Tensor t = Tensor::zeros(shape);
    float* data = t.data<float>();
    const std::string& name = slot.original;
    const bool is_norm_weight = name.find("norm") != std::string::npos && shape.size() == 1 &&
                                name.find("bias") == std::string::npos;
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    const bool is_modulation = name.find("modulation") != std::string::npos;
    const bool is_phi = name.find(".phi_") != std::string::npos;  // ARL² φ: near identity, as its init
    // Fan-in scaled init keeps activations O(1) through the layers.
    const float fan_in = shape.size() >= 2 ? static_cast<float>(shape_numel(shape) / shape[0]) : 1.0f;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const float z = normal(rng);
      if (is_phi) data[i] = ((i % (shape[1] * shape[2])) / shape[2] == i % shape[2] ? 1.0f : 0.0f) + 0.1f * z / std::sqrt(fan_in);
      else if (is_norm_weight) data[i] = 1.0f + 0.1f * z;
      else if (is_modulation) data[i] = 0.1f * z;
      else if (is_bias) data[i] = 0.02f * z;
      else data[i] = z / std::sqrt(fan_in);
      data[i] = round_to_bf16(data[i]);  // exact in any storage dtype fastar writes
    }
    return t;
  };
  std::vector<Tensor> tensors(slots.size());
  std::exception_ptr failure;  // e.g. out of host memory: rethrown after the parallel loop, not from inside it
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t index = 0; index < static_cast<int64_t>(slots.size()); ++index) {
    try {
      tensors[static_cast<size_t>(index)] = random_tensor(index);
    } catch (...) {
#pragma omp critical(fastar_random_weights_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  for (size_t index = 0; index < slots.size(); ++index) *slots[index].target = std::move(tensors[index]);
  return weights;
}

std::vector<std::pair<std::string, Tensor>> wan_weights_to_named(const WanWeights& weights, const WanConfig& config,
                                                                  WanNameLayout layout) {
  WanWeights copy = weights;  // tensors share storage; slots point into `copy`
  std::vector<std::pair<std::string, Tensor>> named;
  for (const WeightSlot& slot : weight_slots(config, copy)) {
    FASTAR_ASSERT(slot.target->defined(), "weights lack " << slot.original);
    named.emplace_back(slot_name(slot, layout), slot.target->reshape(slot.shape));
  }
  return named;
}

}  // namespace fastar
