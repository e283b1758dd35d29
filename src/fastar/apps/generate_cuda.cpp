// `fastar generate --device cuda`: the Self-Forcing rollout on the GPU.
#ifdef FASTAR_HAVE_CUDA

#include <cstdio>
#include <functional>

#include "fastar/core/error.h"
#include "fastar/attention/cuda/kv_cache_cuda.h"
#include "fastar/rollout/cuda/self_forcing_cuda.h"

namespace fastar::app {

void run_cuda_rollout(const WanModel& model, const WanPrompt& prompt, const RolloutConfig& config, bool window_policy,
                      int64_t window, int64_t sink, int64_t chunks,
                      const std::function<const Tensor*(int64_t chunk)>& chunk_actions,
                      const std::function<void(const Tensor&, int64_t, int64_t)>& on_chunk) {
  std::fprintf(stderr, "device: %s\n", cuda::describe_cuda_device().c_str());
  const WanConfig& c = model.config();
  const int64_t chunk_frames = config.schedule.frames_per_chunk / c.patch_t;
  const int64_t tpf = (config.latent_height / c.patch_h) * (config.latent_width / c.patch_w);
  cudaStream_t stream;
  FASTAR_CHECK(cudaStreamCreate(&stream) == cudaSuccess, "could not create a CUDA stream");
  {
    cuda::CudaWanModel gpu(model, chunk_frames * tpf, stream);
    gpu.set_prompt(prompt);
    // Preallocated: dense holds every frame of the run (the chunk being denoised is staged behind
    // the committed ones); the window holds sink + window + the chunk being written.
    const int64_t capacity = window_policy ? sink + window + chunk_frames : chunks * chunk_frames;
    cuda::CudaKvCache cache(c.num_layers, c.num_heads, c.head_dim(), tpf, capacity, window_policy ? window : -1,
                            window_policy ? sink : 0);
    cuda::CudaSelfForcingRollout rollout(gpu, cache, config);
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      on_chunk(rollout.next_chunk(/*commit=*/chunk + 1 < chunks, chunk_actions(chunk)), cache.bytes(), cache.frames());
  }
  cudaStreamDestroy(stream);
}

}  // namespace fastar::app

#endif  // FASTAR_HAVE_CUDA
