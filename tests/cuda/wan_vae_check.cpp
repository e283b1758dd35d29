// GPU check of the Wan2.1 VAE decoder (pipeline-spec.md §2) and its cuDNN convolutions (run by hand
// or from tools/device_check.sh; never in CI):
//   1. ConvRunner (kernels/cuda/cudnn_conv.h) against cpu::conv3d_channels_last over kernel shapes
//      (kernel_t 1/3, kernel_hw 1/2/3), bias / residual / ReLU on and off, odd sizes, on each path: the
//      fastest (graph API allowed), the legacy API with cuDNN's fused epilogue, the legacy API with
//      fastar's separate one (and cuBLASLt for the pointwise shapes); negative control: a time-reversed
//      kernel must fail.
//   2. CudaWanVaeStream against the CPU WanVaeStream (fp32) on the narrow golden topology (base_dim 8,
//      tests/model/golden/wan_vae_tiny_original.safetensors, and random weights at another frame size),
//      chunked {whole, 1+2+3, 1+1+…, 3+3} with latents_per_pass 1 and 0; the uint8 frames of
//      decode_chunk against the CPU's frames rounded as video_frame_to_rgb does; the cache's slots and
//      size. Negative control: the last chunk decoded after another clip's history (so with other
//      cached contexts) must exceed the tolerance.
//   --bench: the real decoder (base_dim 96, random weights) at 480×832 (latent 60×104), streaming
//      chunks of 3 latents: ms per chunk, video frames/s, memory (cache, working buffers, cudaMemGetInfo),
//      for latents_per_pass 1 and 0; the largest convolutions alone in TFLOP/s. Compare with
//      tools/bench_vae_torch.py (diffusers AutoencoderKLWan, bf16) in the same device call.
//   --plans with --bench: also print cuDNN's algorithm choice per convolution shape.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check_util.h"
#include "fastar/core/dtype.h"
#include "fastar/core/safetensors.h"
#include "fastar/kernels/cpu/conv3d_channels_last.h"
#include "fastar/kernels/cuda/cudnn_conv.h"
#include "fastar/model/cuda/wan_vae_decoder_cuda.h"
#include "fastar/model/wan_vae_decoder.h"
#include "fastar/model/wan_vae_weights.h"
#include "fastar/rollout/video_frame.h"

using namespace fastar;

namespace {

// One conv with bf16-exact inputs and weights against the fp64-accumulated reference: what remains
// is cuDNN's fp32 summation order and the bf16 rounding of the output (2^-9 relative, twice when the
// epilogue runs separately: conv output, then + bias + residual). 1% of max |ref| is 2.5× that.
constexpr double kConvTolerance = 1e-2;  // max |gpu − cpu| / max |cpu|
// The whole decoder, bf16 weights and activations (the residual stream too) against fp32 through
// ~30 layers with random weights; both norms of the error are gated. Measured on an H200 (cuDNN 9.19,
// both test decoders, all chunkings, latents_per_pass 1 and 0): max 0.017–0.024, rms 0.013–0.015; the
// error moves with cuDNN's algorithm choice (summation order), hence 2× room on the max and on the rms.
// A decoder that loses its cached contexts is off by > 1 on both (the negative controls below).
constexpr double kDecoderTolerance = 5e-2;     // max |gpu − cpu| / max |cpu|
constexpr double kDecoderRmsTolerance = 3e-2;  // ‖gpu − cpu‖₂ / ‖cpu‖₂

int failures = 0;

void report(bool ok, const std::string& what, const std::string& detail) {
  failures += !ok;
  std::printf("%s %-64s %s\n", ok ? "PASS" : "FAIL", what.c_str(), detail.c_str());
}

struct ErrorStats {
  double max_rel = 0, rms_rel = 0;  // max |a − b| / max |b|, ‖a − b‖₂ / ‖b‖₂
  bool finite = true;
};

ErrorStats compare(const float* a, const float* b, int64_t n) {
  double max_diff = 0, max_ref = 0, sq_diff = 0, sq_ref = 0;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i])) finite = false;
    const double d = std::fabs(double(a[i]) - b[i]);
    max_diff = std::max(max_diff, d);
    max_ref = std::max(max_ref, std::fabs(double(b[i])));
    sq_diff += d * d;
    sq_ref += double(b[i]) * b[i];
  }
  return {max_diff / std::max(max_ref, 1e-30), std::sqrt(sq_diff / std::max(sq_ref, 1e-30)), finite};
}

std::string describe(const ErrorStats& e, double tol, double rms_tol = 0) {
  char text[200];
  if (rms_tol > 0)
    std::snprintf(text, sizeof text, "max rel err %.3g (tol %.3g), rms rel err %.3g (tol %.3g)%s", e.max_rel, tol,
                  e.rms_rel, rms_tol, e.finite ? "" : ", NON-FINITE");
  else
    std::snprintf(text, sizeof text, "max rel err %.3g (tol %.3g), rms rel err %.3g%s", e.max_rel, tol, e.rms_rel,
                  e.finite ? "" : ", NON-FINITE");
  return text;
}

bool within_decoder_tolerance(const ErrorStats& e) {
  return e.finite && e.max_rel <= kDecoderTolerance && e.rms_rel <= kDecoderRmsTolerance;
}

std::vector<float> random_bf16_values(int64_t n, float scale, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = round_to_bf16(scale * normal(rng));
  return v;
}

std::vector<uint16_t> to_bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

std::vector<float> from_bf16_bits(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_f32(v[i]);
  return out;
}

// ---- 1. ConvRunner against the CPU reference --------------------------------------------------------

struct ConvCase {
  int64_t frames_in, height, width, in_channels, out_channels;
  int kernel_t, kernel_hw, pad_hw;
  bool bias, residual, relu;
};

std::string case_name(const ConvCase& c) {
  char text[160];
  std::snprintf(text, sizeof text, "conv %ldx%ldx%ldx%ld->%ld k%dx%d%s%s%s%s", long(c.frames_in), long(c.height),
                long(c.width), long(c.in_channels), long(c.out_channels), c.kernel_t, c.kernel_hw,
                c.pad_hw >= 0 ? (" pad" + std::to_string(c.pad_hw)).c_str() : "", c.bias ? " +bias" : "",
                c.residual ? " +res" : "", c.relu ? " relu" : "");
  return text;
}

void check_convs(cudaStream_t stream) {
  const std::vector<ConvCase> cases = {
      {5, 7, 9, 16, 24, 3, 3, -1, true, false, false},     // a causal 3³ conv: 2 context + 3 frames
      {4, 5, 11, 32, 16, 3, 3, -1, true, true, true},      // + residual + ReLU
      {3, 8, 8, 8, 8, 3, 3, -1, false, false, false},      // no epilogue at all
      {6, 4, 5, 16, 32, 3, 1, -1, true, false, false},     // time_conv (3,1,1)
      {3, 6, 10, 8, 32, 1, 3, -1, true, false, true},      // Conv2d 3×3 per frame + ReLU (TAEHV)
      {2, 13, 7, 48, 8, 1, 1, -1, true, true, false},      // pointwise + residual (proj): cuBLASLt
      {3, 5, 9, 32, 16, 1, 1, -1, false, true, false},     // pointwise, residual without bias: cuBLASLt
      {3, 5, 9, 32, 16, 1, 1, -1, true, true, true},       // pointwise + ReLU: cuDNN
      {2, 4, 6, 12, 20, 1, 1, -1, true, false, false},     // pointwise, channels not multiples of 8: cuDNN
      {2, 5, 7, 16, 64, 1, 2, 1, true, false, false},      // the sub-pixel 2×2 conv, padding 1
      {1, 9, 3, 24, 40, 1, 3, -1, false, true, false},     // one frame, residual without bias
      {3, 7, 5, 5, 7, 1, 3, -1, true, false, false},       // channels that are not multiples of 8
      {6, 30, 52, 96, 96, 3, 3, -1, true, true, false},    // a larger VAE-like conv
  };
  cuda::ConvRunner runner(stream);
  std::mt19937_64 rng(1234);
  for (const ConvCase& c : cases) {
    Conv3dParams p;
    p.frames_in = c.frames_in;
    p.height = c.height;
    p.width = c.width;
    p.in_channels = c.in_channels;
    p.out_channels = c.out_channels;
    p.kernel_t = c.kernel_t;
    p.kernel_hw = c.kernel_hw;
    p.pad_hw = c.pad_hw;
    p.activation = c.relu ? ConvActivation::Relu : ConvActivation::None;
    const int64_t n_in = p.frames_in * p.height * p.width * p.in_channels;
    const int64_t n_out = p.frames_out() * p.height_out() * p.width_out() * p.out_channels;
    const int64_t n_w = p.out_channels * p.kernel_t * p.kernel_hw * p.kernel_hw * p.in_channels;
    const auto in = random_bf16_values(n_in, 1.0f, rng);
    const auto weight = random_bf16_values(n_w, 1.0f / std::sqrt(float(n_w / p.out_channels)), rng);
    const auto bias = random_bf16_values(p.out_channels, 0.5f, rng);
    const auto residual = random_bf16_values(n_out, 1.0f, rng);
    std::vector<float> expected(static_cast<size_t>(n_out));
    cpu::conv3d_channels_last(p, in.data(), weight.data(), c.bias ? bias.data() : nullptr,
                              c.residual ? residual.data() : nullptr, expected.data());

    DeviceBuffer<uint16_t> d_in(to_bf16_bits(in)), d_w(to_bf16_bits(weight)), d_b(to_bf16_bits(bias)),
        d_r(to_bf16_bits(residual)), d_out(static_cast<size_t>(n_out));
    CHECK_CUDA(cudaDeviceSynchronize());  // the pageable uploads' last DMA, before work on the non-blocking stream
    auto bf = [](const DeviceBuffer<uint16_t>& b) { return reinterpret_cast<const __nv_bfloat16*>(b.ptr); };
    // Three paths: the fastest of everything (graph API allowed), the legacy API with cuDNN's fused
    // epilogue, the legacy API with fastar's separate epilogue.
    for (int path = 0; path < 3; ++path) {
      const bool fused = path < 2;
      const char* path_name = path == 0 ? " (fastest path)" : path == 1 ? " (legacy, fused)" : " (legacy, separate)";
      runner.set_graph_api(path == 0);
      runner.set_fused_epilogue(fused);
      CHECK_CUDA(cudaMemsetAsync(d_out.ptr, 0xff, static_cast<size_t>(n_out) * 2, stream));  // NaN poison
      try {
        runner.forward(p, bf(d_in), bf(d_w), c.bias ? bf(d_b) : nullptr, c.residual ? bf(d_r) : nullptr,
                       reinterpret_cast<__nv_bfloat16*>(d_out.ptr));
        CHECK_CUDA(cudaStreamSynchronize(stream));
      } catch (const std::exception& e) {
        report(false, case_name(c) + path_name, e.what());
        continue;
      }
      const auto got = from_bf16_bits(d_out.download());
      const ErrorStats e = compare(got.data(), expected.data(), n_out);
      report(e.finite && e.max_rel <= kConvTolerance, case_name(c) + path_name, describe(e, kConvTolerance));
      // Negative control, once: the same output against the time-reversed kernel's reference.
      if (path == 0 && c.kernel_t == 3 && c.residual) {
        std::vector<float> flipped(weight.size());
        const int64_t taps_hw = p.kernel_hw * p.kernel_hw * p.in_channels;
        for (int64_t o = 0; o < p.out_channels; ++o)
          for (int64_t t = 0; t < 3; ++t)
            std::memcpy(&flipped[static_cast<size_t>((o * 3 + t) * taps_hw)],
                        &weight[static_cast<size_t>((o * 3 + 2 - t) * taps_hw)], sizeof(float) * taps_hw);
        std::vector<float> wrong(static_cast<size_t>(n_out));
        cpu::conv3d_channels_last(p, in.data(), flipped.data(), c.bias ? bias.data() : nullptr,
                                  residual.data(), wrong.data());
        const ErrorStats w = compare(got.data(), wrong.data(), n_out);
        report(w.max_rel > kConvTolerance, case_name(c) + " vs time-reversed kernel (must differ)",
               describe(w, kConvTolerance));
      }
    }
  }
  std::printf("cuDNN plans:\n%s", runner.describe_plans().c_str());
}

// ---- 2. the decoder against the CPU reference ----------------------------------------------------

// Frames [begin, end) of latent [C, T, h, w].
Tensor latent_frames(const Tensor& latent, int64_t begin, int64_t end) {
  const int64_t C = latent.size(0), T = latent.size(1), hw = latent.size(2) * latent.size(3);
  Tensor out = Tensor::zeros({C, end - begin, latent.size(2), latent.size(3)});
  for (int64_t c = 0; c < C; ++c)
    std::memcpy(out.data<float>() + c * (end - begin) * hw, latent.data<float>() + (c * T + begin) * hw,
                sizeof(float) * (end - begin) * hw);
  return out;
}

// [C, T_i, H, W] parts -> [C, ΣT_i, H, W].
Tensor concat_frames(const std::vector<Tensor>& parts) {
  const int64_t C = parts[0].size(0), hw = parts[0].size(2) * parts[0].size(3);
  int64_t total = 0;
  for (const Tensor& p : parts) total += p.size(1);
  Tensor out = Tensor::zeros({C, total, parts[0].size(2), parts[0].size(3)});
  int64_t offset = 0;
  for (const Tensor& p : parts) {
    for (int64_t c = 0; c < C; ++c)
      std::memcpy(out.data<float>() + (c * total + offset) * hw, p.data<float>() + c * p.size(1) * hw,
                  sizeof(float) * p.size(1) * hw);
    offset += p.size(1);
  }
  return out;
}

Tensor decode_gpu_unclamped(cuda::CudaWanVaeStream& gpu, const Tensor& z, const std::vector<int64_t>& chunks) {
  std::vector<Tensor> parts;
  int64_t begin = 0;
  for (int64_t n : chunks) {
    parts.push_back(gpu.decode_chunk_unclamped(latent_frames(z, begin, begin + n)));
    begin += n;
  }
  return concat_frames(parts);
}

std::string chunking_name(const std::vector<int64_t>& chunks) {
  std::string s;
  for (int64_t n : chunks) s += (s.empty() ? "" : "+") + std::to_string(n);
  return s;
}

void check_decoder(const std::string& label, std::shared_ptr<const WanVaeDecoderWeights> weights,
                   const Tensor& latent_normalised, cudaStream_t stream) {
  const Tensor z = denormalise_wan_latent(latent_normalised);
  const int64_t T = z.size(1);
  WanVaeStream cpu(weights);
  const Tensor expected = cpu.decode_chunk_unclamped(z);  // [3, T', H, W] fp32, whole clip
  std::printf("%s: latent %s -> %s, CPU reference done\n", label.c_str(), shape_to_string(z.shape()).c_str(),
              shape_to_string(expected.shape()).c_str());

  std::vector<std::vector<int64_t>> chunkings = {{T}};
  if (T >= 3) chunkings.push_back({1, 2, T - 3});
  chunkings.push_back(std::vector<int64_t>(static_cast<size_t>(T), 1));
  if (T == 6) chunkings.push_back({3, 3});
  for (auto& c : chunkings) c.erase(std::remove(c.begin(), c.end(), 0), c.end());
  for (int64_t per_pass : {int64_t{1}, int64_t{0}}) {
    WanVaeStreamOptions options;
    options.latents_per_pass = per_pass;
    cuda::CudaWanVaeStream gpu(weights, stream, options);
    for (const auto& chunks : chunkings) {
      gpu.reset();
      const Tensor got = decode_gpu_unclamped(gpu, z, chunks);
      const std::string what = label + " chunks " + chunking_name(chunks) + " per_pass " + std::to_string(per_pass);
      if (got.shape() != expected.shape()) {
        report(false, what, "shape " + shape_to_string(got.shape()) + " vs " + shape_to_string(expected.shape()));
        continue;
      }
      const ErrorStats e = compare(got.data<float>(), expected.data<float>(), got.numel());
      report(within_decoder_tolerance(e), what, describe(e, kDecoderTolerance, kDecoderRmsTolerance));
    }
    // The stream's bookkeeping against the CPU's after the same clip.
    report(gpu.latents_decoded() == cpu.latents_decoded() && gpu.frames_decoded() == cpu.frames_decoded() &&
               gpu.cache_slots() == cpu.cache_slots() && 2 * gpu.cache_bytes() == cpu.cache_bytes(),
           label + " counters and cache per_pass " + std::to_string(per_pass),
           "latents " + std::to_string(gpu.latents_decoded()) + "/" + std::to_string(cpu.latents_decoded()) +
               ", frames " + std::to_string(gpu.frames_decoded()) + "/" + std::to_string(cpu.frames_decoded()) +
               ", slots " + std::to_string(gpu.cache_slots()) + "/" + std::to_string(cpu.cache_slots()) +
               ", cache bytes (bf16) " + std::to_string(gpu.cache_bytes()) + " vs (fp32) " +
               std::to_string(cpu.cache_bytes()));
  }

  // Negative control: the last chunk after another clip's history. Its frames differ from the
  // reference only through the cached contexts, so a decoder that lost or mangled its cache between
  // chunks would look like this; the comparison must reject it.
  if (T >= 2) {
    const int64_t last = std::max<int64_t>(1, T / 2);
    Tensor other_history = z.clone();
    std::mt19937_64 rng(99);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t hw = z.size(2) * z.size(3);
    for (int64_t c = 0; c < z.size(0); ++c)
      for (int64_t i = 0; i < (T - last) * hw; ++i) other_history.data<float>()[c * T * hw + i] = 2.0f * normal(rng);
    cuda::CudaWanVaeStream gpu(weights, stream);
    const Tensor got = decode_gpu_unclamped(gpu, other_history, {T - last, last});
    const int64_t frames_last = wan_vae_output_frames(T - last, last);
    const int64_t total = expected.size(1), HW = expected.size(2) * expected.size(3);
    std::vector<float> a, b;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = (total - frames_last) * HW; i < total * HW; ++i) {
        a.push_back(got.data<float>()[c * total * HW + i]);
        b.push_back(expected.data<float>()[c * total * HW + i]);
      }
    const ErrorStats e = compare(a.data(), b.data(), static_cast<int64_t>(a.size()));
    report(e.max_rel > kDecoderTolerance && e.rms_rel > kDecoderRmsTolerance,
           label + " last chunk after another history (must differ)",
           describe(e, kDecoderTolerance, kDecoderRmsTolerance));
  }

  // decode_chunk: denormalisation on the GPU and the uint8 frames, against the CPU's [0, 1] frames
  // rounded by video_frame_to_rgb. Allowed: the decoder's max tolerance in 8-bit steps (the [−1, 1]
  // output maps to 255/2 steps per unit) plus 1 for the rounding boundary; measured max 7, mean 0.7.
  {
    WanVaeStream cpu_frames(weights);
    cuda::CudaWanVaeStream gpu(weights, stream);
    double max_ref = 0;
    for (int64_t i = 0; i < expected.numel(); ++i) max_ref = std::max(max_ref, std::fabs(double(expected.data<float>()[i])));
    const int allowed = 1 + static_cast<int>(std::ceil(kDecoderTolerance * max_ref * 127.5));
    int worst = 0;
    double sum_abs = 0;
    int64_t count = 0;
    bool shapes_ok = true;
    int64_t begin = 0;
    for (int64_t n : T >= 3 ? std::vector<int64_t>{1, T - 1} : std::vector<int64_t>{T}) {
      const Tensor chunk = latent_frames(latent_normalised, begin, begin + n);
      begin += n;
      const Tensor ref = cpu_frames.decode_chunk(chunk);  // [T', 3, H, W] in [0, 1]
      const Tensor dev = gpu.decode_chunk(chunk);         // device U8 [T', H, W, 3]
      CHECK_CUDA(cudaStreamSynchronize(stream));
      if (dev.dtype() != DType::U8 || dev.device() != Device::CUDA || dev.dim() != 4 || dev.size(0) != ref.size(0) ||
          dev.size(1) != ref.size(2) || dev.size(2) != ref.size(3) || dev.size(3) != 3) {
        shapes_ok = false;
        break;
      }
      std::vector<uint8_t> host(static_cast<size_t>(dev.numel()));
      CHECK_CUDA(cudaMemcpy(host.data(), dev.raw_data(), host.size(), cudaMemcpyDeviceToHost));
      for (int64_t t = 0; t < ref.size(0); ++t) {
        const RgbFrame rgb = video_frame_to_rgb(ref, t);
        for (size_t i = 0; i < rgb.rgb.size(); ++i) {
          const int d = std::abs(int(host[t * rgb.rgb.size() + i]) - int(rgb.rgb[i]));
          worst = std::max(worst, d);
          sum_abs += d;
          ++count;
        }
      }
    }
    char detail[160];
    std::snprintf(detail, sizeof detail, "max |diff| %d (allowed %d), mean |diff| %.3f of 255", worst, allowed,
                  count ? sum_abs / count : 0.0);
    report(shapes_ok && worst <= allowed, label + " decode_chunk uint8 RGB vs CPU frames", shapes_ok ? detail : "shape");
  }
}

int check(const std::string& root) {
  std::printf("cuDNN: %s\n", cuda::have_cudnn() ? "yes" : "NO (this build has none)");
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  check_convs(stream);

  // The golden narrow decoder (base_dim 8: widths [32, 32, 32, 16, 8]) and its latent [16, 6, 4, 6].
  const std::string golden = root + "/tests/model/golden/";
  auto golden_weights = std::make_shared<const WanVaeDecoderWeights>(
      load_wan_vae_decoder_weights(golden + "wan_vae_tiny_original.safetensors"));
  const Tensor golden_latent =
      Checkpoint::open(golden + "wan_vae_tiny_io.safetensors").tensor("latent_normalised").to_f32();
  check_decoder("golden", golden_weights, golden_latent, stream);

  // Random narrow weights at another frame size (latent 6×10 -> 48×80) and 5 latents.
  WanVaeConfig config;
  config.base_dim = 8;
  auto random_weights = std::make_shared<const WanVaeDecoderWeights>(random_wan_vae_decoder_weights(config, 7));
  Tensor latent = Tensor::zeros({16, 5, 6, 10});
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < latent.numel(); ++i) latent.data<float>()[i] = normal(rng);
  check_decoder("random b8", random_weights, latent, stream);

  CHECK_CUDA(cudaStreamDestroy(stream));
  std::printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}

// ---- 3. benchmark ---------------------------------------------------------------------------------

double used_gib() {
  size_t free_bytes = 0, total_bytes = 0;
  CHECK_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
  return double(total_bytes - free_bytes) / (1024.0 * 1024.0 * 1024.0);
}

// The largest convolutions of one steady 4-frame latent alone (input with its 2 context frames).
void bench_convs(cudaStream_t stream) {
  struct Shape {
    const char* what;
    int64_t frames_in, height, width, cin, cout;
    int kt, khw, pad;
  };
  const Shape shapes[] = {
      {"3^3 96->96 at 480x832, 4 frames", 6, 480, 832, 96, 96, 3, 3, -1},
      {"3^3 192->192 at 240x416, 4 frames", 6, 240, 416, 192, 192, 3, 3, -1},
      {"3^3 384->384 at 120x208, 2 frames", 4, 120, 208, 384, 384, 3, 3, -1},
      {"sub-pixel 2x2 192->4x96 at 240x416", 4, 240, 416, 192, 384, 1, 2, 1},
      {"3^3 96->96 at 480x832, 12 frames", 14, 480, 832, 96, 96, 3, 3, -1},
      {"head 3^3 96->8 at 480x832, 4 frames", 6, 480, 832, 96, 8, 3, 3, -1},
      {"head 3^3 96->16 at 480x832, 4 frames", 6, 480, 832, 96, 16, 3, 3, -1},
      {"to_qkv 1x1 384->1152 at 60x104, 3 frames", 3, 60, 104, 384, 1152, 1, 1, -1},
  };
  cuda::ConvRunner runner(stream), legacy(stream);
  legacy.set_graph_api(false);
  std::printf("\n| convolution (bias + residual) | ms | TFLOP/s | legacy API only: ms | TFLOP/s |\n|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    Conv3dParams p;
    p.frames_in = s.frames_in;
    p.height = s.height;
    p.width = s.width;
    p.in_channels = s.cin;
    p.out_channels = s.cout;
    p.kernel_t = s.kt;
    p.kernel_hw = s.khw;
    p.pad_hw = s.pad;
    const int64_t n_in = p.frames_in * p.height * p.width * p.in_channels;
    const int64_t n_out = p.frames_out() * p.height_out() * p.width_out() * p.out_channels;
    const int64_t n_w = p.out_channels * p.kernel_t * p.kernel_hw * p.kernel_hw * p.in_channels;
    std::mt19937_64 rng(3);
    DeviceBuffer<uint16_t> in(to_bf16_bits(random_bf16_values(n_in, 1.0f, rng)));
    DeviceBuffer<uint16_t> w(to_bf16_bits(random_bf16_values(n_w, 0.02f, rng)));
    DeviceBuffer<uint16_t> b(to_bf16_bits(random_bf16_values(p.out_channels, 0.1f, rng)));
    DeviceBuffer<uint16_t> r(to_bf16_bits(random_bf16_values(n_out, 1.0f, rng)));
    DeviceBuffer<uint16_t> out(static_cast<size_t>(n_out));
    CHECK_CUDA(cudaDeviceSynchronize());
    auto bf = [](const DeviceBuffer<uint16_t>& x) { return reinterpret_cast<const __nv_bfloat16*>(x.ptr); };
    const float ms = time_ms(stream, 10, [&] {
      runner.forward(p, bf(in), bf(w), bf(b), bf(r), reinterpret_cast<__nv_bfloat16*>(out.ptr));
    });
    const float legacy_ms = time_ms(stream, 10, [&] {
      legacy.forward(p, bf(in), bf(w), bf(b), bf(r), reinterpret_cast<__nv_bfloat16*>(out.ptr));
    });
    const double flop = 2.0 * n_out * p.kernel_t * p.kernel_hw * p.kernel_hw * p.in_channels;
    std::printf("| %s | %.3f | %.0f | %.3f | %.0f |\n", s.what, ms, flop / (ms * 1e9), legacy_ms,
                flop / (legacy_ms * 1e9));
  }
  std::printf("\ncuDNN plans of these:\n%s", runner.describe_plans().c_str());
}

int bench(bool print_plans) {
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  bench_convs(stream);

  WanVaeConfig config;  // the real Wan2.1 VAE decoder: base_dim 96
  std::printf("\nrandom Wan2.1 VAE decoder weights (base_dim %ld)...\n", long(config.base_dim));
  auto weights = std::make_shared<const WanVaeDecoderWeights>(random_wan_vae_decoder_weights(config, 11));
  constexpr int64_t kLatentH = 60, kLatentW = 104, kChunkLatents = 3, kChunks = 6;  // first + 5 steady
  std::mt19937_64 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<Tensor> latents;
  for (int64_t k = 0; k < kChunks + 2; ++k) {
    Tensor l = Tensor::zeros({16, kChunkLatents, kLatentH, kLatentW});
    for (int64_t i = 0; i < l.numel(); ++i) l.data<float>()[i] = normal(rng);
    latents.push_back(l);
  }
  std::printf("\n| latents_per_pass | first chunk (ms, frames) | steady chunk ms (median of %ld) | video frames/s "
              "| cache GiB | working GiB (peak) | weights GiB | GPU used GiB (peak, cudaMemGetInfo) |\n"
              "|---|---|---|---|---|---|---|---|\n",
              long(kChunks - 1));
  for (int64_t per_pass : {int64_t{1}, int64_t{0}}) {
    CHECK_CUDA(cudaDeviceSynchronize());
    const double base_used = used_gib();
    WanVaeStreamOptions options;
    options.latents_per_pass = per_pass;
    double peak_used = 0;
    std::unique_ptr<cuda::CudaWanVaeStream> vae;
    // Warm-up stream: plans every conv shape of the first and the steady chunks (cuDNN's search).
    vae = std::make_unique<cuda::CudaWanVaeStream>(weights, stream, options);
    for (int64_t k = 0; k < 3; ++k) vae->decode_chunk(latents[static_cast<size_t>(k)]);
    CHECK_CUDA(cudaStreamSynchronize(stream));
    vae->reset();
    double first_ms = 0;
    int64_t first_frames = 0;
    std::vector<double> steady;
    for (int64_t k = 0; k < kChunks; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      const Tensor frames = vae->decode_chunk(latents[static_cast<size_t>(k)]);
      CHECK_CUDA(cudaStreamSynchronize(stream));
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      peak_used = std::max(peak_used, used_gib() - base_used);
      if (k == 0) {
        first_ms = ms;
        first_frames = frames.size(0);
      } else {
        steady.push_back(ms);
      }
    }
    std::sort(steady.begin(), steady.end());
    const double median = steady[steady.size() / 2];
    const double gib = 1024.0 * 1024.0 * 1024.0;
    std::printf("| %ld | %.1f ms, %ld | %.1f (min %.1f, max %.1f) | %.1f | %.2f | %.2f | %.2f | %.2f |\n",
                long(per_pass), first_ms, long(first_frames), median, steady.front(), steady.back(),
                4.0 * kChunkLatents / (median / 1000.0), vae->cache_bytes() / gib, vae->peak_working_bytes() / gib,
                vae->weight_bytes() / gib, peak_used);
    if (print_plans) std::printf("\ncuDNN plans (latents_per_pass %ld):\n%s\n", long(per_pass),
                                 vae->conv_runner().describe_plans().c_str());
  }
  std::printf("(a steady chunk is %ld latents = %ld video frames; pipeline-spec.md §2.7 counts 40.6 TFLOP for it)\n",
              long(kChunkLatents), long(4 * kChunkLatents));
  CHECK_CUDA(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string root = FASTAR_SOURCE_DIR;
  try {
    bool bench_mode = false, plans = false;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--bench") bench_mode = true;
      else if (a == "--plans") plans = true;
      else throw std::runtime_error("unknown option " + a + " (use --bench [--plans])");
    }
    return bench_mode ? bench(plans) : check(root);
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
