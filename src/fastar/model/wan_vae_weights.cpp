#include "fastar/model/wan_vae_weights.h"

#include <cmath>
#include <random>

#include "fastar/core/error.h"

namespace fastar {

std::vector<int64_t> WanVaeConfig::decoder_dims() const {
  std::vector<int64_t> dims = {base_dim * dim_mult.back()};
  for (auto it = dim_mult.rbegin(); it != dim_mult.rend(); ++it) dims.push_back(base_dim * *it);
  return dims;
}

cpu::CausalConv3dParams VaeConvWeights::params(int64_t frames, int64_t height, int64_t width) const {
  cpu::CausalConv3dParams p;
  p.in_channels = in_channels;
  p.out_channels = out_channels;
  p.kernel_t = kernel_t;
  p.kernel_h = kernel_h;
  p.kernel_w = kernel_w;
  p.frames = frames;
  p.height = height;
  p.width = width;
  return p;
}

namespace {

// One registered tensor: its two names, its shape and where it lives. `conv` is set on a conv's
// weight entry so the loader can pack it once the tensor is in place.
struct TableEntry {
  std::string original;
  std::string diffusers;
  Shape shape;
  Tensor* slot = nullptr;
  VaeConvWeights* conv = nullptr;
};

// The single name table (pipeline-spec.md §2.3). Also fills each conv's channel/kernel fields.
class WeightTable {
 public:
  std::vector<TableEntry> entries;

  void conv(const std::string& original, const std::string& diffusers, VaeConvWeights* c, int64_t cin, int64_t cout,
            int64_t kt, int64_t kh, int64_t kw, bool conv2d = false) {
    c->in_channels = cin;
    c->out_channels = cout;
    c->kernel_t = kt;
    c->kernel_h = kh;
    c->kernel_w = kw;
    c->conv2d = conv2d;
    const Shape shape = conv2d ? Shape{cout, cin, kh, kw} : Shape{cout, cin, kt, kh, kw};
    entries.push_back({original + ".weight", diffusers + ".weight", shape, &c->weight, c});
    entries.push_back({original + ".bias", diffusers + ".bias", {cout}, &c->bias, nullptr});
  }
  void gamma(const std::string& original, const std::string& diffusers, Tensor* slot, const Shape& shape) {
    entries.push_back({original, diffusers, shape, slot, nullptr});
  }
  void res_block(const std::string& original, const std::string& diffusers, VaeResBlockWeights* r, int64_t cin,
                 int64_t cout) {
    gamma(original + ".residual.0.gamma", diffusers + ".norm1.gamma", &r->norm1_gamma, {cin, 1, 1, 1});
    conv(original + ".residual.2", diffusers + ".conv1", &r->conv1, cin, cout, 3, 3, 3);
    gamma(original + ".residual.3.gamma", diffusers + ".norm2.gamma", &r->norm2_gamma, {cout, 1, 1, 1});
    conv(original + ".residual.6", diffusers + ".conv2", &r->conv2, cout, cout, 3, 3, 3);
    if (cin != cout) conv(original + ".shortcut", diffusers + ".conv_shortcut", &r->shortcut, cin, cout, 1, 1, 1);
  }
};

WeightTable build_table(WanVaeDecoderWeights& w) {
  const WanVaeConfig& cfg = w.config;
  FASTAR_CHECK(cfg.dim_mult.size() == cfg.temporal_upsample.size() + 1 && cfg.num_res_blocks >= 1 && cfg.base_dim > 0,
               "Wan VAE config: dim_mult needs one more entry than temporal_upsample");
  const std::vector<int64_t> dims = cfg.decoder_dims();
  WeightTable t;
  t.conv("conv2", "post_quant_conv", &w.post_quant_conv, cfg.z_dim, cfg.z_dim, 1, 1, 1);
  t.conv("decoder.conv1", "decoder.conv_in", &w.conv_in, cfg.z_dim, dims[0], 3, 3, 3);
  t.res_block("decoder.middle.0", "decoder.mid_block.resnets.0", &w.mid_res0, dims[0], dims[0]);
  t.gamma("decoder.middle.1.norm.gamma", "decoder.mid_block.attentions.0.norm.gamma", &w.mid_attention.norm_gamma,
          {dims[0], 1, 1});
  t.conv("decoder.middle.1.to_qkv", "decoder.mid_block.attentions.0.to_qkv", &w.mid_attention.to_qkv, dims[0],
         3 * dims[0], 1, 1, 1, /*conv2d=*/true);
  t.conv("decoder.middle.1.proj", "decoder.mid_block.attentions.0.proj", &w.mid_attention.proj, dims[0], dims[0], 1, 1,
         1, /*conv2d=*/true);
  t.res_block("decoder.middle.2", "decoder.mid_block.resnets.1", &w.mid_res1, dims[0], dims[0]);

  // Up blocks: the original decoder keeps one flat `upsamples` list (res blocks, then the resample,
  // per block); diffusers nests them as up_blocks.{i}.resnets.{j} / upsamplers.0.
  const size_t blocks = cfg.dim_mult.size();
  w.up_blocks.resize(blocks);  // keeps existing tensors (wan_vae_weights_to_named walks loaded weights)
  int64_t flat = 0;
  for (size_t i = 0; i < blocks; ++i) {
    VaeUpBlockWeights& block = w.up_blocks[i];
    // Wan2.1: every block after the first takes the previous resample's halved width.
    int64_t in_dim = i == 0 ? dims[i] : dims[i] / 2;
    const int64_t out_dim = dims[i + 1];
    block.resnets.resize(static_cast<size_t>(cfg.num_res_blocks + 1));
    const std::string diffusers_block = "decoder.up_blocks." + std::to_string(i);
    for (int64_t j = 0; j <= cfg.num_res_blocks; ++j) {
      t.res_block("decoder.upsamples." + std::to_string(flat++), diffusers_block + ".resnets." + std::to_string(j),
                  &block.resnets[static_cast<size_t>(j)], in_dim, out_dim);
      in_dim = out_dim;
    }
    block.has_upsample = i + 1 != blocks;
    if (block.has_upsample) {
      block.upsample.temporal = cfg.temporal_upsample[i];
      const std::string original = "decoder.upsamples." + std::to_string(flat++);
      const std::string diffusers = diffusers_block + ".upsamplers.0";
      if (block.upsample.temporal)
        t.conv(original + ".time_conv", diffusers + ".time_conv", &block.upsample.time_conv, out_dim, 2 * out_dim, 3, 1,
               1);
      t.conv(original + ".resample.1", diffusers + ".resample.1", &block.upsample.resample, out_dim, out_dim / 2, 1, 3,
             3, /*conv2d=*/true);
    }
  }
  t.gamma("decoder.head.0.gamma", "decoder.norm_out.gamma", &w.norm_out_gamma, {dims.back(), 1, 1, 1});
  t.conv("decoder.head.2", "decoder.conv_out", &w.conv_out, dims.back(), cfg.out_channels, 3, 3, 3);
  return t;
}

void pack_convs(const WeightTable& table) {
  for (const TableEntry& e : table.entries) {
    if (!e.conv) continue;
    VaeConvWeights& c = *e.conv;
    const cpu::CausalConv3dParams p = c.params(1, 1, 1);
    c.packed = Tensor::zeros({p.taps(), c.out_channels, c.in_channels});
    cpu::causal_conv3d_pack_weight(c.packed.data<float>(), c.weight.data<float>(), p);
  }
}

const std::string& name_in(const TableEntry& e, WanVaeNameLayout layout) {
  return layout == WanVaeNameLayout::Original ? e.original : e.diffusers;
}

const char* layout_name(WanVaeNameLayout layout) {
  return layout == WanVaeNameLayout::Original ? "original Wan" : "diffusers";
}

constexpr const char* kOriginalProbe = "decoder.middle.0.residual.0.gamma";
constexpr const char* kDiffusersProbe = "decoder.mid_block.resnets.0.norm1.gamma";

}  // namespace

WanVaeNameLayout detect_wan_vae_layout(const Checkpoint& checkpoint) {
  if (checkpoint.find(kOriginalProbe)) return WanVaeNameLayout::Original;
  if (checkpoint.find(kDiffusersProbe)) return WanVaeNameLayout::Diffusers;
  FASTAR_FAIL(checkpoint.path() << ": not a Wan2.1 VAE checkpoint: it has neither '" << kOriginalProbe
                                << "' (original Wan2.1_VAE.pth names) nor '" << kDiffusersProbe
                                << "' (diffusers AutoencoderKLWan names). Give the VAE file (e.g. the safetensors "
                                   "conversion of Wan2.1_VAE.pth, or vae/diffusion_pytorch_model.safetensors of a "
                                   "-Diffusers repository), not the DiT or text encoder");
}

WanVaeConfig infer_wan_vae_config(const Checkpoint& checkpoint) {
  const WanVaeNameLayout layout = detect_wan_vae_layout(checkpoint);
  const std::string name = layout == WanVaeNameLayout::Original ? "decoder.conv1.weight" : "decoder.conv_in.weight";
  const TensorEntry& conv_in = checkpoint.at(name);
  const Shape& s = conv_in.shape;
  FASTAR_CHECK(s.size() == 5 && s[2] == 3 && s[3] == 3 && s[4] == 3 && s[0] % 4 == 0,
               checkpoint.path() << ": tensor '" << name << "' has shape " << shape_to_string(s)
                                 << ", expected [4·base_dim, 16, 3, 3, 3] (the Wan2.1 VAE decoder's first conv)");
  WanVaeConfig config;
  config.base_dim = s[0] / 4;
  config.z_dim = s[1];
  FASTAR_CHECK(config.z_dim == 16, checkpoint.path()
                                       << ": tensor '" << name << "' takes " << config.z_dim
                                       << " latent channels; the Wan2.1 VAE has 16 (Wan2.2's 48-channel VAE has a "
                                          "different layout and is not supported). Use the Wan2.1 VAE");
  return config;
}

WanVaeDecoderWeights load_wan_vae_decoder_weights(const Checkpoint& checkpoint) {
  const WanVaeNameLayout layout = detect_wan_vae_layout(checkpoint);
  WanVaeDecoderWeights w;
  w.config = infer_wan_vae_config(checkpoint);
  WeightTable table = build_table(w);
  std::vector<std::string> missing;
  for (const TableEntry& e : table.entries) {
    const std::string& name = name_in(e, layout);
    const TensorEntry* entry = checkpoint.find(name);
    if (!entry) {
      missing.push_back(name);
      continue;
    }
    FASTAR_CHECK(entry->shape == e.shape,
                 entry->file << ": tensor '" << name << "' has shape " << shape_to_string(entry->shape) << ", expected "
                             << shape_to_string(e.shape) << " for a Wan2.1 VAE decoder with base_dim "
                             << w.config.base_dim << " (read from its first conv). The file is not a Wan2.1 VAE "
                             << "or mixes two models; re-export it");
    FASTAR_CHECK(dtype_is_float(entry->dtype), entry->file << ": tensor '" << name << "' has dtype "
                                                           << dtype_name(entry->dtype)
                                                           << "; the VAE needs F32, BF16 or F16 weights");
    *e.slot = checkpoint.tensor(name).to_f32();
  }
  if (!missing.empty()) {
    std::ostringstream list;
    for (size_t i = 0; i < missing.size() && i < 5; ++i) list << (i ? ", " : "") << "'" << missing[i] << "'";
    if (missing.size() > 5) list << " and " << missing.size() - 5 << " more";
    FASTAR_FAIL(checkpoint.path() << ": " << missing.size() << " of the " << table.entries.size()
                                  << " Wan VAE decoder tensors (" << layout_name(layout) << " names) are missing: "
                                  << list.str() << ". The file is incomplete or not a Wan2.1 VAE; convert the whole "
                                  << "Wan2.1_VAE.pth (decoder.* and conv2.*)");
  }
  pack_convs(table);
  return w;
}

WanVaeDecoderWeights load_wan_vae_decoder_weights(const std::string& path) {
  return load_wan_vae_decoder_weights(Checkpoint::open(path));
}

std::vector<std::string> wan_vae_tensor_names(const WanVaeConfig& config, WanVaeNameLayout layout) {
  WanVaeDecoderWeights w;
  w.config = config;
  std::vector<std::string> names;
  for (const TableEntry& e : build_table(w).entries) names.push_back(name_in(e, layout));
  return names;
}

WanVaeDecoderWeights random_wan_vae_decoder_weights(const WanVaeConfig& config, uint64_t seed) {
  WanVaeDecoderWeights w;
  w.config = config;
  WeightTable table = build_table(w);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const TableEntry& e : table.entries) {
    *e.slot = Tensor::zeros(e.shape);
    float* data = e.slot->data<float>();
    const int64_t n = e.slot->numel();
    const bool is_gamma = e.original.ends_with("gamma");
    const bool is_weight = e.conv != nullptr;
    const float scale = is_weight  ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(n / e.shape[0])))
                        : is_gamma ? 0.1f
                                   : 0.05f;
    for (int64_t i = 0; i < n; ++i) data[i] = (is_gamma ? 1.0f : 0.0f) + scale * normal(rng);
  }
  pack_convs(table);
  return w;
}

std::vector<std::pair<std::string, Tensor>> wan_vae_weights_to_named(const WanVaeDecoderWeights& weights,
                                                                     WanVaeNameLayout layout) {
  WanVaeDecoderWeights copy = weights;  // the table needs mutable slots; Tensors share storage
  std::vector<std::pair<std::string, Tensor>> named;
  for (const TableEntry& e : build_table(copy).entries) named.emplace_back(name_in(e, layout), *e.slot);
  return named;
}

}  // namespace fastar
