// The GPU backend of a Session (session_backend.h): the bf16 DiT in CUDA graphs, the policy built
// from the same PolicySpec as the CPU's (cuda_policy_factories.h), the Self-Forcing loop on the
// device. It owns the CUDA stream, the device copy of the weights and the graph cache.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/model/cuda/wan_dit_cuda.h"
#include "fastar/rollout/cuda/self_forcing_cuda.h"
#include "fastar/session/cuda/cuda_policy_factories.h"
#include "fastar/session/session_backend.h"

namespace fastar {

namespace {

class CudaStream {
 public:
  CudaStream() { FASTAR_CHECK(cudaStreamCreate(&stream_) == cudaSuccess, "could not create a CUDA stream"); }
  ~CudaStream() { cudaStreamDestroy(stream_); }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class CudaSelfForcingBackend : public SessionBackend {
 public:
  CudaSelfForcingBackend(const LoadedModel& model, const PolicySpec& spec, const RolloutConfig& config, const WanPrompt& prompt,
                         int64_t frames, bool fit_to_memory)
      : model_(model), spec_(spec), device_(cuda::describe_cuda_device()) {
    const WanConfig& c = model.config();
    sizes_.chunk_frames = config.schedule.frames_per_chunk / c.patch_t;
    sizes_.tokens_per_frame = (config.latent_height / c.patch_h) * (config.latent_width / c.patch_w);
    const bool bounded = spec.windowed;
    FASTAR_CHECK(bounded || frames > 0 || fit_to_memory,
                 "--device cuda: policy '" << spec.name() << "' keeps every frame and its GPU memory is preallocated: "
                                           "give the number of frames (--frames), or use a bounded policy (window, +window)");
    sizes_.total_frames = std::max(frames / c.patch_t, sizes_.chunk_frames);
    gpu_ = std::make_unique<cuda::CudaWanModel>(model.dit(), sizes_.chunk_frames * sizes_.tokens_per_frame, stream_.get());
    if (!bounded && fit_to_memory) fit_capacity(frames);
    build_policy();
    gpu_->set_prompt(prompt);
    rollout_ = std::make_unique<cuda::CudaSelfForcingRollout>(*gpu_, *policy_.memory, config);
  }
  ~CudaSelfForcingBackend() override {
    rollout_.reset();
    policy_ = {};
    gpu_.reset();
  }

  Tensor next_chunk(const Tensor* actions, bool commit) override { return rollout_->next_chunk(actions, commit); }
  void commit(const Tensor& x0, int64_t frame_start, const Tensor* actions) override { rollout_->commit(x0, frame_start, actions); }
  void set_prompt(const WanPrompt& prompt) override { gpu_->set_prompt(prompt); }
  void rebuild_memory() override {
    FASTAR_CHECK(cudaStreamSynchronize(stream_.get()) == cudaSuccess, "CUDA error before rebuilding the memory");
    gpu_->set_cross_attention(nullptr);
    rollout_->set_memory(*placeholder());  // nothing may point at the old memory while it is freed
    policy_ = {};
    build_policy();
    rollout_->set_memory(*policy_.memory);
  }
  void restart(uint64_t seed) override {
    rebuild_memory();
    rollout_->restart(seed);
  }
  MemoryStats stats() const override {
    MemoryStats s = policy_.memory->summary();
    if (policy_.cross) s.cross_density = policy_.cross->summary().density;
    return s;
  }
  std::string report() const override {
    return policy_.memory->report() + (policy_.cross ? policy_.cross->report() : "");
  }
  std::string describe() const override { return policy_.memory->describe() + " on " + device_; }
  int64_t memory_in_use() const override {
    size_t free_bytes = 0, total_bytes = 0;
    FASTAR_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess, "cudaMemGetInfo failed");
    return static_cast<int64_t>(total_bytes - free_bytes);
  }
  Tensor to_device(const Tensor& host) const override { return cuda::to_device(host); }  // a synchronous copy
  int64_t frame_capacity() const override { return capacity_frames_ >= 0 ? capacity_frames_ * model_.config().patch_t : -1; }

 private:
  void build_policy() {
    policy_ = cuda::make_cuda_policy(model_.dit(), spec_, sizes_);
    gpu_->set_cross_attention(policy_.cross.get());
  }
  // A dense cache holds every frame: preallocate what fits (leaving 2 GiB of headroom) and end there.
  void fit_capacity(int64_t frames) {
    size_t free_bytes = 0, total_bytes = 0;
    FASTAR_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess, "cudaMemGetInfo failed");
    RolloutSizes one = sizes_;
    one.total_frames = sizes_.chunk_frames;
    const int64_t chunk_bytes = std::max<int64_t>(1, policy_memory_bytes(model_.config(), spec_, one, 2));
    const int64_t headroom = int64_t{2} << 30;
    const int64_t fit_chunks = std::max<int64_t>(0, (static_cast<int64_t>(free_bytes) - headroom) / chunk_bytes);
    FASTAR_CHECK(fit_chunks >= 1, spec_.name() << ": not even one chunk's memory fits on the GPU ("
                                               << free_bytes / 1e9 << " GB free)");
    const int64_t capacity = std::min(sizes_.total_frames, fit_chunks * sizes_.chunk_frames);
    if (capacity < sizes_.total_frames)
      std::fprintf(stderr, "%s: the memory of %lld latent frames needs %.1f GB; %.1f GB are free, so the stream ends at %lld\n",
                   spec_.name().c_str(), static_cast<long long>(frames),
                   static_cast<double>(chunk_bytes) * sizes_.total_frames / sizes_.chunk_frames / 1e9, free_bytes / 1e9,
                   static_cast<long long>(capacity * model_.config().patch_t));
    sizes_.total_frames = capacity;
    capacity_frames_ = capacity;
  }
  // An empty dense cache of one chunk, so the rollout never points at freed memory during a rebuild.
  cuda::CudaCrossFrameMemory* placeholder() {
    if (!placeholder_) {
      RolloutSizes one = sizes_;
      one.total_frames = sizes_.chunk_frames;
      PolicySpec dense;
      placeholder_ = cuda::make_cuda_kv_cache(model_.dit(), dense, one);
    }
    return placeholder_.get();
  }

  const LoadedModel& model_;
  PolicySpec spec_;
  std::string device_;
  RolloutSizes sizes_;
  int64_t capacity_frames_ = -1;
  CudaStream stream_;
  std::unique_ptr<cuda::CudaWanModel> gpu_;
  cuda::CudaPolicy policy_;
  std::unique_ptr<cuda::CudaCrossFrameMemory> placeholder_;
  std::unique_ptr<cuda::CudaSelfForcingRollout> rollout_;
};

}  // namespace

std::unique_ptr<SessionBackend> make_cuda_backend(const LoadedModel& model, const PolicySpec& spec, const RolloutConfig& config,
                                                  const WanPrompt& prompt, int64_t frames, bool fit_to_memory) {
  return std::make_unique<CudaSelfForcingBackend>(model, spec, config, prompt, frames, fit_to_memory);
}

}  // namespace fastar
