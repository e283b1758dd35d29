// `fastar generate --device cuda`: the Self-Forcing rollout on the GPU.
#ifdef FASTAR_HAVE_CUDA

#include <cstdio>
#include <functional>

#include "fastar/core/error.h"
#include "fastar/attention/cuda/annsa_memory_cuda.h"
#include "fastar/attention/cuda/cuda_policies.h"
#include "fastar/attention/cuda/tempcache_memory_cuda.h"
#include "fastar/rollout/cuda/self_forcing_cuda.h"

namespace fastar::app {

void run_cuda_rollout(const WanModel& model, const WanPrompt& prompt, const RolloutConfig& config,
                      const cuda::CudaPolicySpec& policy, int64_t chunks,
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
    std::unique_ptr<cuda::CudaCrossAttentionPolicy> cross = cuda::make_cuda_cross_attention(model, policy, tpf, chunk_frames);
    gpu.set_cross_attention(cross.get());
    gpu.set_prompt(prompt);
    // Preallocated for the whole run (dense) or the bound (window, tempcache with a window).
    std::unique_ptr<cuda::CudaCrossFrameMemory> memory =
        cuda::make_cuda_memory(model, policy, tpf, chunk_frames, chunks * chunk_frames);
    std::fprintf(stderr, "memory: %s\n", memory->describe().c_str());
    cuda::CudaSelfForcingRollout rollout(gpu, *memory, config);
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      on_chunk(rollout.next_chunk(/*commit=*/chunk + 1 < chunks, chunk_actions(chunk)), memory->bytes(),
               memory->cached_frames());
    auto* annsa = dynamic_cast<cuda::CudaAnnSaMemory*>(memory.get());
    const auto* tempcache = dynamic_cast<const cuda::CudaTempCacheMemory*>(annsa ? &annsa->inner() : memory.get());
    if (tempcache)
      std::fprintf(stderr, "tempcache (GPU): KV density %.4f (representatives / tokens seen), %lld merges\n",
                   tempcache->density(), static_cast<long long>(tempcache->merges()));
    std::fputs(cuda::cuda_ann_report(*memory, cross.get()).c_str(), stderr);
  }
  cudaStreamDestroy(stream);
}

}  // namespace fastar::app

#endif  // FASTAR_HAVE_CUDA
