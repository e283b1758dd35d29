#include "fastar/kernels/cpu/causal_conv3d.h"

#include <cblas.h>

#include <cstring>
#include <vector>

#include "fastar/core/error.h"

namespace fastar::cpu {

// Loops over fewer elements than this run on one thread: at the narrow test widths a parallel
// region costs more than the work, and far more when the cores are shared.
constexpr int64_t kParallelMinElements = int64_t{1} << 16;

void check_causal_conv3d_params(const CausalConv3dParams& p) {
  FASTAR_CHECK(p.in_channels > 0 && p.out_channels > 0 && p.frames > 0 && p.height > 0 && p.width > 0,
               "causal_conv3d: sizes must be positive (in " << p.in_channels << ", out " << p.out_channels
                                                            << ", frames " << p.frames << ", " << p.height << "x"
                                                            << p.width << ")");
  FASTAR_CHECK(p.kernel_t >= 1 && p.kernel_h >= 1 && p.kernel_h % 2 == 1 && p.kernel_w >= 1 && p.kernel_w % 2 == 1,
               "causal_conv3d: kernel " << p.kernel_t << "x" << p.kernel_h << "x" << p.kernel_w
                                        << " is not supported (kernel_t >= 1, odd spatial sizes)");
}

void causal_conv3d_pack_weight(float* packed, const float* weight, const CausalConv3dParams& p) {
  const int64_t taps = p.taps();
  const int64_t cin = p.in_channels, cout = p.out_channels;
#pragma omp parallel for schedule(static) if (taps * cin * cout >= kParallelMinElements)
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t i = 0; i < cin; ++i)
      for (int64_t tap = 0; tap < taps; ++tap) packed[(tap * cout + o) * cin + i] = weight[(o * cin + i) * taps + tap];
}

namespace {

// Pointwise conv, one GEMM per frame: out[out, H·W] = W[out, in] · in[in, H·W] + bias. Per frame
// (not one GEMM over T·H·W) so every GEMM has the same shape however the clip is chunked, which
// keeps chunked decoding bit-identical to whole-clip decoding.
void pointwise_forward(float* out, const float* in, const float* packed, const float* bias,
                       const CausalConv3dParams& p) {
  const int64_t hw = p.height * p.width, n = p.frames * hw;
  if (bias) {
#pragma omp parallel for schedule(static) if (p.out_channels * n >= kParallelMinElements)
    for (int64_t o = 0; o < p.out_channels; ++o)
      for (int64_t j = 0; j < n; ++j) out[o * n + j] = bias[o];
  }
  for (int64_t f = 0; f < p.frames; ++f)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(p.out_channels), static_cast<int>(hw),
                static_cast<int>(p.in_channels), 1.0f, packed, static_cast<int>(p.in_channels), in + f * hw,
                static_cast<int>(n), bias ? 1.0f : 0.0f, out + f * hw, static_cast<int>(n));
}

}  // namespace

void causal_conv3d_forward(float* out, const float* in, const float* context, const float* packed, const float* bias,
                           const CausalConv3dParams& p) {
  check_causal_conv3d_params(p);
  FASTAR_ASSERT(out != in && (context == nullptr || out != context), "causal_conv3d_forward: out aliases an input");
  FASTAR_ASSERT(p.kernel_t == 1 || context != nullptr, "causal_conv3d_forward: kernel_t > 1 needs a context");
  if (p.taps() == 1) {
    pointwise_forward(out, in, packed, bias, p);
    return;
  }
  const int64_t cin = p.in_channels, cout = p.out_channels, kt = p.kernel_t, kh = p.kernel_h, kw = p.kernel_w;
  const int64_t H = p.height, W = p.width, T = p.frames, ctx = p.context_frames();
  const int64_t pad_h = kh / 2, pad_w = kw / 2;
  const int64_t Hp = H + 2 * pad_h, Wp = W + 2 * pad_w, plane = Hp * Wp;
  const int64_t hw = H * W;
  // Output pixel (y, x) sits at column y·Wp + x of the padded-width grid; the last one needed is
  // (H−1)·Wp + W − 1, and tap (dy, dx) reads window column y·Wp + x + dy·Wp + dx, always inside the plane.
  const int64_t columns = (H - 1) * Wp + W;

  std::vector<float> window(static_cast<size_t>(cin * kt * plane), 0.0f);  // [in, kt, Hp, Wp], borders stay 0
  std::vector<float> frame_out(static_cast<size_t>(cout * H * Wp));        // [out, H, Wp]

  for (int64_t f = 0; f < T; ++f) {
    // window frame dt = frame f + dt of concat(context, in)
#pragma omp parallel for collapse(2) schedule(static) if (cin * kt * hw >= kParallelMinElements)
    for (int64_t c = 0; c < cin; ++c)
      for (int64_t dt = 0; dt < kt; ++dt) {
        const int64_t s = f + dt;
        const float* src = s < ctx ? context + (c * ctx + s) * hw : in + (c * T + (s - ctx)) * hw;
        float* dst = window.data() + (c * kt + dt) * plane + pad_h * Wp + pad_w;
        for (int64_t y = 0; y < H; ++y) std::memcpy(dst + y * Wp, src + y * W, sizeof(float) * W);
      }
    for (int64_t dt = 0; dt < kt; ++dt)
      for (int64_t dy = 0; dy < kh; ++dy)
        for (int64_t dx = 0; dx < kw; ++dx) {
          const int64_t tap = (dt * kh + dy) * kw + dx;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(cout), static_cast<int>(columns),
                      static_cast<int>(cin), 1.0f, packed + tap * cout * cin, static_cast<int>(cin),
                      window.data() + dt * plane + dy * Wp + dx, static_cast<int>(kt * plane), tap == 0 ? 0.0f : 1.0f,
                      frame_out.data(), static_cast<int>(H * Wp));
        }
#pragma omp parallel for schedule(static) if (cout * hw >= kParallelMinElements)
    for (int64_t o = 0; o < cout; ++o) {
      const float b = bias ? bias[o] : 0.0f;
      float* dst = out + (o * T + f) * hw;
      const float* src = frame_out.data() + o * H * Wp;
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) dst[y * W + x] = src[y * Wp + x] + b;
    }
  }
}

void causal_conv3d_advance_context(float* context, const float* in, const CausalConv3dParams& p) {
  const int64_t ctx = p.context_frames(), T = p.frames, hw = p.height * p.width;
  if (ctx == 0) return;
    // New frame j of the context is frame (T + j) of concat(context, in); old context frames only
    // move towards the front (T > 0), so updating j = 0, 1, … in order never reads an overwritten frame.
#pragma omp parallel for schedule(static) if (p.in_channels * ctx * hw >= kParallelMinElements)
  for (int64_t c = 0; c < p.in_channels; ++c)
    for (int64_t j = 0; j < ctx; ++j) {
      const int64_t s = T + j;
      const float* src = s < ctx ? context + (c * ctx + s) * hw : in + (c * T + (s - ctx)) * hw;
      std::memmove(context + (c * ctx + j) * hw, src, sizeof(float) * hw);
    }
}

}  // namespace fastar::cpu
