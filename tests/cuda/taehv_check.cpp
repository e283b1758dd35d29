// GPU check of the CUDA tiny decoder (TAEHV taew2_1 / LightTAE lighttaew2_1, pipeline-spec.md §3;
// run on a GPU machine, never in CI):
//   1. every kernel of kernels/cuda/taehv_ops.h against host loops (exact, or within one bf16 ulp);
//   2. CudaTaehvStream against the fp32 CPU TaehvStream, both variants, random weights at widths
//      (32, 24, 16, 16), chunkings {whole, 1+2, 1+1+1}, one latent per pass and the whole chunk per
//      pass, host and device latents: the raw decoder output and the 8-bit frames;
//   3. the golden PyTorch outputs of tests/model/golden (widths (16, 12, 8, 8): the zero-padding path);
//   4. frame accounting, state size, reset, errors; and negative controls (MemBlock state dropped
//      between chunks, the wrong variant, frames shifted by one) that the same comparisons must reject.
//   --bench: the published widths with random weights, latents 60×104 -> 480×832, chunks of 3 latents:
//      ms per chunk, video frames/s and GPU memory (tools/bench_taehv_torch.py prints the same for PyTorch).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check_util.h"
#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/kernels/cpu/causal_conv3d.h"
#include "fastar/kernels/cuda/cudnn_conv.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/taehv_ops.h"
#include "fastar/model/cuda/taehv_decoder_cuda.h"
#include "fastar/model/taehv_decoder.h"
#include "fastar/model/taehv_weights.h"
#include "fastar/model/wan_vae_decoder.h"
#include "fastar/rollout/video_frame.h"

using namespace fastar;

namespace {

// ---- tolerances ----------------------------------------------------------------------------------
// bf16 weights and activations (fp32 accumulation) against fp32, through 23 layers. Measured with
// PyTorch's bf16 CPU convolutions on the same layer structure (tools/pipeline_golden/taehv_reference.py,
// widths (32, 24, 16, 16), outputs of std 0.15, 6 seeds/sizes): max |Δ| / max |ref| 0.007–0.010,
// ‖Δ‖₂ / ‖ref‖₂ 0.0025–0.0038. Dropping the MemBlock state between chunks gives 0.23–0.36 and 0.06–0.09.
// This program on an H200 (cuDNN 9, 2026-12): 0.0094–0.0123 and 0.0036–0.0038; state dropped: 0.42 and 0.079.
constexpr double kRawMaxTolerance = 3e-2;   // max |gpu − cpu| / max |cpu|
constexpr double kRawRmsTolerance = 1.5e-2;  // ‖gpu − cpu‖₂ / ‖cpu‖₂
// 8-bit frames: an output of std 0.15 has bf16 noise of ~0.4 level rms; the same emulation had at most
// 3 levels and ≤ 3e-5 of the values more than 2 levels off (one level is 1/255); the H200 run: 3 levels,
// ≤ 2.3e-4 off by more than 2. So "within ±2 levels" holds for all but a few values in 10^4, not all.
constexpr double kLevelsOffFraction = 1e-3;  // fraction of values more than 2 levels from the CPU's
constexpr int kLevelsMax = 6;
// The golden model's outputs are wider (std 0.24 and 0.35, peaks of ±2): its emulation had 0.3% and 2%
// of the values more than 2 levels off, rms 0.8 and 1.0 level.
constexpr double kGoldenLevelsOffFraction = 5e-2;
constexpr double kGoldenLevelsRms = 2.0;
// decode_chunk's quantiser against the host's (video_frame_to_rgb) on a second GPU stream's raw output:
// the same bf16 values unless cuDNN picked another algorithm for the second stream.
constexpr double kQuantiserExactFraction = 0.99;
constexpr int kQuantiserMaxLevels = 1;
// The input kernel: tanh in fp32 on both sides, one bf16 rounding: at most one bf16 ulp apart.
constexpr double kInputUlps = 1.0;

// Widths of the random test decoders (multiples of 8: no padding); the golden file covers padding.
constexpr std::array<int64_t, 4> kTestWidths = {32, 24, 16, 16};
constexpr double kTestOutputStd = 0.15;  // the output conv is rescaled to this std around 0.5

int failures = 0;

void report(bool ok, const std::string& what, const std::string& detail) {
  failures += !ok;
  std::printf("%s %-66s %s\n", ok ? "PASS" : "FAIL", what.c_str(), detail.c_str());
}

std::string fmt(const char* f, double a, double b = 0, double c = 0, double d = 0) {
  char s[256];
  std::snprintf(s, sizeof s, f, a, b, c, d);
  return s;
}

// ---- host helpers ----------------------------------------------------------------------------------

Tensor random_normal(const Shape& shape, uint64_t seed, float scale = 1.0f) {
  Tensor t = Tensor::zeros(shape);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

// Latent frames [begin, end) of latent [C, T, h, w].
Tensor latent_frames(const Tensor& x, int64_t begin, int64_t end) {
  const int64_t C = x.size(0), T = x.size(1), hw = x.size(2) * x.size(3), n = end - begin;
  Tensor out = Tensor::zeros({C, n, x.size(2), x.size(3)}, x.dtype());
  const int64_t e = dtype_size(x.dtype());
  for (int64_t c = 0; c < C; ++c)
    std::memcpy(static_cast<char*>(out.raw_data()) + c * n * hw * e,
                static_cast<const char*>(x.raw_data()) + (c * T + begin) * hw * e, static_cast<size_t>(n * hw * e));
  return out;
}

// Concatenates [T_i, ...] host tensors of one dtype along axis 0.
Tensor concat_frames(const std::vector<Tensor>& parts) {
  Shape shape = parts.front().shape();
  int64_t total = 0;
  for (const Tensor& p : parts) total += p.size(0);
  shape[0] = total;
  Tensor out = Tensor::zeros(shape, parts.front().dtype());
  int64_t offset = 0;
  for (const Tensor& p : parts) {
    std::memcpy(static_cast<char*>(out.raw_data()) + offset, p.raw_data(), static_cast<size_t>(p.nbytes()));
    offset += p.nbytes();
  }
  return out;
}

// fp32 frames [T, 3, H, W] in [0, 1] -> uint8 [T, H, W, 3] through session.cpp's video_frame_to_rgb.
Tensor quantise_frames(const Tensor& frames) {
  const int64_t T = frames.size(0), H = frames.size(2), W = frames.size(3);
  Tensor out = Tensor::zeros({T, H, W, 3}, DType::U8);
  for (int64_t t = 0; t < T; ++t) {
    const RgbFrame f = video_frame_to_rgb(frames, t);
    std::memcpy(out.data<uint8_t>() + t * H * W * 3, f.rgb.data(), f.rgb.size());
  }
  return out;
}

// Raw [4T, 3, H, W] -> the stream's frames: drop `trim` frames, clamp to [0, 1] (TaehvStream::decode_chunk).
Tensor trim_clamp(const Tensor& raw, int64_t trim) {
  const int64_t frame = raw.numel() / raw.size(0);
  Tensor out = Tensor::zeros({raw.size(0) - trim, raw.size(1), raw.size(2), raw.size(3)});
  for (int64_t i = 0; i < out.numel(); ++i) out.data<float>()[i] = std::clamp(raw.data<float>()[trim * frame + i], 0.0f, 1.0f);
  return out;
}

struct RawError {
  double max_rel = INFINITY, rms_rel = INFINITY;
  bool within() const { return max_rel <= kRawMaxTolerance && rms_rel <= kRawRmsTolerance; }
  std::string text() const {
    return fmt("max %.3g (tol %.3g), rms %.3g (tol %.3g)", max_rel, kRawMaxTolerance, rms_rel, kRawRmsTolerance);
  }
};

RawError raw_error(const Tensor& gpu, const Tensor& cpu) {
  RawError e;
  if (gpu.shape() != cpu.shape()) {
    std::printf("     shapes differ: %s vs %s\n", gpu.describe().c_str(), cpu.describe().c_str());
    return e;
  }
  double max_diff = 0, max_ref = 0, sq_diff = 0, sq_ref = 0;
  bool finite = true;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    const double a = gpu.data<float>()[i], b = cpu.data<float>()[i];
    finite = finite && std::isfinite(a);
    max_diff = std::max(max_diff, std::fabs(a - b));
    max_ref = std::max(max_ref, std::fabs(b));
    sq_diff += (a - b) * (a - b);
    sq_ref += b * b;
  }
  if (!finite) return e;
  e.max_rel = max_diff / std::max(max_ref, 1e-30);
  e.rms_rel = std::sqrt(sq_diff / std::max(sq_ref, 1e-30));
  return e;
}

struct LevelError {
  int max_levels = 1 << 30;
  double off_fraction = 1, exact_fraction = 0, rms = INFINITY;
  std::string text() const {
    return fmt("max %.0f levels, %.2g off by > 2, %.4f exact, rms %.2f", max_levels, off_fraction, exact_fraction, rms);
  }
};

LevelError level_error(const Tensor& gpu, const Tensor& cpu) {
  LevelError e;
  if (gpu.shape() != cpu.shape()) {
    std::printf("     shapes differ: %s vs %s\n", gpu.describe().c_str(), cpu.describe().c_str());
    return e;
  }
  int64_t off = 0, exact = 0;
  double sq = 0;
  e.max_levels = 0;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    const int d = std::abs(int(gpu.data<uint8_t>()[i]) - int(cpu.data<uint8_t>()[i]));
    e.max_levels = std::max(e.max_levels, d);
    off += d > 2;
    exact += d == 0;
    sq += double(d) * d;
  }
  e.off_fraction = double(off) / cpu.numel();
  e.exact_fraction = double(exact) / cpu.numel();
  e.rms = std::sqrt(sq / cpu.numel());
  return e;
}

bool levels_within(const LevelError& e) { return e.off_fraction <= kLevelsOffFraction && e.max_levels <= kLevelsMax; }

// Repacks a TaehvConv after its weight changed (the CPU kernel's packing).
void repack(TaehvConv& c) {
  const cpu::CausalConv3dParams p = c.params(1, 1, 1);
  c.packed = Tensor::zeros({p.taps(), c.out_channels, c.in_channels});
  cpu::causal_conv3d_pack_weight(c.packed.data<float>(), c.weight.data<float>(), p);
}

// Random weights (random_taehv_decoder_weights: activations grow ~40× by the output) with the output
// conv rescaled so that the raw output of `decoder_input` has mean 0.5 and std kTestOutputStd: most
// values then land inside [0, 1], as a real decoder's do, and the 8-bit comparison is meaningful.
std::shared_ptr<const TaehvDecoderWeights> test_weights(const TaehvConfig& config, uint64_t seed, TaehvVariant variant,
                                                        const Tensor& decoder_input, double output_std) {
  auto w = std::make_shared<TaehvDecoderWeights>(random_taehv_decoder_weights(config, seed, variant));
  Tensor raw;
  {
    TaehvStream probe(w);
    raw = probe.decode_chunk_raw(decoder_input);
  }
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < raw.numel(); ++i) {
    sum += raw.data<float>()[i];
    sq += double(raw.data<float>()[i]) * raw.data<float>()[i];
  }
  const double mean = sum / raw.numel(), stddev = std::sqrt(std::max(sq / raw.numel() - mean * mean, 1e-30));
  const float a = static_cast<float>(output_std / stddev);
  TaehvConv& out = w->conv_out;
  out.weight = out.weight.clone();
  out.bias = out.bias.clone();
  for (int64_t i = 0; i < out.weight.numel(); ++i) out.weight.data<float>()[i] *= a;
  for (int64_t i = 0; i < out.bias.numel(); ++i)
    out.bias.data<float>()[i] = static_cast<float>((out.bias.data<float>()[i] - mean) * a + 0.5);
  repack(out);
  return w;
}

// The decoder input of a variant for a normalised latent (TaehvStream::decode_chunk's scaling).
Tensor decoder_input_of(const Tensor& latent, TaehvVariant variant) {
  return variant == TaehvVariant::LightTae ? denormalise_wan_latent(latent) : latent;
}

std::string chunking_name(const std::vector<int64_t>& chunks) {
  std::string s;
  for (int64_t n : chunks) s += (s.empty() ? "" : "+") + std::to_string(n);
  return s;
}

// How a chunk's latent reaches the GPU stream.
enum class InputForm { HostF32, DeviceF32, DeviceBF16 };
const char* input_form_name(InputForm f) {
  return f == InputForm::HostF32 ? "host f32" : f == InputForm::DeviceF32 ? "device f32" : "device bf16";
}
Tensor as_input(const Tensor& host_f32, InputForm form) {
  if (form == InputForm::HostF32) return host_f32;
  return cuda::to_device(form == InputForm::DeviceBF16 ? host_f32.to_dtype(DType::BF16) : host_f32);
}
// The latent the CPU must decode to be comparable: the bf16 input's rounding applied.
Tensor as_cpu_latent(const Tensor& host_f32, InputForm form) {
  return form == InputForm::DeviceBF16 ? host_f32.to_dtype(DType::BF16).to_f32() : host_f32;
}

// GPU raw output over a chunking (decode_chunk_raw per chunk), optionally dropping the state before
// every chunk but the first (the negative control).
Tensor gpu_raw_in_chunks(cuda::CudaTaehvStream& gpu, const Tensor& input, const std::vector<int64_t>& chunks,
                         bool drop_state = false) {
  std::vector<Tensor> parts;
  int64_t begin = 0;
  for (int64_t n : chunks) {
    if (drop_state && begin > 0) gpu.reset();
    parts.push_back(gpu.decode_chunk_raw(latent_frames(input, begin, begin + n)));
    begin += n;
  }
  return concat_frames(parts);
}

// GPU 8-bit frames over a chunking (decode_chunk per chunk, copied to the host); checks each chunk's
// frame count.
Tensor gpu_frames_in_chunks(cuda::CudaTaehvStream& gpu, const Tensor& latent, const std::vector<int64_t>& chunks,
                            InputForm form, bool* counts_ok) {
  std::vector<Tensor> parts;
  int64_t begin = 0;
  *counts_ok = true;
  for (int64_t n : chunks) {
    const int64_t before = gpu.latents_decoded();
    const Tensor chunk = as_input(latent_frames(latent, begin, begin + n), form);
    const Tensor frames = gpu.decode_chunk(chunk);
    CHECK_CUDA(cudaStreamSynchronize(gpu.stream()));
    *counts_ok = *counts_ok && frames.device() == Device::CUDA && frames.dtype() == DType::U8 &&
                 frames.size(0) == taehv_output_frames(before, n) && gpu.latents_decoded() == before + n;
    parts.push_back(cuda::to_host(frames));
    begin += n;
  }
  return concat_frames(parts);
}

// ---- 1. kernels ----------------------------------------------------------------------------------

std::vector<uint16_t> random_bf16(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = f32_to_bf16(normal(rng));
  return v;
}

void check_kernels(cudaStream_t stream) {
  using bf16 = __nv_bfloat16;
  {  // MemBlock concat: x [T, P, C], state [P, C] -> [T, P, 2C]
    const int64_t T = 3, P = 35, C = 24;
    const auto x = random_bf16(T * P * C, 1), state = random_bf16(P * C, 2);
    DeviceBuffer<uint16_t> dx(x), ds(state), dcat(T * P * 2 * C);
    cuda::taehv_memblock_concat(reinterpret_cast<bf16*>(dcat.ptr), reinterpret_cast<const bf16*>(dx.ptr),
                                reinterpret_cast<const bf16*>(ds.ptr), T, P, C, stream);
    const auto cat = dcat.download();
    int64_t bad = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < 2 * C; ++c) {
          const uint16_t want = c < C ? x[(t * P + p) * C + c] : t == 0 ? state[p * C + c - C] : x[((t - 1) * P + p) * C + c - C];
          bad += cat[(t * P + p) * 2 * C + c] != want;
        }
    report(bad == 0, "kernel taehv_memblock_concat [3, 35, 24] vs host", std::to_string(bad) + " values differ");
  }
  for (int64_t stride : {1, 2}) {  // TGrow + upsample: y [n, H, W, s·C] -> [s·n, 2H, 2W, C]
    const int64_t n = 2, H = 3, W = 5, C = 16;
    const auto y = random_bf16(n * H * W * stride * C, 3 + stride);
    DeviceBuffer<uint16_t> dy(y), dout(stride * n * 4 * H * W * C);
    cuda::taehv_tgrow_upsample(reinterpret_cast<bf16*>(dout.ptr), reinterpret_cast<const bf16*>(dy.ptr), n, H, W, C,
                               stride, stream);
    const auto out = dout.download();
    int64_t bad = 0;
    for (int64_t f = 0; f < stride * n; ++f)
      for (int64_t Y = 0; Y < 2 * H; ++Y)
        for (int64_t X = 0; X < 2 * W; ++X)
          for (int64_t c = 0; c < C; ++c) {
            const int64_t tau = f / stride, k = f % stride;
            bad += out[((f * 2 * H + Y) * 2 * W + X) * C + c] != y[((tau * H + Y / 2) * W + X / 2) * stride * C + k * C + c];
          }
    report(bad == 0, "kernel taehv_tgrow_upsample stride " + std::to_string(stride) + " vs host",
           std::to_string(bad) + " values differ");
  }
  {  // frames to RGB8 and raw to planar: raw [F, P, 8], values around [0, 1] plus NaN / ±inf / exact ends
    const int64_t F = 4, P = 29, Craw = 8, first = 1;
    auto raw = random_bf16(F * P * Craw, 7);
    for (auto& v : raw) v = f32_to_bf16(0.5f + 0.6f * bf16_to_f32(v));
    const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, 1.0f, -0.0f, 0.5f / 255.0f, 254.5f / 255.0f};
    for (int i = 0; i < 8; ++i) raw[(first * P + i) * Craw + i % 3] = f32_to_bf16(specials[i]);
    DeviceBuffer<uint16_t> draw(raw);
    DeviceBuffer<uint8_t> drgb((F - first) * P * 3);
    DeviceBuffer<float> dplanar(F * 3 * P);
    cuda::taehv_frames_to_rgb8(drgb.ptr, reinterpret_cast<const bf16*>(draw.ptr), first, F - first, P, Craw, stream);
    cuda::taehv_raw_to_planar(dplanar.ptr, reinterpret_cast<const bf16*>(draw.ptr), F, P, Craw, 3, stream);
    const auto rgb = drgb.download();
    const auto planar = dplanar.download();
    Tensor raw_f32 = Tensor::zeros({F, 3, 1, P});
    int64_t bad_planar = 0;
    for (int64_t f = 0; f < F; ++f)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t p = 0; p < P; ++p) {
          const float v = bf16_to_f32(raw[(f * P + p) * Craw + c]);
          raw_f32.data<float>()[(f * 3 + c) * P + p] = v;
          const float got = planar[(f * 3 + c) * P + p];
          bad_planar += !(got == v || (std::isnan(got) && std::isnan(v)));
        }
    const Tensor want = quantise_frames(trim_clamp(raw_f32, first));
    int64_t bad_rgb = 0;
    for (int64_t i = 0; i < want.numel(); ++i) bad_rgb += rgb[i] != want.data<uint8_t>()[i];
    report(bad_rgb == 0, "kernel taehv_frames_to_rgb8 vs trim + clamp + video_frame_to_rgb",
           std::to_string(bad_rgb) + " values differ (NaN, ±inf, 0, 1 and near-half levels included)");
    report(bad_planar == 0, "kernel taehv_raw_to_planar vs host", std::to_string(bad_planar) + " values differ");
  }
  for (int form = 0; form < 3; ++form)  // decoder input: [C, T, H, W] any dtype -> [T, H, W, Cp] bf16
    for (bool denormalise : {false, true}) {
      const int64_t C = 16, Cp = 24, T = 2, H = 3, W = 5, P = H * W;
      Tensor z = random_normal({C, T, H, W}, 11 + form, 2.0f);
      cuda::TaehvInputParams p;
      p.channels = C;
      p.padded_channels = Cp;
      p.frames = T;
      p.height = H;
      p.width = W;
      p.denormalise = denormalise;
      for (int c = 0; c < 16; ++c) {
        p.mean[c] = kWanLatentMean[c];
        p.std[c] = kWanLatentStd[c];
      }
      Tensor host = z;
      if (form == 1) {
        host = z.to_dtype(DType::BF16);
        p.dtype = cuda::LatentDType::BF16;
      } else if (form == 2) {
        host = z.to_dtype(DType::F16);
        p.dtype = cuda::LatentDType::F16;
      }
      const Tensor zq = host.to_f32();  // what the kernel reads
      const Tensor dev = cuda::to_device(host);
      DeviceBuffer<uint16_t> dout(T * P * Cp);
      cuda::taehv_decoder_input(reinterpret_cast<bf16*>(dout.ptr), dev.raw_data(), p, stream);
      const auto out = dout.download();
      double worst_ulps = 0;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t q = 0; q < P; ++q)
          for (int64_t c = 0; c < Cp; ++c) {
            const float got = bf16_to_f32(out[(t * P + q) * Cp + c]);
            float want = 0;
            if (c < C) {
              float v = zq.data<float>()[(c * T + t) * P + q];
              if (denormalise) v = v * kWanLatentStd[c] + kWanLatentMean[c];
              want = round_to_bf16(std::tanh(v / 3.0f) * 3.0f);
            }
            const double ulp = std::ldexp(1.0, std::ilogb(std::max(std::fabs(want), 1e-30f)) - 7);
            worst_ulps = std::max(worst_ulps, want == 0 ? std::fabs(got) * 1e30 : std::fabs(got - want) / ulp);
          }
      report(worst_ulps <= kInputUlps,
             std::string("kernel taehv_decoder_input ") + (form == 0 ? "f32" : form == 1 ? "bf16" : "f16") +
                 (denormalise ? " denormalised" : ""),
             fmt("worst %.2f bf16 ulps (tol %.0f); padded channels zero", worst_ulps, kInputUlps));
    }
  CHECK_CUDA(cudaStreamSynchronize(stream));
}

// ---- 2. the decoder against the CPU ----------------------------------------------------------------

void check_against_cpu(cudaStream_t stream) {
  TaehvConfig config;
  config.widths = kTestWidths;
  const int64_t T = 3, h = 5, w = 7;
  const Tensor latent = random_normal({16, T, h, w}, 2026);
  const std::vector<std::vector<int64_t>> chunkings = {{3}, {1, 2}, {1, 1, 1}};
  std::shared_ptr<const TaehvDecoderWeights> by_variant[2];
  Tensor cpu_frames_u8[2];

  for (int v = 0; v < 2; ++v) {
    const TaehvVariant variant = v == 0 ? TaehvVariant::Taew2_1 : TaehvVariant::LightTae;
    const std::string vname = taehv_variant_name(variant);
    const Tensor input = decoder_input_of(latent, variant);
    const auto weights = test_weights(config, 77 + v, variant, input, kTestOutputStd);
    by_variant[v] = weights;
    // CPU references: the whole clip at once.
    Tensor cpu_raw, cpu_frames;
    {
      TaehvStream cpu(weights);
      cpu_raw = cpu.decode_chunk_raw(input);
    }
    {
      TaehvStream cpu(weights);
      cpu_frames = cpu.decode_chunk(latent);
    }
    cpu_frames_u8[v] = quantise_frames(cpu_frames);

    for (int64_t per_pass : {1, 0}) {
      TaehvStreamOptions options;
      options.latents_per_pass = per_pass;
      const std::string pass = per_pass == 0 ? "whole chunk per pass" : "1 latent per pass";
      for (const auto& chunks : chunkings) {
        const std::string label = vname + " " + chunking_name(chunks) + ", " + pass;
        {
          cuda::CudaTaehvStream gpu(weights, stream, options);
          const RawError e = raw_error(gpu_raw_in_chunks(gpu, input, chunks), cpu_raw);
          report(e.within(), "raw " + label, e.text());
        }
        {
          cuda::CudaTaehvStream gpu(weights, stream, options);
          bool counts_ok = false;
          const Tensor frames = gpu_frames_in_chunks(gpu, latent, chunks, InputForm::HostF32, &counts_ok);
          const LevelError e = level_error(frames, cpu_frames_u8[v]);
          report(levels_within(e) && counts_ok, "uint8 frames " + label,
                 e.text() + (counts_ok ? "" : "; WRONG frame counts / dtype / device"));
        }
      }
    }
    // Device inputs (the DiT's fp32 output, and bf16), chunked 1+2.
    for (InputForm form : {InputForm::DeviceF32, InputForm::DeviceBF16}) {
      const Tensor cpu_latent = as_cpu_latent(latent, form);
      TaehvStream cpu(weights);
      const Tensor want = quantise_frames(cpu.decode_chunk(cpu_latent));
      cuda::CudaTaehvStream gpu(weights, stream);
      bool counts_ok = false;
      const LevelError e = level_error(gpu_frames_in_chunks(gpu, latent, {1, 2}, form, &counts_ok), want);
      report(levels_within(e) && counts_ok, "uint8 frames " + vname + " 1+2, " + input_form_name(form) + " latent",
             e.text());
    }
    // decode_chunk's quantiser against the host's on a second stream's raw output.
    {
      cuda::CudaTaehvStream a(weights, stream), b(weights, stream);
      const Tensor device_frames = a.decode_chunk(latent);
      CHECK_CUDA(cudaStreamSynchronize(stream));
      const Tensor frames = cuda::to_host(device_frames);
      const Tensor raw = b.decode_chunk_raw(input);
      const LevelError e = level_error(frames, quantise_frames(trim_clamp(raw, 3)));
      report(e.max_levels <= kQuantiserMaxLevels && e.exact_fraction >= kQuantiserExactFraction,
             "decode_chunk = trim + clamp + video_frame_to_rgb of decode_chunk_raw (" + vname + ")",
             e.text() + fmt(" (tol: max %.0f, exact >= %.2f)", kQuantiserMaxLevels, kQuantiserExactFraction));
    }
  }

  // Negative controls: the comparisons above must reject these.
  {
    const Tensor input = latent;
    TaehvStream cpu(by_variant[0]);
    const Tensor cpu_raw = cpu.decode_chunk_raw(input);
    cuda::CudaTaehvStream gpu(by_variant[0], stream);
    const RawError e = raw_error(gpu_raw_in_chunks(gpu, input, {1, 2}, /*drop_state=*/true), cpu_raw);
    report(!e.within(), "negative control: MemBlock state dropped between chunks is rejected", e.text());
  }
  {
    cuda::CudaTaehvStream gpu(by_variant[0], stream);
    bool counts_ok = false;
    const Tensor frames = gpu_frames_in_chunks(gpu, latent, {3}, InputForm::HostF32, &counts_ok);
    // taew2_1's weights against LightTAE's weights and scaling.
    const LevelError wrong_variant = level_error(frames, cpu_frames_u8[1]);
    report(!levels_within(wrong_variant), "negative control: the other variant's frames are rejected",
           wrong_variant.text());
    // Frames shifted by one (a trim of 2 or 4 instead of 3).
    const int64_t frame = frames.numel() / frames.size(0);
    Tensor shifted = Tensor::zeros({frames.size(0) - 1, frames.size(1), frames.size(2), 3}, DType::U8);
    Tensor reference = Tensor::zeros(shifted.shape(), DType::U8);
    std::memcpy(shifted.raw_data(), frames.data<uint8_t>() + frame, static_cast<size_t>(shifted.nbytes()));
    std::memcpy(reference.raw_data(), cpu_frames_u8[0].raw_data(), static_cast<size_t>(reference.nbytes()));
    const LevelError shift = level_error(shifted, reference);
    report(!levels_within(shift), "negative control: frames shifted by one are rejected", shift.text());
  }

  // Stream bookkeeping and errors.
  {
    cuda::CudaTaehvStream gpu(by_variant[0], stream);
    const bool empty_before = gpu.state_bytes() == 0;
    gpu.decode_chunk(latent_frames(latent, 0, 1));
    int64_t expected = 0, pixels = h * w;
    for (int s = 0; s < 3; ++s) {
      expected += 3 * pixels * ((kTestWidths[s] + 7) / 8 * 8) * 2;
      pixels *= 4;
    }
    const int64_t state_after_one = gpu.state_bytes();
    const bool state_ok = state_after_one == expected && gpu.latents_decoded() == 1 && gpu.raw_frames_decoded() == 4;
    bool size_change_throws = false, channels_throw = false;
    try {
      gpu.decode_chunk(random_normal({16, 1, h + 1, w}, 5));
    } catch (const Error&) {
      size_change_throws = true;
    }
    try {
      gpu.decode_chunk(random_normal({15, 1, h, w}, 5));
    } catch (const Error&) {
      channels_throw = true;
    }
    gpu.reset();
    const bool reset_ok = gpu.state_bytes() == 0 && gpu.latents_decoded() == 0;
    bool new_size_ok = true;
    try {  // after reset() a new size is a new video
      const Tensor f = gpu.decode_chunk(random_normal({16, 2, h + 1, w + 2}, 6));
      new_size_ok = f.size(0) == 5 && f.size(1) == 8 * (h + 1) && f.size(2) == 8 * (w + 2) && f.size(3) == 3;
    } catch (const Error& e) {
      std::printf("     %s\n", e.what());
      new_size_ok = false;
    }
    CHECK_CUDA(cudaStreamSynchronize(stream));
    report(empty_before && state_ok && size_change_throws && channels_throw && reset_ok && new_size_ok,
           "state_bytes, frame counts, reset, size/channel errors",
           fmt("state after one latent %.0f bytes (expected %.0f)", double(state_after_one), double(expected)) +
               (size_change_throws && channels_throw ? "" : "; an error did not throw") +
               (reset_ok && new_size_ok ? "" : "; reset / new size wrong"));
  }
}

// ---- 3. golden PyTorch outputs ---------------------------------------------------------------------

// tests/model/golden/taehv_tiny*.safetensors (tools/pipeline_golden/make_taehv_golden.py): widths
// (16, 12, 8, 8), so 12 channels run padded to 16; fp16-exact weights; a [16, 6, 3, 5] latent.
void check_golden(const std::string& root, cudaStream_t stream) {
  const std::string dir = root + "/tests/model/golden/";
  Checkpoint io = Checkpoint::open(dir + "taehv_tiny_io.safetensors");
  const Tensor latent = io.tensor("latent_normalised").to_f32();
  const Tensor raw = io.tensor("raw").to_f32();
  for (int v = 0; v < 2; ++v) {
    const TaehvVariant variant = v == 0 ? TaehvVariant::Taew2_1 : TaehvVariant::LightTae;
    const std::string vname = taehv_variant_name(variant);
    auto weights = std::make_shared<const TaehvDecoderWeights>(
        load_taehv_decoder_weights(dir + "taehv_tiny.safetensors", variant));
    if (v == 0) {
      cuda::CudaTaehvStream gpu(weights, stream);
      const RawError e = raw_error(gpu.decode_chunk_raw(latent), raw);
      report(e.within(), "golden raw vs PyTorch (taew2_1, widths 16/12/8/8: padded)", e.text());
    }
    cuda::CudaTaehvStream gpu(weights, stream);
    bool counts_ok = false;
    const Tensor frames = gpu_frames_in_chunks(gpu, latent, {3, 3}, InputForm::HostF32, &counts_ok);
    const LevelError e = level_error(frames, quantise_frames(io.tensor(v == 0 ? "frames" : "frames_lighttae").to_f32()));
    report(counts_ok && e.off_fraction <= kGoldenLevelsOffFraction && e.rms <= kGoldenLevelsRms,
           "golden uint8 frames vs PyTorch (" + vname + ", chunks 3+3)",
           e.text() + fmt(" (tol: > 2 off %.2g, rms %.1f)", kGoldenLevelsOffFraction, kGoldenLevelsRms));
  }
}

// ---- --bench -------------------------------------------------------------------------------------

int64_t used_device_bytes() {
  size_t free_bytes = 0, total = 0;
  CHECK_CUDA(cudaMemGetInfo(&free_bytes, &total));
  return static_cast<int64_t>(total - free_bytes);
}

void bench(cudaStream_t stream, int chunks, bool show_plans) {
  const int64_t chunk_latents = 3, h = 60, w = 104;
  const TaehvConfig config;  // published widths 256, 128, 64, 64
  auto weights = std::make_shared<const TaehvDecoderWeights>(random_taehv_decoder_weights(config, 1));
  std::vector<Tensor> latents;  // device fp32 [16, 3, 60, 104], as the DiT leaves them
  for (int c = 0; c < chunks; ++c) latents.push_back(cuda::to_device(random_normal({16, chunk_latents, h, w}, 100 + c)));
  CHECK_CUDA(cudaDeviceSynchronize());
  std::printf("TAEHV decoder (taew2_1 widths 256/128/64/64, random weights), latents %lldx%lld -> %lldx%lld, "
              "chunks of %lld latents, %d chunks\n",
              (long long)h, (long long)w, (long long)(8 * h), (long long)(8 * w), (long long)chunk_latents, chunks);
  std::printf("| latents per pass | first chunk ms | ms per chunk (mean / min, chunks 2..) | video frames/s | "
              "back-to-back frames/s | GPU memory MiB (stream / cudaMemGetInfo delta) | state MiB |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  for (int64_t per_pass : {0, 1}) {
    const int64_t used_before = used_device_bytes();
    int64_t peak = used_before;
    TaehvStreamOptions options;
    options.latents_per_pass = per_pass;
    cuda::CudaTaehvStream gpu(weights, stream, options);
    std::vector<float> ms;
    int64_t steady_frames = 0;
    for (int c = 0; c < chunks; ++c) {
      CHECK_CUDA(cudaEventRecord(a, stream));
      const Tensor frames = gpu.decode_chunk(latents[c]);
      CHECK_CUDA(cudaEventRecord(b, stream));
      CHECK_CUDA(cudaEventSynchronize(b));
      float t = 0;
      CHECK_CUDA(cudaEventElapsedTime(&t, a, b));
      ms.push_back(t);
      if (c > 0) steady_frames = frames.size(0);
      peak = std::max(peak, used_device_bytes());
    }
    // The same chunks again, enqueued back to back (the rgb buffer is reused as each result is dropped).
    gpu.reset();
    gpu.decode_chunk(latents[0]);
    CHECK_CUDA(cudaStreamSynchronize(stream));
    CHECK_CUDA(cudaEventRecord(a, stream));
    int64_t frames_b2b = 0;
    for (int c = 1; c < chunks; ++c) frames_b2b += gpu.decode_chunk(latents[c]).size(0);
    CHECK_CUDA(cudaEventRecord(b, stream));
    CHECK_CUDA(cudaEventSynchronize(b));
    float total = 0;
    CHECK_CUDA(cudaEventElapsedTime(&total, a, b));
    peak = std::max(peak, used_device_bytes());
    double mean = 0, best = 1e30;
    for (int c = 1; c < chunks; ++c) {
      mean += ms[c] / (chunks - 1);
      best = std::min(best, double(ms[c]));
    }
    std::printf("| %s | %.1f | %.2f / %.2f | %.0f | %.0f | %.0f / %.0f | %.1f |\n",
                per_pass == 0 ? "whole chunk (3)" : "1", ms[0], mean, best, steady_frames * 1000.0 / mean,
                frames_b2b * 1000.0 / total, gpu.device_bytes() / 1048576.0, (peak - used_before) / 1048576.0,
                gpu.state_bytes() / 1048576.0);
    if (show_plans) std::printf("%s", gpu.describe_convolutions().c_str());
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
}

}  // namespace

int main(int argc, char** argv) {
  bool run_bench = false, show_plans = false;
  int chunks = 8;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--bench") run_bench = true;
    else if (arg == "--plans") show_plans = true;
    else if (arg == "--chunks" && i + 1 < argc) chunks = std::max(2, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--bench [--chunks N] [--plans]]\n", argv[0]);
      return 2;
    }
  }
  if (cuda::device_count() == 0) {
    std::fprintf(stderr, "no CUDA device\n");
    return 2;
  }
  if (!cuda::have_cudnn()) {
    std::printf("FAIL this build has no cuDNN (kernels/cuda/cudnn_conv.h): the CUDA TAEHV decoder cannot run\n");
    return 1;
  }
  std::printf("%s\n", cuda::device_description(0).c_str());
  // A blocking stream: the check's own cudaMemcpy (to_device / to_host, legacy stream) stays ordered with it.
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  try {
    if (run_bench) {
      bench(stream, chunks, show_plans);
    } else {
      check_kernels(stream);
      check_against_cpu(stream);
      check_golden(FASTAR_SOURCE_DIR, stream);
      std::printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    }
  } catch (const Error& e) {
    std::printf("FAIL fastar::Error: %s\n", e.what());
    return 1;
  }
  cudaStreamDestroy(stream);
  return failures ? 1 : 0;
}
