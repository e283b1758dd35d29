// GPU check of the whole DiT and rollout (run by tools/device_check.sh, never in CI):
//   1. the CUDA forward of the golden model against diffusers' output and the CPU forward;
//   2. the CUDA Self-Forcing rollout against the CPU rollout, frame by frame (dense and window);
//   --bench: one chunk forward at Wan2.1-1.3B shapes with 0/21/60/120 cached latent frames.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fastar/attention/cuda/kv_cache_cuda.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/core/safetensors.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/model/cuda/wan_dit_cuda.h"
#include "fastar/model/wan_dit.h"
#include "fastar/model/wan_weights.h"
#include "fastar/rollout/cuda/self_forcing_cuda.h"
#include "fastar/rollout/noise.h"
#include "fastar/rollout/self_forcing.h"

using namespace fastar;

namespace {

// bf16 weights and activations against fp32: the golden README measured 0.55% for diffusers' own
// bf16 run; allow 3% of the output range. Rollouts compound the steps: 5% per chunk.
constexpr double kForwardTolerance = 3e-2;
constexpr double kRolloutTolerance = 5e-2;

double rel_err(const float* a, const float* b, int64_t n) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    ref = std::max(ref, std::fabs(double(b[i])));
  }
  return diff / std::max(ref, 1e-30);
}

double psnr(const float* a, const float* b, int64_t n) {  // signals in [-1, 1]: peak-to-peak 2
  double mse = 0;
  for (int64_t i = 0; i < n; ++i) mse += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  mse /= n;
  return 10 * std::log10(4.0 / std::max(mse, 1e-30));
}

int failures = 0;
void report(const std::string& what, double err, double tol, const std::string& extra = "") {
  const bool ok = err <= tol && std::isfinite(err);
  failures += !ok;
  std::printf("%s %-52s rel err %.3g (tol %.3g) %s\n", ok ? "PASS" : "FAIL", what.c_str(), err, tol, extra.c_str());
}

int check(const std::string& root) {
  const std::string golden = root + "/tests/model/golden/wan_tiny_original";
  WanModel model = WanModel::load(golden);
  Checkpoint io = Checkpoint::open(root + "/tests/model/golden/wan_tiny_io.safetensors");
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  for (const char* name : {"case0", "case1"}) {
    const std::string p = name;
    Tensor latent = io.tensor(p + ".latent").to_f32(), context = io.tensor(p + ".context").to_f32();
    Tensor expected = io.tensor(p + ".output").to_f32();
    Tensor t = io.tensor(p + ".timesteps").to_f32();
    std::vector<float> ts(t.data<float>(), t.data<float>() + t.numel());
    WanPrompt prompt = model.prepare_prompt(context);
    cuda::CudaWanModel gpu(model, 4096, stream);
    gpu.set_prompt(prompt);
    Tensor lat_dev = cuda::to_device(latent);
    Tensor out_dev = cuda::to_device(Tensor::zeros(expected.shape()));
    gpu.forward(out_dev.data<float>(), lat_dev.data<float>(), latent.size(1), latent.size(2), latent.size(3), ts, 0, nullptr,
                false);
    cudaStreamSynchronize(stream);
    Tensor out = cuda::to_host(out_dev);
    report("golden forward vs diffusers (" + p + ")", rel_err(out.data<float>(), expected.data<float>(), out.numel()),
           kForwardTolerance);
  }

  // Rollouts: CPU (fp32) vs CUDA (bf16), same seeds and noise streams.
  const WanConfig& c = model.config();
  for (int policy = 0; policy < 2; ++policy) {
    RolloutConfig rc;
    rc.seed = 5;
    rc.latent_height = 16;
    rc.latent_width = 24;
    const int chunks = 4;
    const int64_t tpf = (rc.latent_height / c.patch_h) * (rc.latent_width / c.patch_w);
    Tensor context = Tensor::zeros({c.text_len, c.text_dim});
    std::vector<float> values(static_cast<size_t>(7 * c.text_dim));
    gaussian_noise(values.data(), static_cast<int64_t>(values.size()), 99, 1);
    std::memcpy(context.data<float>(), values.data(), values.size() * 4);
    WanPrompt prompt = model.prepare_prompt(context);
    std::unique_ptr<CrossFrameMemory> memory;
    if (policy == 0) memory = std::make_unique<DenseMemory>(c.num_layers, c.num_heads, c.head_dim());
    else memory = std::make_unique<WindowMemory>(c.num_layers, c.num_heads, c.head_dim(), 3, 3);
    SelfForcingRollout cpu(model, *memory, prompt, rc);
    cuda::CudaWanModel gpu(model, 3 * tpf, stream);
    gpu.set_prompt(prompt);
    cuda::CudaKvCache cache(c.num_layers, c.num_heads, c.head_dim(), tpf, policy == 0 ? chunks * 3 : 3 + 3 + 3, policy == 0 ? -1 : 3, 3);
    cuda::CudaSelfForcingRollout rollout(gpu, cache, rc);
    for (int chunk = 0; chunk < chunks; ++chunk) {
      Tensor a = cpu.next_chunk(), b = rollout.next_chunk();
      char extra[64];
      std::snprintf(extra, sizeof extra, "PSNR %.1f dB", psnr(b.data<float>(), a.data<float>(), a.numel()));
      report(std::string(policy ? "window(3)+sink(3)" : "dense") + " rollout chunk " + std::to_string(chunk) + " CUDA vs CPU",
             rel_err(b.data<float>(), a.data<float>(), a.numel()), kRolloutTolerance, extra);
    }
    // 4 denoising forwards + 1 clean pass per chunk share one shape: all but the first replay a graph.
    report(std::string(policy ? "window" : "dense") + " rollout: forwards replayed from CUDA graphs",
           gpu.graph_replays() >= chunks * 3 ? 0.0 : 1.0, 0.0, "replays " + std::to_string(gpu.graph_replays()));
  }

  // A model with per-frame actions (fastar's extension): random weights, action_dim 5, a different
  // one-hot action per frame; CUDA rollout (device time + action embedding) against the CPU one.
  {
    WanConfig ac = c;
    ac.action_dim = 5;
    WanModel action_model(ac, random_wan_weights(ac, 11));
    RolloutConfig rc;
    rc.seed = 9;
    rc.latent_height = 16;
    rc.latent_width = 24;
    const int64_t tpf = (rc.latent_height / ac.patch_h) * (rc.latent_width / ac.patch_w);
    Tensor context = Tensor::zeros({ac.text_len, ac.text_dim});
    gaussian_noise(context.data<float>(), 5 * ac.text_dim, 42, 0);
    WanPrompt prompt = action_model.prepare_prompt(context);
    DenseMemory memory(ac.num_layers, ac.num_heads, ac.head_dim());
    SelfForcingRollout cpu(action_model, memory, prompt, rc);
    cuda::CudaWanModel gpu(action_model, 3 * tpf, stream);
    gpu.set_prompt(prompt);
    cuda::CudaKvCache cache(ac.num_layers, ac.num_heads, ac.head_dim(), tpf, 9);
    cuda::CudaSelfForcingRollout rollout(gpu, cache, rc);
    for (int chunk = 0; chunk < 3; ++chunk) {
      Tensor actions = Tensor::zeros({3, 5});
      for (int f = 0; f < 3; ++f) actions.data<float>()[f * 5 + (chunk * 3 + f) % 5] = 1.0f;
      Tensor a = cpu.next_chunk(&actions), b = rollout.next_chunk(true, &actions);
      char extra[64];
      std::snprintf(extra, sizeof extra, "PSNR %.1f dB", psnr(b.data<float>(), a.data<float>(), a.numel()));
      report("action model rollout chunk " + std::to_string(chunk) + " CUDA vs CPU",
             rel_err(b.data<float>(), a.data<float>(), a.numel()), kRolloutTolerance, extra);
    }
  }
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "ALL PASSED", failures);
  return failures ? 1 : 0;
}

int bench(const std::string& root) {
  WanConfig c = WanConfig::load(root + "/configs/wan2.1-t2v-1.3b/config.json");
  std::printf("generating random Wan2.1-1.3B weights...\n");
  std::fflush(stdout);
  WanModel model(c, random_wan_weights(c, 1));
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  const int64_t frames = 3, h = 60, w = 104, tpf = 30 * 52;
  cuda::CudaWanModel gpu(model, frames * tpf, stream);
  gpu.set_prompt(model.prepare_prompt(Tensor::zeros({c.text_len, c.text_dim})));
  Tensor latent = Tensor::zeros({c.in_dim, frames, h, w});
  gaussian_noise(latent.data<float>(), latent.numel(), 3, 0);
  Tensor lat = cuda::to_device(latent), out = cuda::to_device(Tensor::zeros(latent.shape()));
  std::printf("| cached latent frames | chunk forward ms, graphs (median of 10) | eager ms | min ms | KV cache GB |\n|---|---|---|---|---|\n");
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<std::pair<int64_t, std::vector<std::pair<std::string, double>>>> profiles;
  for (int64_t depth : {0, 21, 60, 120}) {
    cuda::CudaKvCache cache(c.num_layers, c.num_heads, c.head_dim(), tpf, depth + frames);
    const std::vector<float> clean(3, 0.0f), noisy(3, 937.5f);
    for (int64_t f = 0; f < depth; f += frames)
      gpu.forward(out.data<float>(), lat.data<float>(), frames, h, w, clean, f, &cache, true);
    double median[2] = {0, 0}, best = 1e30;
    for (int graphs = 1; graphs >= 0; --graphs) {
      gpu.set_graphs_enabled(graphs == 1);
      std::vector<float> ms;
      for (int r = 0; r < 13; ++r) {
        cudaEventRecord(start, stream);
        gpu.forward(out.data<float>(), lat.data<float>(), frames, h, w, noisy, depth, &cache, false);
        cudaEventRecord(stop, stream);
        cudaEventSynchronize(stop);
        float t = 0;
        cudaEventElapsedTime(&t, start, stop);
        if (r >= 3) ms.push_back(t);
      }
      std::sort(ms.begin(), ms.end());
      median[graphs] = ms[ms.size() / 2];
      if (graphs) best = ms[0];
    }
    gpu.set_graphs_enabled(true);
    std::printf("| %ld | %.1f | %.1f | %.1f | %.2f |\n", depth, median[1], median[0], best, cache.bytes() / 1e9);
    std::fflush(stdout);
    if (depth == 0 || depth == 120) {
      gpu.set_profiling(true);
      gpu.forward(out.data<float>(), lat.data<float>(), frames, h, w, noisy, depth, &cache, false);
      profiles.emplace_back(depth, gpu.take_profile());
      gpu.set_profiling(false);
    }
  }
  for (const auto& [depth, stages] : profiles) {
    double total = 0;
    for (const auto& [stage, ms] : stages) total += ms;
    std::printf("\nstages of one eager forward at %ld cached frames (GPU ms, all 30 layers; event gaps):\n", depth);
    for (const auto& [stage, ms] : stages) std::printf("  %-22s %8.2f ms  %5.1f%%\n", stage.c_str(), ms, 100 * ms / total);
    std::printf("  %-22s %8.2f ms\n", "total", total);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string root = FASTAR_SOURCE_DIR;
  try {
    if (argc > 1 && std::string(argv[1]) == "--bench") return bench(root);
    return check(root);
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
