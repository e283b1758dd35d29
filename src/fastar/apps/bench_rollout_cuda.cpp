// `fastar bench rollout --device cuda`: the GPU rollout of each policy, chunk by chunk.
#ifdef FASTAR_HAVE_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "fastar/apps/bench_rollout.h"
#include "fastar/attention/cuda/cuda_policies.h"
#include "fastar/core/error.h"
#include "fastar/rollout/cuda/self_forcing_cuda.h"

namespace fastar::app {

namespace {

int64_t device_bytes_in_use() {
  size_t free_bytes = 0, total_bytes = 0;
  FASTAR_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess, "cudaMemGetInfo failed");
  return static_cast<int64_t>(total_bytes - free_bytes);
}

}  // namespace

int64_t bench_rollout_cuda(const WanModel& model, const WanPrompt& prompt, const RolloutConfig& config,
                           const cuda::CudaPolicySpec& policy, int64_t chunks, const ChunkActions& chunk_actions,
                           const ChunkObserver& observe) {
  const WanConfig& c = model.config();
  const int64_t chunk_frames = config.schedule.frames_per_chunk / c.patch_t;
  const int64_t tpf = (config.latent_height / c.patch_h) * (config.latent_width / c.patch_w);
  cudaStream_t stream;
  FASTAR_CHECK(cudaStreamCreate(&stream) == cudaSuccess, "could not create a CUDA stream");
  int64_t ran_chunks = chunks;
  {
    cuda::CudaWanModel gpu(model, chunk_frames * tpf, stream);
    std::unique_ptr<cuda::CudaCrossAttentionPolicy> cross = cuda::make_cuda_cross_attention(model, policy, tpf, chunk_frames);
    gpu.set_cross_attention(cross.get());
    gpu.set_prompt(prompt);
    int64_t total_frames = chunks * chunk_frames;
    if (policy.policy == "dense" || policy.policy == "dense+annsa" || (policy.policy == "arl2" && policy.window < 0)) {
      // Dense holds every frame: allocate what fits (leaving 2 GiB of headroom) and stop there.
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      const int64_t dense_layers = c.num_layers - static_cast<int64_t>(c.hybrid_layers.size());
      int64_t frame_bytes = std::max<int64_t>(1, 2 * dense_layers * tpf * c.dim * 2);
      if (policy.policy == "dense+annsa") {  // + AnnSA's bucket-sorted copy of each sparse layer's cache (k, v, bias)
        int64_t sparse_layers = 0;
        for (int64_t layer = 0; layer < c.num_layers; ++layer) sparse_layers += policy.annsa.schedule.layer_is_sparse(layer);
        frame_bytes += sparse_layers * tpf * (2 * c.dim * 2 + 4 * c.num_heads);
      }
      const int64_t headroom = int64_t{2} << 30;
      const int64_t fit = std::max<int64_t>(0, (static_cast<int64_t>(free_bytes) - headroom) / frame_bytes);
      const int64_t capacity = std::min(total_frames, fit / chunk_frames * chunk_frames);
      FASTAR_CHECK(capacity >= chunk_frames, policy.policy << ": not even one chunk's KV cache fits on the GPU");
      if (capacity < total_frames) {
        std::fprintf(stderr, "%s: the KV cache of %lld latent frames needs %.1f GB; %.1f GB are free, so the rollout "
                             "stops at %lld latent frames (%lld video frames)\n",
                     policy.policy.c_str(), static_cast<long long>(total_frames), total_frames * frame_bytes / 1e9,
                     free_bytes / 1e9, static_cast<long long>(capacity),
                     static_cast<long long>(video_frames_of(capacity, model.config().in_dim == 3 ? 1 : 4)));
        ran_chunks = capacity / chunk_frames;
        total_frames = capacity;
      }
    }
    std::unique_ptr<cuda::CudaCrossFrameMemory> memory =
        cuda::make_cuda_memory(model, policy, tpf, chunk_frames, total_frames);
    cuda::CudaSelfForcingRollout rollout(gpu, *memory, config);
    int64_t peak = 0;
    for (int64_t chunk = 0; chunk < ran_chunks; ++chunk) {
      const auto start = std::chrono::steady_clock::now();
      rollout.next_chunk(/*commit=*/true, chunk_actions(chunk));  // every chunk committed (PyTorch's too)
      ChunkSample s;
      s.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      s.chunk = chunk;
      s.latent_frames = (chunk + 1) * config.schedule.frames_per_chunk;
      s.mem_in_use = device_bytes_in_use();
      peak = std::max(peak, s.mem_in_use);
      s.mem_peak = peak;
      s.cache_bytes = memory->bytes();
      if (!observe(s)) break;
    }
    std::fputs(cuda::cuda_ann_report(*memory, cross.get()).c_str(), stderr);
  }
  cudaStreamDestroy(stream);
  return ran_chunks * config.schedule.frames_per_chunk;
}

}  // namespace fastar::app

#endif  // FASTAR_HAVE_CUDA
