#include "fastar/rollout/cuda/self_forcing_cuda.h"

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/ops.h"
#include "fastar/rollout/noise.h"

namespace fastar::cuda {

namespace {
void check(cudaError_t status, const char* what) {
  FASTAR_CHECK(status == cudaSuccess, "CUDA error in " << what << ": " << cudaGetErrorString(status));
}
}  // namespace

std::string describe_cuda_device() {
  FASTAR_CHECK(device_count() > 0, "--device cuda: no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), "
                                   "or use --device cpu");
  int index = 0;
  cudaGetDevice(&index);
  return device_description(index);
}

CudaSelfForcingRollout::CudaSelfForcingRollout(CudaWanModel& model, CudaCrossFrameMemory& memory, RolloutConfig config)
    : model_(model), memory_(&memory), config_(std::move(config)) {
  validate_rollout_config(model_.config(), config_);
  timesteps_ = config_.schedule.timesteps();
  const WanConfig& c = model_.config();
  const int64_t bytes = c.in_dim * config_.schedule.frames_per_chunk * config_.latent_height * config_.latent_width * 4;
  const std::string hint = "use a smaller --latent-size";
  x_ = allocate_device(bytes, hint);
  x0_ = allocate_device(bytes, hint);
  v_ = allocate_device(bytes, hint);
  noise_ = allocate_device(bytes, hint);
  host_noise_.resize(static_cast<size_t>(bytes / 4));
}

Tensor CudaSelfForcingRollout::next_chunk(const Tensor* actions, bool commit) {
  const WanConfig& c = model_.config();
  const int64_t frames = config_.schedule.frames_per_chunk;
  const int64_t chunk = next_frame_ / frames;
  const int64_t count = static_cast<int64_t>(host_noise_.size());
  const double total = static_cast<double>(config_.schedule.num_train_timesteps);
  cudaStream_t st = model_.stream();
  auto* x = static_cast<float*>(x_->data());
  auto* x0 = static_cast<float*>(x0_->data());
  auto* v = static_cast<float*>(v_->data());
  auto* noise = static_cast<float*>(noise_->data());

  gaussian_noise(host_noise_.data(), count, config_.seed, rollout_noise_stream(chunk, 0));
  check(cudaMemcpyAsync(x, host_noise_.data(), static_cast<size_t>(count) * 4, cudaMemcpyHostToDevice, st), "upload noise");
  for (size_t step = 0; step < timesteps_.size(); ++step) {
    const std::vector<float> t(static_cast<size_t>(frames), timesteps_[step]);
    model_.forward(v, x, frames, config_.latent_height, config_.latent_width, t, next_frame_, memory_, false, actions);
    const float sigma = static_cast<float>(timesteps_[step] / total);
    if (step + 1 < timesteps_.size()) {
      check(cudaStreamSynchronize(st), "sync before noise upload");  // host_noise_ is reused
      gaussian_noise(host_noise_.data(), count, config_.seed, rollout_noise_stream(chunk, static_cast<int64_t>(step) + 1));
      check(cudaMemcpyAsync(noise, host_noise_.data(), static_cast<size_t>(count) * 4, cudaMemcpyHostToDevice, st),
            "upload noise");
      flow_step(x, x0, v, noise, sigma, static_cast<float>(timesteps_[step + 1] / total), count, st);
    } else {
      flow_step(x, x0, v, nullptr, sigma, 0.0f, count, st);
    }
  }
  if (commit) {
    const std::vector<float> t(static_cast<size_t>(frames), config_.schedule.context_noise);
    model_.forward(v, x0, frames, config_.latent_height, config_.latent_width, t, next_frame_, memory_, true, actions);
  }
  next_frame_ += frames;
  Tensor out = Tensor::zeros({c.out_dim, frames, config_.latent_height, config_.latent_width});
  check(cudaMemcpyAsync(out.raw_data(), x0, static_cast<size_t>(count) * 4, cudaMemcpyDeviceToHost, st), "download x0");
  check(cudaStreamSynchronize(st), "rollout chunk");
  return out;
}

void CudaSelfForcingRollout::commit(const Tensor& x0, int64_t frame_start, const Tensor* actions) {
  const int64_t frames = config_.schedule.frames_per_chunk;
  const int64_t count = static_cast<int64_t>(host_noise_.size());
  FASTAR_CHECK(x0.numel() == count, "CudaSelfForcingRollout::commit: x0 has " << x0.numel() << " values, a chunk " << count);
  cudaStream_t st = model_.stream();
  auto* d_x0 = static_cast<float*>(x0_->data());
  check(cudaMemcpyAsync(d_x0, x0.raw_data(), static_cast<size_t>(count) * 4, cudaMemcpyHostToDevice, st), "upload x0");
  const std::vector<float> t(static_cast<size_t>(frames), config_.schedule.context_noise);
  model_.forward(static_cast<float*>(v_->data()), d_x0, frames, config_.latent_height, config_.latent_width, t, frame_start,
                 memory_, true, actions);
  check(cudaStreamSynchronize(st), "re-cache commit");
}

}  // namespace fastar::cuda
