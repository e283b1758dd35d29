// The causal 3-D convolution of the Wan VAE (pipeline-spec.md §2.2) against a direct loop in double
// over the whole clip with zero frames before frame 0, whole and chunk after chunk with the context
// carried by causal_conv3d_advance_context.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/causal_conv3d.h"
#include "test_util.h"

namespace fastar {
namespace {

// out[o, t, y, x] = bias[o] + Σ w[o, i, dt, dy, dx] · in[i, t + dt − (kt−1), y + dy − kh/2, x + dx − kw/2],
// zero outside the clip (before frame 0 and around the borders).
std::vector<double> direct_conv(const std::vector<float>& in, const std::vector<float>& weight,
                                const std::vector<float>& bias, const cpu::CausalConv3dParams& p) {
  const int64_t T = p.frames, H = p.height, W = p.width;
  std::vector<double> out(static_cast<size_t>(p.out_channels * T * H * W));
  for (int64_t o = 0; o < p.out_channels; ++o)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          double sum = bias[o];
          for (int64_t i = 0; i < p.in_channels; ++i)
            for (int64_t dt = 0; dt < p.kernel_t; ++dt)
              for (int64_t dy = 0; dy < p.kernel_h; ++dy)
                for (int64_t dx = 0; dx < p.kernel_w; ++dx) {
                  const int64_t st = t + dt - (p.kernel_t - 1), sy = y + dy - p.kernel_h / 2,
                                sx = x + dx - p.kernel_w / 2;
                  if (st < 0 || sy < 0 || sy >= H || sx < 0 || sx >= W) continue;
                  sum +=
                      double(
                          weight[(((o * p.in_channels + i) * p.kernel_t + dt) * p.kernel_h + dy) * p.kernel_w + dx]) *
                      in[((i * T + st) * H + sy) * W + sx];
                }
          out[((o * T + t) * H + y) * W + x] = sum;
        }
  return out;
}

struct Kernel {
  int64_t kt, kh, kw;
};

class CausalConv3d : public ::testing::TestWithParam<Kernel> {};

TEST_P(CausalConv3d, MatchesDirectLoopWholeAndChunked) {
  const Kernel k = GetParam();
  cpu::CausalConv3dParams p;
  p.in_channels = 3;
  p.out_channels = 5;
  p.kernel_t = k.kt;
  p.kernel_h = k.kh;
  p.kernel_w = k.kw;
  p.frames = 6;
  p.height = 4;
  p.width = 7;
  const int64_t hw = p.height * p.width;
  const std::vector<float> in = testing::random_normal(p.in_channels * p.frames * hw, 1);
  const std::vector<float> weight = testing::random_normal(p.out_channels * p.in_channels * p.taps(), 2, 0.3f);
  const std::vector<float> bias = testing::random_normal(p.out_channels, 3);
  const std::vector<double> expected = direct_conv(in, weight, bias, p);

  std::vector<float> packed(weight.size());
  cpu::causal_conv3d_pack_weight(packed.data(), weight.data(), p);
  for (const std::vector<int64_t>& chunks : {std::vector<int64_t>{6}, {1, 5}, {2, 1, 3}, {1, 1, 1, 1, 1, 1}}) {
    std::vector<float> context(static_cast<size_t>(p.in_channels * p.context_frames() * hw), 0.0f);
    std::vector<float> out(expected.size());
    int64_t begin = 0;
    for (int64_t n : chunks) {
      cpu::CausalConv3dParams c = p;
      c.frames = n;
      std::vector<float> chunk_in(static_cast<size_t>(p.in_channels * n * hw)),
          chunk_out(static_cast<size_t>(p.out_channels * n * hw));
      for (int64_t i = 0; i < p.in_channels; ++i)
        std::copy_n(in.begin() + (i * p.frames + begin) * hw, n * hw, chunk_in.begin() + i * n * hw);
      cpu::causal_conv3d_forward(chunk_out.data(), chunk_in.data(), context.empty() ? nullptr : context.data(),
                                 packed.data(), bias.data(), c);
      cpu::causal_conv3d_advance_context(context.data(), chunk_in.data(), c);
      for (int64_t o = 0; o < p.out_channels; ++o)
        std::copy_n(chunk_out.begin() + o * n * hw, n * hw, out.begin() + (o * p.frames + begin) * hw);
      begin += n;
    }
    EXPECT_LE(testing::max_scaled_error(out.data(), expected.data(), static_cast<int64_t>(out.size()),
                                        testing::kF32RelTol, testing::kF32AbsTol),
              1.0)
        << "chunks of " << chunks.size();
  }
}

INSTANTIATE_TEST_SUITE_P(WanVaeKernels, CausalConv3d,
                         ::testing::Values(Kernel{3, 3, 3},    // the 3³ convs
                                           Kernel{3, 1, 1},    // time_conv
                                           Kernel{1, 3, 3},    // the per-frame resample Conv2d
                                           Kernel{1, 1, 1}));  // shortcut / conv2

TEST(CausalConv3dParams, RejectsEvenSpatialKernels) {
  cpu::CausalConv3dParams p;
  p.in_channels = p.out_channels = p.frames = p.height = p.width = 1;
  p.kernel_h = 2;
  EXPECT_THROW(cpu::check_causal_conv3d_params(p), Error);
}

}  // namespace
}  // namespace fastar
