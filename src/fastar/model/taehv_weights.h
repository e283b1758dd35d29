// Typed weights of the tiny Wan2.1 decoders TAEHV (taew2_1) and LightTAE (lighttaew2_1), and the one
// table that maps them to the published checkpoint names `decoder.<i>.*` (pipeline-spec.md §3.1, §3.4).
//
// Both files have the same architecture and keys; they differ only in what latent they decode
// (§3.2): taew2_1 the DiT's normalised latent, LightTAE the denormalised z · std + mean. Loading
// checks every name and shape, converts to fp32 (the published safetensors are fp16) and packs each
// conv for the CPU kernel. `encoder.*` tensors in the same file are ignored.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fastar/core/safetensors.h"
#include "fastar/core/tensor.h"
#include "fastar/kernels/cpu/causal_conv3d.h"

namespace fastar {

// Which latent the decoder takes (pipeline-spec.md §3.2).
enum class TaehvVariant {
  Taew2_1,   // madebyollin's taew2_1: the normalised latent as the DiT outputs it
  LightTae,  // lightx2v's lighttaew2_1: the denormalised latent z_n · std + mean
};

const char* taehv_variant_name(TaehvVariant variant);  // "taew2_1" / "lighttaew2_1"

// The decoder's hyper-parameters. The published files have widths (256, 128, 64, 64); tests use
// narrow widths with the same layer structure. Time strides are fixed: (1, 2, 2), so every latent
// gives 4 raw frames.
struct TaehvConfig {
  std::array<int64_t, 4> widths = {256, 128, 64, 64};  // n0 (stage 0) … n2 (stage 2), n3 (last conv)
  int64_t latent_channels = 16;
  int64_t out_channels = 3;
  std::array<int64_t, 3> time_strides = {1, 2, 2};  // TGrow of stage 0, 1, 2 (decoder.7, 13, 19)

  int64_t time_upscale() const { return time_strides[0] * time_strides[1] * time_strides[2]; }  // 4
  int64_t frames_to_trim() const { return time_upscale() - 1; }  // 3 raw frames dropped at the stream's start
};

// A Conv2d (3×3 with zero padding 1, or the 1×1 TGrow): PyTorch weight and the CPU kernel's packing.
struct TaehvConv {
  Tensor weight;  // [out, in, k, k]
  Tensor bias;    // [out], undefined for the bias-free convs (TGrow, decoder.8/14/20)
  Tensor packed;  // [k·k, out, in] (cpu::causal_conv3d_pack_weight with kernel_t = 1)
  int64_t in_channels = 0, out_channels = 0, kernel = 3;

  // Kernel parameters for `frames` frames of height × width, each convolved on its own.
  cpu::CausalConv3dParams params(int64_t frames, int64_t height, int64_t width) const;
};

// MemBlock(C): conv1 3×3 2C → C on cat[x, past], conv2 and conv3 3×3 C → C, identity skip
// (`decoder.<i>.conv.{0,2,4}`, §3.1).
struct TaehvMemBlockWeights {
  std::array<TaehvConv, 3> convs;
};

// One stage of the decoder: three MemBlocks, Upsample ×2, TGrow(stride), Conv2d 3×3 without bias.
struct TaehvStageWeights {
  std::array<TaehvMemBlockWeights, 3> blocks;
  int64_t time_stride = 1;
  TaehvConv tgrow;  // 1×1, C → stride·C, no bias
  TaehvConv conv;   // 3×3, C → next width, no bias
};

struct TaehvDecoderWeights {
  TaehvConfig config;
  TaehvVariant variant = TaehvVariant::Taew2_1;
  TaehvConv conv_in;                       // decoder.1: 3×3 16 → n0 (+bias)
  std::array<TaehvStageWeights, 3> stages;  // decoder.3–8, 9–14, 15–20
  TaehvConv conv_out;                      // decoder.22: 3×3 n3 → 3 (+bias)
};

// The config implied by the checkpoint's shapes (widths from decoder.1/8/14/20); throws a
// fastar::Error naming the file when `decoder.22.bias` (the family's marker, §3.1) is absent or a
// width tensor has the wrong rank.
TaehvConfig infer_taehv_config(const Checkpoint& checkpoint);

// The variant a file was made for: the converter's metadata key "fastar_taehv_variant" when present,
// else "lighttae" in the file name (as [FD] decides), else taew2_1.
TaehvVariant detect_taehv_variant(const Checkpoint& checkpoint);

// Loads and checks every decoder tensor (names, shapes, float dtypes), converts to fp32 and packs.
// A TGrow weight with more rows than stride·C (some shipped files, §3.1) keeps its last stride·C rows.
// `variant` overrides detect_taehv_variant.
TaehvDecoderWeights load_taehv_decoder_weights(const Checkpoint& checkpoint,
                                               std::optional<TaehvVariant> variant = std::nullopt);
TaehvDecoderWeights load_taehv_decoder_weights(const std::string& path,
                                               std::optional<TaehvVariant> variant = std::nullopt);

// Every decoder checkpoint name, in layer order (64).
std::vector<std::string> taehv_tensor_names(const TaehvConfig& config);

// Deterministic random weights (tests, timing): weights normal(0, 1/√fan_in), biases normal(0, 0.1).
TaehvDecoderWeights random_taehv_decoder_weights(const TaehvConfig& config, uint64_t seed,
                                                 TaehvVariant variant = TaehvVariant::Taew2_1);

// The weights under their checkpoint names, fp32, for write_safetensors.
std::vector<std::pair<std::string, Tensor>> taehv_weights_to_named(const TaehvDecoderWeights& weights);

}  // namespace fastar
