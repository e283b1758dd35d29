#include "fastar/model/taehv_weights.h"

#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>

#include "fastar/core/error.h"

namespace fastar {

const char* taehv_variant_name(TaehvVariant variant) {
  return variant == TaehvVariant::LightTae ? "lighttaew2_1" : "taew2_1";
}

cpu::CausalConv3dParams TaehvConv::params(int64_t frames, int64_t height, int64_t width) const {
  cpu::CausalConv3dParams p;
  p.in_channels = in_channels;
  p.out_channels = out_channels;
  p.kernel_t = 1;  // every TAEHV conv is per frame; time mixing is MemBlock's cat and TGrow's reshape
  p.kernel_h = kernel;
  p.kernel_w = kernel;
  p.frames = frames;
  p.height = height;
  p.width = width;
  return p;
}

namespace {

constexpr const char* kProbe = "decoder.22.bias";  // the family's marker (ComfyUI's detection, §3.1)
constexpr const char* kVariantKey = "fastar_taehv_variant";

// One registered tensor: its checkpoint name, its shape and where it lives. `conv` is set on a
// conv's weight entry so the loader can pack it; `oversize_ok` on a TGrow weight.
struct TableEntry {
  std::string name;
  Shape shape;
  Tensor* slot = nullptr;
  TaehvConv* conv = nullptr;
  bool oversize_ok = false;
};

// The single name table (pipeline-spec.md §3.1). Also fills each conv's channel/kernel fields.
class WeightTable {
 public:
  std::vector<TableEntry> entries;

  void conv(const std::string& prefix, TaehvConv* c, int64_t cin, int64_t cout, int64_t kernel, bool bias,
            bool oversize_ok = false) {
    c->in_channels = cin;
    c->out_channels = cout;
    c->kernel = kernel;
    entries.push_back({prefix + ".weight", {cout, cin, kernel, kernel}, &c->weight, c, oversize_ok});
    if (bias) entries.push_back({prefix + ".bias", {cout}, &c->bias, nullptr, false});
  }
};

WeightTable build_table(TaehvDecoderWeights& w) {
  const TaehvConfig& cfg = w.config;
  for (int64_t width : cfg.widths) FASTAR_CHECK(width > 0, "TAEHV config: channel widths must be positive");
  WeightTable t;
  t.conv("decoder.1", &w.conv_in, cfg.latent_channels, cfg.widths[0], 3, true);
  for (size_t s = 0; s < 3; ++s) {
    TaehvStageWeights& stage = w.stages[s];
    const int64_t c = cfg.widths[s], next = cfg.widths[s + 1];
    const int64_t base = 3 + 6 * static_cast<int64_t>(s);  // MemBlocks base..base+2, Upsample base+3
    for (int64_t b = 0; b < 3; ++b) {
      const std::string prefix = "decoder." + std::to_string(base + b) + ".conv.";
      TaehvMemBlockWeights& block = stage.blocks[static_cast<size_t>(b)];
      t.conv(prefix + "0", &block.convs[0], 2 * c, c, 3, true);  // on cat[x, past]
      t.conv(prefix + "2", &block.convs[1], c, c, 3, true);
      t.conv(prefix + "4", &block.convs[2], c, c, 3, true);
    }
    stage.time_stride = cfg.time_strides[s];
    t.conv("decoder." + std::to_string(base + 4) + ".conv", &stage.tgrow, c, stage.time_stride * c, 1, false,
           /*oversize_ok=*/true);
    t.conv("decoder." + std::to_string(base + 5), &stage.conv, c, next, 3, false);
  }
  t.conv("decoder.22", &w.conv_out, cfg.widths[3], cfg.out_channels, 3, true);
  return t;
}

void pack_convs(const WeightTable& table) {
  for (const TableEntry& e : table.entries) {
    if (!e.conv) continue;
    TaehvConv& c = *e.conv;
    const cpu::CausalConv3dParams p = c.params(1, 1, 1);
    c.packed = Tensor::zeros({p.taps(), c.out_channels, c.in_channels});
    cpu::causal_conv3d_pack_weight(c.packed.data<float>(), c.weight.data<float>(), p);
  }
}

// Rows [rows − keep, rows) of a contiguous fp32 [rows, ...] tensor.
Tensor last_rows(const Tensor& t, int64_t keep) {
  Shape shape = t.shape();
  const int64_t row = t.numel() / shape[0];
  const int64_t skip = shape[0] - keep;
  shape[0] = keep;
  Tensor out = Tensor::zeros(shape);
  std::memcpy(out.data<float>(), t.data<float>() + skip * row, sizeof(float) * keep * row);
  return out;
}

// Output channels of a conv weight that must be 4-D; the error names the file and the tensor.
int64_t width_from(const Checkpoint& checkpoint, const std::string& name, int64_t expected_in) {
  const TensorEntry& e = checkpoint.at(name);
  FASTAR_CHECK(e.shape.size() == 4 && e.shape[0] > 0 && (expected_in < 0 || e.shape[1] == expected_in),
               e.file << ": tensor '" << name << "' has shape " << shape_to_string(e.shape)
                      << ", expected a 4-D Conv2d weight [out, "
                      << (expected_in < 0 ? "in" : std::to_string(expected_in))
                      << ", k, k] of a TAEHV decoder (pipeline-spec.md §3.1). The file is not a taew2_1 / "
                      << "lighttaew2_1 checkpoint or mixes two models");
  return e.shape[0];
}

}  // namespace

TaehvConfig infer_taehv_config(const Checkpoint& checkpoint) {
  FASTAR_CHECK(checkpoint.find(kProbe),
               checkpoint.path() << ": not a TAEHV / LightTAE checkpoint: it has no tensor '" << kProbe
                                 << "' (the published taew2_1 and lighttaew2_1 files name the decoder "
                                 << "`decoder.<i>.*`). Give taew2_1.safetensors or lighttaew2_1.safetensors, "
                                 << "or convert the .pth with tools/convert_taehv.py");
  TaehvConfig config;
  const int64_t n0 = width_from(checkpoint, "decoder.1.weight", -1);
  config.latent_channels = checkpoint.at("decoder.1.weight").shape[1];
  FASTAR_CHECK(config.latent_channels == 16,
               checkpoint.path() << ": tensor 'decoder.1.weight' takes " << config.latent_channels
                                 << " latent channels; the Wan2.1 tiny decoders take 16 (a TAEHV for another model, "
                                 << "e.g. Wan2.2's 48-channel latent, is not supported)");
  const int64_t n1 = width_from(checkpoint, "decoder.8.weight", n0);
  const int64_t n2 = width_from(checkpoint, "decoder.14.weight", n1);
  const int64_t n3 = width_from(checkpoint, "decoder.20.weight", n2);
  config.widths = {n0, n1, n2, n3};
  return config;
}

TaehvVariant detect_taehv_variant(const Checkpoint& checkpoint) {
  const auto& meta = checkpoint.metadata();
  if (auto it = meta.find(kVariantKey); it != meta.end()) {
    if (it->second == taehv_variant_name(TaehvVariant::LightTae)) return TaehvVariant::LightTae;
    FASTAR_CHECK(it->second == taehv_variant_name(TaehvVariant::Taew2_1),
                 checkpoint.path() << ": metadata '" << kVariantKey << "' is '" << it->second
                                   << "'; expected 'taew2_1' or 'lighttaew2_1' (re-run tools/convert_taehv.py)");
    return TaehvVariant::Taew2_1;
  }
  std::string file = std::filesystem::path(checkpoint.path()).filename().string();
  for (char& ch : file) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return file.find("lighttae") != std::string::npos ? TaehvVariant::LightTae : TaehvVariant::Taew2_1;
}

TaehvDecoderWeights load_taehv_decoder_weights(const Checkpoint& checkpoint, std::optional<TaehvVariant> variant) {
  TaehvDecoderWeights w;
  w.config = infer_taehv_config(checkpoint);
  w.variant = variant.value_or(detect_taehv_variant(checkpoint));
  WeightTable table = build_table(w);
  std::vector<std::string> missing;
  for (const TableEntry& e : table.entries) {
    const TensorEntry* entry = checkpoint.find(e.name);
    if (!entry) {
      missing.push_back(e.name);
      continue;
    }
    const Shape& s = entry->shape;
    // An oversize TGrow ([k·C, C, 1, 1] with k > stride) keeps its last stride·C rows (§3.1).
    const bool oversize = e.oversize_ok && s.size() == 4 && s[0] > e.shape[0] && s[0] % e.shape[1] == 0 &&
                          s[1] == e.shape[1] && s[2] == e.shape[2] && s[3] == e.shape[3];
    FASTAR_CHECK(s == e.shape || oversize,
                 entry->file << ": tensor '" << e.name << "' has shape " << shape_to_string(s) << ", expected "
                             << shape_to_string(e.shape) << " for a TAEHV decoder with widths (" << w.config.widths[0]
                             << ", " << w.config.widths[1] << ", " << w.config.widths[2] << ", " << w.config.widths[3]
                             << ") (read from decoder.1/8/14/20). The file is not a taew2_1 / lighttaew2_1 "
                             << "checkpoint or mixes two models; re-export it");
    FASTAR_CHECK(dtype_is_float(entry->dtype), entry->file << ": tensor '" << e.name << "' has dtype "
                                                           << dtype_name(entry->dtype)
                                                           << "; the decoder needs F32, BF16 or F16 weights");
    Tensor value = checkpoint.tensor(e.name).to_f32();
    *e.slot = oversize ? last_rows(value, e.shape[0]) : value;
  }
  if (!missing.empty()) {
    std::ostringstream list;
    for (size_t i = 0; i < missing.size() && i < 5; ++i) list << (i ? ", " : "") << "'" << missing[i] << "'";
    if (missing.size() > 5) list << " and " << missing.size() - 5 << " more";
    FASTAR_FAIL(checkpoint.path() << ": " << missing.size() << " of the " << table.entries.size()
                                  << " TAEHV decoder tensors are missing: " << list.str()
                                  << ". The file is incomplete; convert the whole taew2_1 / lighttaew2_1 .pth with "
                                  << "tools/convert_taehv.py");
  }
  pack_convs(table);
  return w;
}

TaehvDecoderWeights load_taehv_decoder_weights(const std::string& path, std::optional<TaehvVariant> variant) {
  return load_taehv_decoder_weights(Checkpoint::open(path), variant);
}

std::vector<std::string> taehv_tensor_names(const TaehvConfig& config) {
  TaehvDecoderWeights w;
  w.config = config;
  std::vector<std::string> names;
  for (const TableEntry& e : build_table(w).entries) names.push_back(e.name);
  return names;
}

TaehvDecoderWeights random_taehv_decoder_weights(const TaehvConfig& config, uint64_t seed, TaehvVariant variant) {
  TaehvDecoderWeights w;
  w.config = config;
  w.variant = variant;
  WeightTable table = build_table(w);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const TableEntry& e : table.entries) {
    *e.slot = Tensor::zeros(e.shape);
    float* data = e.slot->data<float>();
    const int64_t n = e.slot->numel();
    const float scale = e.conv ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(n / e.shape[0]))) : 0.1f;
    for (int64_t i = 0; i < n; ++i) data[i] = scale * normal(rng);
  }
  pack_convs(table);
  return w;
}

std::vector<std::pair<std::string, Tensor>> taehv_weights_to_named(const TaehvDecoderWeights& weights) {
  TaehvDecoderWeights copy = weights;  // the table needs mutable slots; Tensors share storage
  std::vector<std::pair<std::string, Tensor>> named;
  for (const TableEntry& e : build_table(copy).entries) named.emplace_back(e.name, *e.slot);
  return named;
}

}  // namespace fastar
