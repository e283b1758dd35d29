// Typed weights of the Wan2.1 VAE decoder (plus the top-level `conv2` / `post_quant_conv`), and the
// one table that maps them to checkpoint names (pipeline-spec.md §2.3, "Tensor names and shapes").
//
// Every tensor is registered once (wan_vae_weights.cpp) with its original Wan name
// (`Wan2.1_VAE.pth` converted to safetensors), its diffusers AutoencoderKLWan name and its shape;
// loading checks all three, converts to fp32 and packs each convolution for the CPU kernel.
// Encoder tensors in the same file are ignored.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "fastar/core/safetensors.h"
#include "fastar/core/tensor.h"
#include "fastar/kernels/cpu/causal_conv3d.h"

namespace fastar {

// The decoder's hyper-parameters ([WAN] `_video_vae`, pipeline-spec.md §2.1). Only base_dim varies
// between the real model (96) and the narrow test models; the layer structure is fixed.
struct WanVaeConfig {
  int64_t base_dim = 96;
  int64_t z_dim = 16;
  std::vector<int64_t> dim_mult = {1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  std::vector<bool> temporal_upsample = {true, true, false};  // reversed temperal_downsample
  int64_t out_channels = 3;

  // Channel widths of the decoder stages: base_dim · [4, 4, 4, 2, 1] = [384, 384, 384, 192, 96].
  std::vector<int64_t> decoder_dims() const;
};

// A convolution: weight in PyTorch layout (kept for export) and the per-tap packing the CPU kernel
// uses. For a Conv2d (the resample conv) kernel_t is 1 and weight is [out, in, kh, kw].
struct VaeConvWeights {
  Tensor weight;  // [out, in, kt, kh, kw] or [out, in, kh, kw]
  Tensor bias;    // [out]
  Tensor packed;  // [kt·kh·kw, out, in] (cpu::causal_conv3d_pack_weight)
  int64_t in_channels = 0, out_channels = 0, kernel_t = 1, kernel_h = 1, kernel_w = 1;
  bool conv2d = false;  // weight has 4 axes (nn.Conv2d)

  // The kernel parameters for a chunk of `frames` frames of height × width.
  cpu::CausalConv3dParams params(int64_t frames, int64_t height, int64_t width) const;
};

// ResidualBlock(in, out) (pipeline-spec.md §2.2):
// RMS → SiLU → conv1 3³ → RMS → SiLU → conv2 3³, plus the shortcut.
struct VaeResBlockWeights {
  Tensor norm1_gamma;  // [in, 1, 1, 1]
  VaeConvWeights conv1;
  Tensor norm2_gamma;  // [out, 1, 1, 1]
  VaeConvWeights conv2;
  VaeConvWeights shortcut;  // 1×1×1 when in != out; weight undefined otherwise (identity)
  bool has_shortcut() const { return shortcut.weight.defined(); }
};

// AttentionBlock(C): RMS, 1×1 to_qkv (C → 3C), one head per frame, 1×1 proj, residual.
struct VaeAttentionWeights {
  Tensor norm_gamma;  // [C, 1, 1]
  VaeConvWeights to_qkv;
  VaeConvWeights proj;
};

// Resample upsample3d (time_conv, then nearest ×2 + conv) or upsample2d (no time_conv).
struct VaeUpsampleWeights {
  bool temporal = false;
  VaeConvWeights time_conv;  // (3,1,1) C → 2C; temporal only
  VaeConvWeights resample;   // Conv2d 3×3 C → C/2
};

struct VaeUpBlockWeights {
  std::vector<VaeResBlockWeights> resnets;  // num_res_blocks + 1
  bool has_upsample = false;
  VaeUpsampleWeights upsample;
};

struct WanVaeDecoderWeights {
  WanVaeConfig config;
  VaeConvWeights post_quant_conv;  // original `conv2`: 1×1×1, z_dim → z_dim
  VaeConvWeights conv_in;          // 3³, z_dim → dims[0]
  VaeResBlockWeights mid_res0, mid_res1;
  VaeAttentionWeights mid_attention;
  std::vector<VaeUpBlockWeights> up_blocks;
  Tensor norm_out_gamma;    // [dims.back(), 1, 1, 1]
  VaeConvWeights conv_out;  // 3³, dims.back() → 3
};

enum class WanVaeNameLayout { Original, Diffusers };

// Which naming a checkpoint uses (by `decoder.middle.0.residual.0.gamma` or
// `decoder.mid_block.resnets.0.norm1.gamma`); throws a fastar::Error naming the file otherwise.
WanVaeNameLayout detect_wan_vae_layout(const Checkpoint& checkpoint);

// The config implied by the checkpoint's shapes (base_dim from the first conv); throws when it is not
// a Wan2.1 VAE (e.g. Wan2.2's z_dim 48 VAE).
WanVaeConfig infer_wan_vae_config(const Checkpoint& checkpoint);

// Loads and checks every decoder tensor (names, shapes, float dtypes), converts to fp32 and packs.
WanVaeDecoderWeights load_wan_vae_decoder_weights(const Checkpoint& checkpoint);
WanVaeDecoderWeights load_wan_vae_decoder_weights(const std::string& path);

// Every decoder checkpoint name in `layout`, in registration order (108 for the real model).
std::vector<std::string> wan_vae_tensor_names(const WanVaeConfig& config, WanVaeNameLayout layout);

// Deterministic random weights (tests, timing): conv weights normal(0, 1/√fan_in), biases
// normal(0, 0.05), gammas 1 + normal(0, 0.1).
WanVaeDecoderWeights random_wan_vae_decoder_weights(const WanVaeConfig& config, uint64_t seed);

// The weights under `layout` names, fp32, for writing with write_safetensors.
std::vector<std::pair<std::string, Tensor>> wan_vae_weights_to_named(const WanVaeDecoderWeights& weights,
                                                                     WanVaeNameLayout layout);

}  // namespace fastar
