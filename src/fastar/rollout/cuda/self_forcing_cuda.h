// The Self-Forcing chunkwise rollout on the GPU: the loop of rollout/self_forcing.h with the DiT,
// the sampler update and the KV cache on the device. Noise comes from the same counter-based
// generator keyed by (seed, chunk, step), so its frames can be compared with the CPU rollout's.
#pragma once

#include <memory>
#include <string>

#include "fastar/model/cuda/wan_dit_cuda.h"
#include "fastar/rollout/self_forcing.h"

namespace fastar::cuda {

// The CUDA device fastar will run on, as one line ("NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB");
// throws fastar::Error when no device is visible.
std::string describe_cuda_device();

class CudaSelfForcingRollout {
 public:
  // memory: the cross-frame memory policy sized for the run (src/fastar/attention/cuda/).
  CudaSelfForcingRollout(CudaWanModel& model, CudaCrossFrameMemory& memory, RolloutConfig config);

  // Next chunk's clean latent x₀ on the host, [out_dim, frames_per_chunk, H, W]. actions: the
  // chunk's per-frame actions [frames_per_chunk, action_dim] for models with action_dim > 0. The same
  // arguments in the same order as SelfForcingRollout::next_chunk.
  Tensor next_chunk(const Tensor* actions = nullptr, bool commit = true);
  // The clean context pass alone for host x0 of the chunk that started at frame_start (re-cache).
  void commit(const Tensor& x0, int64_t frame_start, const Tensor* actions = nullptr);
  void set_memory(CudaCrossFrameMemory& memory) { memory_ = &memory; }
  void restart(uint64_t seed) {
    config_.seed = seed;
    next_frame_ = 0;
  }
  int64_t frames_generated() const { return next_frame_; }

 private:
  CudaWanModel& model_;
  CudaCrossFrameMemory* memory_;
  RolloutConfig config_;
  std::vector<float> timesteps_;
  int64_t next_frame_ = 0;
  std::shared_ptr<Storage> x_, x0_, v_, noise_;  // device fp32 [C, F, H, W]
  std::vector<float> host_noise_;
};

}  // namespace fastar::cuda
