// The Wan2.1 diffusion transformer (wan-spec.md §3), config-driven, fp32 on the CPU.
//
// One forward takes a chunk of latent frames with one timestep per frame, the prompt, and the
// cross-frame memory, and returns the flow prediction v ≈ ε − x₀ for the chunk.
#pragma once

#include <string>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/cross_attention_policy.h"
#include "fastar/model/cross_frame_memory.h"
#include "fastar/model/wan_config.h"
#include "fastar/model/wan_weights.h"

namespace fastar {

// A prompt prepared once and reused for every forward: the text MLP output and each layer's
// cross-attention keys and values (normed), [text_rows, dim] each.
struct WanPrompt {
  int64_t rows = 0;
  int64_t valid_rows = 0;  // rows before the trailing all-zero padding rows of the context (pad_prompt_context)
  uint64_t id = 0;         // unique per prepare_prompt() call: keys per-prompt caches (AnnCA's codes)
  std::vector<Tensor> cross_k;  // per layer
  std::vector<Tensor> cross_v;  // per layer
};

struct WanForwardArgs {
  const Tensor* latent = nullptr;         // [in_dim, frames, height, width] fp32
  const std::vector<float>* timesteps = nullptr;  // [frames], one per latent frame (first of each temporal patch is used)
  const WanPrompt* prompt = nullptr;
  const Tensor* actions = nullptr;        // [frames, action_dim] when config.action_dim > 0, else unused
  int64_t frame_start = 0;                // global latent-frame index of the chunk's first frame
  // Cross-frame memory; nullptr = the call attends only to its own tokens.
  CrossFrameMemory* memory = nullptr;
  bool commit = false;                    // forwarded to the memory
  // Cross-attention to the prompt; nullptr = dense over every prompt row.
  CrossAttentionPolicy* cross_attention = nullptr;
  // Only without memory: chunk-causal mask over this call's frames, in latent frames (0 = bidirectional).
  int64_t causal_chunk_frames = 0;
};

class WanModel {
 public:
  WanModel(WanConfig config, WanWeights weights);

  // Loads a model from a folder (config.json + safetensors, single or sharded) or from a
  // .safetensors / .safetensors.index.json file with config.json beside it.
  static WanModel load(const std::string& path);

  const WanConfig& config() const { return config_; }
  const WanWeights& weights() const { return weights_; }

  // context: [rows, text_dim] prompt embedding (umT5 output). Rows are used as given; padding to
  // text_len is the caller's choice (pad_prompt_context).
  WanPrompt prepare_prompt(const Tensor& context) const;

  // Returns the flow prediction, [out_dim, frames, height, width].
  Tensor forward(const WanForwardArgs& args) const;

  // The time (+ action) embedding of each token-frame: e [frames, dim] = MLP(sinusoid(t)) (+ action
  // MLP), e0 [frames, 6·dim] = Linear(SiLU(e)). actions: [frames·patch_t, action_dim] or nullptr.
  void time_embedding(const std::vector<float>& frame_timesteps, const Tensor* actions, std::vector<float>* e,
                      std::vector<float>* e0) const;

 private:
  WanConfig config_;
  WanWeights weights_;
};

// Zero-pads (or rejects if longer) a prompt embedding to text_len rows, as Wan's text encoder does.
// A NaN or an infinity in it is a fastar::Error naming `source` and the value's row and column.
Tensor pad_prompt_context(const Tensor& context, const WanConfig& config, const std::string& source);

// Finds the config and weight files of a model path (see WanModel::load).
struct ModelFiles {
  std::string config;
  std::string weights;
};
ModelFiles locate_model_files(const std::string& path);

}  // namespace fastar
