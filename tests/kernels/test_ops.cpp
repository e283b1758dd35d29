// CPU reference kernels (kernels/cpu/ops.h) against plain double-precision loops written here from
// the header's documented formulas. Every comparison is paired with a sanity check that a
// deliberately perturbed input moves the double reference beyond tolerance, so each test can fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "fastar/kernels/cpu/ops.h"
#include "test_util.h"

namespace fastar {
namespace {

using testing::kF32AbsTol;
using testing::kF32RelTol;
using testing::max_scaled_error;
using testing::random_normal;

constexpr double kPi = 3.14159265358979323846;

// Norm preservation of a RoPE pair in fp32: the rotation is exact in double, then rounded per element.
constexpr double kRopeNormRelTol = 1e-6;
constexpr double kRopeNormAbsTol = 1e-6;

// Scaled error of `actual` against `expected`; <= 1 is within tolerance.
double scaled_error(const std::vector<float>& actual, const std::vector<double>& expected,
                    double rel = kF32RelTol, double abs = kF32AbsTol) {
  EXPECT_EQ(actual.size(), expected.size());
  return max_scaled_error(actual.data(), expected.data(), static_cast<int64_t>(actual.size()), rel, abs);
}

// The comparison passes for the true reference and fails for a reference computed from a perturbed input.
void expect_match_and_sensitivity(const std::vector<float>& actual, const std::vector<double>& expected,
                                  const std::vector<double>& perturbed_expected, double rel = kF32RelTol,
                                  double abs = kF32AbsTol) {
  EXPECT_LE(scaled_error(actual, expected, rel, abs), 1.0) << "kernel differs from the double reference";
  EXPECT_GT(scaled_error(actual, perturbed_expected, rel, abs), 1.0)
      << "sanity: a perturbed input should move the reference beyond tolerance";
}

// ---- linear ------------------------------------------------------------------------------------

std::vector<double> ref_linear(const std::vector<float>& in, const std::vector<float>& w, const float* bias,
                               int64_t rows, int64_t in_f, int64_t out_f) {
  std::vector<double> out(static_cast<size_t>(rows * out_f));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out_f; ++o) {
      double acc = bias ? static_cast<double>(bias[o]) : 0.0;
      for (int64_t i = 0; i < in_f; ++i)
        acc += static_cast<double>(in[static_cast<size_t>(r * in_f + i)]) * w[static_cast<size_t>(o * in_f + i)];
      out[static_cast<size_t>(r * out_f + o)] = acc;
    }
  return out;
}

TEST(CpuOps, LinearMatchesDoubleLoop) {
  struct Case {
    int64_t rows, in_f, out_f;
  };
  for (const Case c : {Case{7, 13, 5}, Case{1, 1, 1}, Case{33, 257, 65}, Case{5, 64, 3}}) {
    for (const bool with_bias : {false, true}) {
      std::ostringstream name;
      name << "rows=" << c.rows << " in=" << c.in_f << " out=" << c.out_f << " bias=" << with_bias;
      SCOPED_TRACE(name.str());
      const auto in = random_normal(c.rows * c.in_f, 11 + c.in_f);
      const auto w = random_normal(c.out_f * c.in_f, 12 + c.out_f, 1.0f / std::sqrt(static_cast<float>(c.in_f)));
      const auto b = random_normal(c.out_f, 13);
      const float* bias = with_bias ? b.data() : nullptr;
      // Fill with NaN: without bias the output must be overwritten, not accumulated into.
      std::vector<float> out(static_cast<size_t>(c.rows * c.out_f), std::numeric_limits<float>::quiet_NaN());
      cpu::linear_forward(out.data(), in.data(), w.data(), bias, c.rows, c.in_f, c.out_f);
      auto in_p = in;
      in_p[0] += 1.0f;
      expect_match_and_sensitivity(out, ref_linear(in, w, bias, c.rows, c.in_f, c.out_f),
                                   ref_linear(in_p, w, bias, c.rows, c.in_f, c.out_f));
    }
  }
}

// ---- layernorm / adaln / rmsnorm -------------------------------------------------------------------

// (x - mean) / sqrt(var + eps) of one row, biased variance, in double.
std::vector<double> ref_normalize_row(const float* x, int64_t dim, double eps) {
  double mean = 0.0;
  for (int64_t i = 0; i < dim; ++i) mean += x[i];
  mean /= static_cast<double>(dim);
  double var = 0.0;
  for (int64_t i = 0; i < dim; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(dim);
  std::vector<double> y(static_cast<size_t>(dim));
  for (int64_t i = 0; i < dim; ++i) y[static_cast<size_t>(i)] = (x[i] - mean) / std::sqrt(var + eps);
  return y;
}

std::vector<double> ref_layernorm(const std::vector<float>& in, const float* weight, const float* bias, int64_t rows,
                                  int64_t dim, double eps) {
  std::vector<double> out(in.size());
  for (int64_t r = 0; r < rows; ++r) {
    const auto y = ref_normalize_row(in.data() + r * dim, dim, eps);
    for (int64_t i = 0; i < dim; ++i) {
      double v = y[static_cast<size_t>(i)];
      if (weight) v *= weight[i];
      if (bias) v += bias[i];
      out[static_cast<size_t>(r * dim + i)] = v;
    }
  }
  return out;
}

TEST(CpuOps, LayerNormMatchesDoubleLoop) {
  const float eps = 1e-6f;
  for (const int64_t dim : {1, 7, 128, 1537}) {
    for (const bool affine : {false, true}) {
      for (const bool in_place : {false, true}) {
        std::ostringstream name;
        name << "dim=" << dim << " affine=" << affine << " in_place=" << in_place;
        SCOPED_TRACE(name.str());
        const int64_t rows = 9;
        // Offset and scale the rows so the mean subtraction matters.
        auto in = random_normal(rows * dim, 21 + dim, 3.0f);
        for (size_t i = 0; i < in.size(); ++i) in[i] += 5.0f;
        const auto w = random_normal(dim, 22);
        const auto b = random_normal(dim, 23);
        const float* weight = affine ? w.data() : nullptr;
        const float* bias = affine ? b.data() : nullptr;
        std::vector<float> out = in;
        cpu::layernorm_forward(out.data(), in_place ? out.data() : in.data(), weight, bias, rows, dim, eps);
        const auto expected = ref_layernorm(in, weight, bias, rows, dim, eps);
        auto in_p = in;
        in_p[0] += 2.0f;
        if (dim == 1) {
          // A single element normalizes to 0 whatever its value: perturb the affine bias instead.
          std::vector<float> b_p = b;
          b_p[0] += 1.0f;
          const auto perturbed = ref_layernorm(in, weight, affine ? b_p.data() : nullptr, rows, dim, eps);
          EXPECT_LE(scaled_error(out, expected), 1.0);
          if (affine) {
            EXPECT_GT(scaled_error(out, perturbed), 1.0);
          }
        } else {
          expect_match_and_sensitivity(out, expected, ref_layernorm(in_p, weight, bias, rows, dim, eps));
        }
      }
    }
  }
}

std::vector<double> ref_adaln(const std::vector<float>& in, const float* shift, const float* scale, int64_t mod_stride,
                              int64_t frames, int64_t tpf, int64_t dim, double eps) {
  std::vector<double> out(in.size());
  for (int64_t f = 0; f < frames; ++f)
    for (int64_t n = 0; n < tpf; ++n) {
      const int64_t r = f * tpf + n;
      const auto y = ref_normalize_row(in.data() + r * dim, dim, eps);
      for (int64_t i = 0; i < dim; ++i)
        out[static_cast<size_t>(r * dim + i)] =
            y[static_cast<size_t>(i)] * (1.0 + scale[f * mod_stride + i]) + shift[f * mod_stride + i];
    }
  return out;
}

TEST(CpuOps, AdaLnModulatePerFrameWithWideModStride) {
  const float eps = 1e-6f;
  const int64_t frames = 3, tpf = 5, dim = 37;
  // shift/scale are slices of a [frames, 6·dim] modulation tensor, as in Wan's blocks.
  const int64_t mod_stride = 6 * dim;
  for (const bool in_place : {false, true}) {
    SCOPED_TRACE(::testing::Message() << "frames=" << frames << " tpf=" << tpf << " dim=" << dim
                                      << " mod_stride=" << mod_stride << " in_place=" << in_place);
    auto in = random_normal(frames * tpf * dim, 31, 2.0f);
    for (size_t i = 0; i < in.size(); ++i) in[i] -= 1.0f;
    const auto mod = random_normal(frames * mod_stride, 32);
    const float* shift = mod.data() + 0 * dim;
    const float* scale = mod.data() + 4 * dim;
    std::vector<float> out = in;
    cpu::adaln_modulate_forward(out.data(), in_place ? out.data() : in.data(), shift, scale, mod_stride, frames, tpf,
                                dim, eps);
    const auto expected = ref_adaln(in, shift, scale, mod_stride, frames, tpf, dim, eps);
    // Perturbing the last frame's modulation must show up (checks the per-frame indexing is live).
    auto mod_p = mod;
    mod_p[static_cast<size_t>((frames - 1) * mod_stride + 0 * dim + 3)] += 1.0f;
    expect_match_and_sensitivity(out, expected,
                                 ref_adaln(in, mod_p.data(), mod_p.data() + 4 * dim, mod_stride, frames, tpf, dim, eps));
    // A reference that ignores the frame (always frame 0's modulation) must not match.
    const auto frame0 = ref_adaln(in, shift, scale, /*mod_stride=*/0, frames, tpf, dim, eps);
    EXPECT_GT(scaled_error(out, frame0), 1.0);
  }
}

std::vector<double> ref_rmsnorm(const std::vector<float>& in, const float* weight, int64_t rows, int64_t dim,
                                double eps) {
  std::vector<double> out(in.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0.0;
    for (int64_t i = 0; i < dim; ++i) ms += static_cast<double>(in[static_cast<size_t>(r * dim + i)]) * in[static_cast<size_t>(r * dim + i)];
    ms /= static_cast<double>(dim);
    for (int64_t i = 0; i < dim; ++i) {
      double v = in[static_cast<size_t>(r * dim + i)] / std::sqrt(ms + eps);
      if (weight) v *= weight[i];
      out[static_cast<size_t>(r * dim + i)] = v;
    }
  }
  return out;
}

TEST(CpuOps, RmsNormMatchesDoubleLoop) {
  const float eps = 1e-6f;
  for (const int64_t dim : {1, 13, 128, 5120}) {
    for (const bool with_weight : {false, true}) {
      for (const bool in_place : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "dim=" << dim << " weight=" << with_weight << " in_place=" << in_place);
        const int64_t rows = 6;
        const auto in = random_normal(rows * dim, 41 + dim, 0.7f);
        const auto w = random_normal(dim, 42);
        const float* weight = with_weight ? w.data() : nullptr;
        std::vector<float> out = in;
        cpu::rmsnorm_forward(out.data(), in_place ? out.data() : in.data(), weight, rows, dim, eps);
        auto in_p = in;
        in_p[static_cast<size_t>(dim * (rows - 1))] *= -1.5f;
        expect_match_and_sensitivity(out, ref_rmsnorm(in, weight, rows, dim, eps),
                                     ref_rmsnorm(in_p, weight, rows, dim, eps));
      }
    }
  }
}

// ---- gated residual ---------------------------------------------------------------------------------

std::vector<double> ref_gated_residual(const std::vector<float>& x, const std::vector<float>& y, const float* gate,
                                       int64_t gate_stride, int64_t frames, int64_t tpf, int64_t dim) {
  std::vector<double> out(x.size());
  for (int64_t r = 0; r < frames * tpf; ++r)
    for (int64_t i = 0; i < dim; ++i) {
      const size_t e = static_cast<size_t>(r * dim + i);
      const double g = gate ? static_cast<double>(gate[(r / tpf) * gate_stride + i]) : 1.0;
      out[e] = static_cast<double>(x[e]) + static_cast<double>(y[e]) * g;
    }
  return out;
}

TEST(CpuOps, GatedResidualAdd) {
  const int64_t frames = 3, tpf = 4, dim = 19, gate_stride = 6 * dim;
  for (const bool with_gate : {false, true}) {
    SCOPED_TRACE(::testing::Message() << "frames=" << frames << " tpf=" << tpf << " dim=" << dim
                                      << " gate_stride=" << gate_stride << " gate=" << with_gate);
    const auto x = random_normal(frames * tpf * dim, 51);
    const auto y = random_normal(frames * tpf * dim, 52);
    const auto gates = random_normal(frames * gate_stride, 53);
    const float* gate = with_gate ? gates.data() + 2 * dim : nullptr;
    std::vector<float> out = x;
    cpu::gated_residual_add(out.data(), y.data(), gate, gate_stride, frames, tpf, dim);
    auto y_p = y;
    y_p.back() += 1.0f;
    expect_match_and_sensitivity(out, ref_gated_residual(x, y, gate, gate_stride, frames, tpf, dim),
                                 ref_gated_residual(x, y_p, gate, gate_stride, frames, tpf, dim));
    if (with_gate) {
      // Using frame 0's gate for every row must not match.
      EXPECT_GT(scaled_error(out, ref_gated_residual(x, y, gate, 0, frames, tpf, dim)), 1.0);
    }
  }
}

// ---- activations ------------------------------------------------------------------------------------

std::vector<float> activation_inputs() {
  auto x = random_normal(1000, 61, 2.5f);
  for (const float v : {0.0f, -0.0f, 1e-6f, -1e-6f, 1.0f, -1.0f, 3.0f, -3.0f, 6.0f, -6.0f, 10.0f, -10.0f, 30.0f,
                        -30.0f, 100.0f, -100.0f})
    x.push_back(v);
  return x;
}

std::vector<double> ref_gelu_tanh(const std::vector<float>& x) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    out[i] = 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / kPi) * (v + 0.044715 * v * v * v)));
  }
  return out;
}

std::vector<double> ref_silu(const std::vector<float>& x) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    out[i] = v / (1.0 + std::exp(-v));
  }
  return out;
}

TEST(CpuOps, GeluTanh) {
  const auto x = activation_inputs();
  std::vector<float> out = x;
  cpu::gelu_tanh_forward(out.data(), static_cast<int64_t>(out.size()));
  auto x_p = x;
  x_p[5] += 0.5f;
  expect_match_and_sensitivity(out, ref_gelu_tanh(x), ref_gelu_tanh(x_p));
  // The tanh approximation differs from the erf GELU by up to ~3e-4: that must be detectable.
  std::vector<double> erf_gelu(x.size());
  for (size_t i = 0; i < x.size(); ++i) erf_gelu[i] = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
  EXPECT_GT(scaled_error(out, erf_gelu), 1.0) << "gelu_tanh should not equal the exact (erf) GELU";
}

TEST(CpuOps, Silu) {
  const auto x = activation_inputs();
  std::vector<float> out = x;
  cpu::silu_forward(out.data(), static_cast<int64_t>(out.size()));
  auto x_p = x;
  x_p[7] += 0.5f;
  expect_match_and_sensitivity(out, ref_silu(x), ref_silu(x_p));
  for (const float v : out) EXPECT_TRUE(std::isfinite(v));
}

// ---- timestep embedding -----------------------------------------------------------------------------

std::vector<double> ref_timestep_embedding(const std::vector<float>& t, int64_t dim) {
  const int64_t half = dim / 2;
  std::vector<double> out(static_cast<size_t>(static_cast<int64_t>(t.size()) * dim));
  for (size_t r = 0; r < t.size(); ++r)
    for (int64_t k = 0; k < half; ++k) {
      const double omega = std::exp(-std::log(10000.0) * static_cast<double>(k) / static_cast<double>(half));
      out[r * static_cast<size_t>(dim) + static_cast<size_t>(k)] = std::cos(static_cast<double>(t[r]) * omega);
      out[r * static_cast<size_t>(dim) + static_cast<size_t>(half + k)] = std::sin(static_cast<double>(t[r]) * omega);
    }
  return out;
}

TEST(CpuOps, TimestepEmbeddingCosineFirst) {
  const std::vector<float> t = {0.0f, 0.25f, 1.0f, 17.0f, 500.0f, 937.5f, 999.0f, 1000.0f};
  for (const int64_t dim : {256, 2, 10}) {
    SCOPED_TRACE(::testing::Message() << "dim=" << dim);
    const int64_t half = dim / 2;
    std::vector<float> out(t.size() * static_cast<size_t>(dim), std::numeric_limits<float>::quiet_NaN());
    cpu::timestep_embedding(out.data(), t.data(), static_cast<int64_t>(t.size()), dim);
    auto t_p = t;
    t_p[5] = 937.0f;  // a half-step shift of the fractional timestep must be visible
    // Absolute tolerance only: every entry is a cos/sin rounded to fp32 once.
    expect_match_and_sensitivity(out, ref_timestep_embedding(t, dim), ref_timestep_embedding(t_p, dim), 0.0,
                                 kF32AbsTol);
    // Cosine first: t = 0 gives [1…1, 0…0]; frequency 0 of t gives cos(t) then sin(t).
    for (int64_t k = 0; k < half; ++k) {
      EXPECT_EQ(out[static_cast<size_t>(k)], 1.0f) << "k=" << k;
      EXPECT_EQ(out[static_cast<size_t>(half + k)], 0.0f) << "k=" << k;
    }
    const size_t row = 5 * static_cast<size_t>(dim);  // t = 937.5
    EXPECT_NEAR(out[row], std::cos(937.5), kF32AbsTol);
    EXPECT_NEAR(out[row + static_cast<size_t>(half)], std::sin(937.5), kF32AbsTol);
    // The swapped (sin-first) layout must be detectably different.
    auto swapped = ref_timestep_embedding(t, dim);
    for (size_t r = 0; r < t.size(); ++r)
      for (int64_t k = 0; k < half; ++k)
        std::swap(swapped[r * static_cast<size_t>(dim) + static_cast<size_t>(k)],
                  swapped[r * static_cast<size_t>(dim) + static_cast<size_t>(half + k)]);
    EXPECT_GT(scaled_error(out, swapped, 0.0, kF32AbsTol), 1.0);
  }
}

// ---- 3D RoPE ----------------------------------------------------------------------------------------

struct RopeCase {
  int64_t head_dim, pairs_t, pairs_h, pairs_w;  // the documented split, written out by hand
  int64_t heads, frames, height, width, frame_start, row_stride;
};

// The expected rotation of x (laid out with row stride), in double, with the axis split given explicitly.
std::vector<double> ref_rope(const std::vector<float>& x, const RopeCase& c) {
  std::vector<double> out(x.begin(), x.end());
  const int64_t pairs = c.head_dim / 2;
  for (int64_t f = 0; f < c.frames; ++f)
    for (int64_t h = 0; h < c.height; ++h)
      for (int64_t w = 0; w < c.width; ++w) {
        const int64_t token = (f * c.height + h) * c.width + w;
        for (int64_t head = 0; head < c.heads; ++head)
          for (int64_t i = 0; i < pairs; ++i) {
            double pos, j, n;
            if (i < c.pairs_t) {
              pos = static_cast<double>(c.frame_start + f), j = static_cast<double>(i), n = 2.0 * c.pairs_t;
            } else if (i < c.pairs_t + c.pairs_h) {
              pos = static_cast<double>(h), j = static_cast<double>(i - c.pairs_t), n = 2.0 * c.pairs_h;
            } else {
              pos = static_cast<double>(w), j = static_cast<double>(i - c.pairs_t - c.pairs_h), n = 2.0 * c.pairs_w;
            }
            const double theta = pos * std::exp(-std::log(10000.0) * 2.0 * j / n);
            const size_t e = static_cast<size_t>(token * c.row_stride + head * c.head_dim + 2 * i);
            const double a = x[e], b = x[e + 1];
            out[e] = a * std::cos(theta) - b * std::sin(theta);
            out[e + 1] = a * std::sin(theta) + b * std::cos(theta);
          }
      }
  return out;
}

TEST(CpuOps, Rope3dMatchesDoubleFormula) {
  std::vector<RopeCase> cases;
  for (const int64_t frame_start : {int64_t{0}, int64_t{7}, int64_t{5000}}) {
    // head_dim 128: 64 pairs split 22 / 21 / 21; head_dim 64: 32 pairs split 12 / 10 / 10.
    cases.push_back({128, 22, 21, 21, 2, 3, 4, 5, frame_start, 2 * 128});
    cases.push_back({64, 12, 10, 10, 3, 2, 3, 6, frame_start, 3 * 64});
    // Row stride past heads·head_dim (e.g. q inside a packed qkv row); the gap must stay untouched.
    cases.push_back({128, 22, 21, 21, 2, 2, 3, 4, frame_start, 2 * 128 + 37});
    cases.push_back({64, 12, 10, 10, 1, 3, 2, 2, frame_start, 3 * 64});
  }
  for (const RopeCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "head_dim=" << c.head_dim << " split=" << c.pairs_t << "/" << c.pairs_h
                                      << "/" << c.pairs_w << " heads=" << c.heads << " FxHxW=" << c.frames << "x"
                                      << c.height << "x" << c.width << " frame_start=" << c.frame_start
                                      << " row_stride=" << c.row_stride);
    ASSERT_EQ(c.pairs_t + c.pairs_h + c.pairs_w, c.head_dim / 2);
    const int64_t tokens = c.frames * c.height * c.width;
    const auto x = random_normal(tokens * c.row_stride, 71 + c.head_dim + c.frame_start);
    std::vector<float> out = x;
    cpu::rope_3d_forward(out.data(), c.row_stride, c.frames, c.height, c.width, c.frame_start, c.heads, c.head_dim);

    const auto expected = ref_rope(x, c);
    // Sensitivity: an off-by-one time position (e.g. frame_start + 1) must be detected.
    RopeCase shifted = c;
    shifted.frame_start += 1;
    expect_match_and_sensitivity(out, expected, ref_rope(x, shifted));
    // And a different split (the width axis taking one more pair from time) must be detected too.
    RopeCase resplit = c;
    resplit.pairs_t -= 1;
    resplit.pairs_w += 1;
    EXPECT_GT(scaled_error(out, ref_rope(x, resplit)), 1.0);

    // Rotation preserves each pair's norm; the padding past heads·head_dim is not written.
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t e = 0; e < c.heads * c.head_dim; e += 2) {
        const size_t i = static_cast<size_t>(t * c.row_stride + e);
        const double before = std::hypot(static_cast<double>(x[i]), static_cast<double>(x[i + 1]));
        const double after = std::hypot(static_cast<double>(out[i]), static_cast<double>(out[i + 1]));
        ASSERT_LE(std::fabs(after - before), kRopeNormAbsTol + kRopeNormRelTol * before) << "token " << t << " elem " << e;
      }
      for (int64_t e = c.heads * c.head_dim; e < c.row_stride; ++e) {
        const size_t i = static_cast<size_t>(t * c.row_stride + e);
        ASSERT_EQ(out[i], x[i]) << "padding written at token " << t << " elem " << e;
      }
    }
  }
}

TEST(CpuOps, Rope3dFrameStartIsAbsolute) {
  // Rotating frames [5000, 5003) directly equals rotating a longer clip and reading its tail: the time
  // position is frame_start + f, with no table limit.
  const int64_t head_dim = 64, heads = 2, height = 2, width = 3, per_frame = height * width * heads * head_dim;
  const auto frame = random_normal(per_frame, 81);
  std::vector<float> direct;
  for (int f = 0; f < 3; ++f) direct.insert(direct.end(), frame.begin(), frame.end());
  cpu::rope_3d_forward(direct.data(), heads * head_dim, 3, height, width, 5000, heads, head_dim);
  std::vector<float> longer;
  for (int f = 0; f < 5; ++f) longer.insert(longer.end(), frame.begin(), frame.end());
  cpu::rope_3d_forward(longer.data(), heads * head_dim, 5, height, width, 4998, heads, head_dim);
  for (int64_t i = 0; i < 3 * per_frame; ++i)
    ASSERT_NEAR(direct[static_cast<size_t>(i)], longer[static_cast<size_t>(2 * per_frame + i)], 2 * kF32AbsTol) << i;
  // Frames at different positions get different rotations.
  double diff = 0.0;
  for (int64_t i = 0; i < per_frame; ++i)
    diff = std::max(diff, std::fabs(static_cast<double>(direct[static_cast<size_t>(i)]) -
                                    direct[static_cast<size_t>(per_frame + i)]));
  EXPECT_GT(diff, 1e-2);
}

// ---- patchify / unpatchify ----------------------------------------------------------------------

struct PatchCase {
  int64_t channels, frames, height, width, pt, ph, pw;
};

std::string describe(const PatchCase& c) {
  std::ostringstream s;
  s << "C=" << c.channels << " F=" << c.frames << " H=" << c.height << " W=" << c.width << " patch=(" << c.pt << ","
    << c.ph << "," << c.pw << ")";
  return s.str();
}

// Walks the latent and scatters each element to its (token, channel-major feature).
std::vector<double> ref_patchify(const std::vector<float>& latent, const PatchCase& c) {
  const int64_t gh = c.height / c.ph, gw = c.width / c.pw;
  const int64_t features = c.channels * c.pt * c.ph * c.pw;
  std::vector<double> tokens(static_cast<size_t>((c.frames / c.pt) * gh * gw * features), 0.0);
  for (int64_t ch = 0; ch < c.channels; ++ch)
    for (int64_t f = 0; f < c.frames; ++f)
      for (int64_t y = 0; y < c.height; ++y)
        for (int64_t x = 0; x < c.width; ++x) {
          const int64_t token = ((f / c.pt) * gh + y / c.ph) * gw + x / c.pw;
          const int64_t feature = ((ch * c.pt + f % c.pt) * c.ph + y % c.ph) * c.pw + x % c.pw;
          tokens[static_cast<size_t>(token * features + feature)] =
              latent[static_cast<size_t>(((ch * c.frames + f) * c.height + y) * c.width + x)];
        }
  return tokens;
}

// Walks the latent and gathers each element from its (token, channel-minor feature).
std::vector<double> ref_unpatchify(const std::vector<float>& tokens, const PatchCase& c) {
  const int64_t gh = c.height / c.ph, gw = c.width / c.pw;
  const int64_t features = c.channels * c.pt * c.ph * c.pw;
  std::vector<double> latent(static_cast<size_t>(c.channels * c.frames * c.height * c.width));
  for (int64_t ch = 0; ch < c.channels; ++ch)
    for (int64_t f = 0; f < c.frames; ++f)
      for (int64_t y = 0; y < c.height; ++y)
        for (int64_t x = 0; x < c.width; ++x) {
          const int64_t token = ((f / c.pt) * gh + y / c.ph) * gw + x / c.pw;
          const int64_t feature = (((f % c.pt) * c.ph + y % c.ph) * c.pw + x % c.pw) * c.channels + ch;
          latent[static_cast<size_t>(((ch * c.frames + f) * c.height + y) * c.width + x)] =
              tokens[static_cast<size_t>(token * features + feature)];
        }
  return latent;
}

const std::vector<PatchCase>& patch_cases() {
  static const std::vector<PatchCase> cases = {
      {16, 3, 6, 10, 1, 2, 2}, {16, 4, 6, 10, 2, 2, 2}, {3, 2, 4, 6, 1, 2, 3}, {5, 6, 3, 4, 2, 1, 2}, {1, 1, 1, 1, 1, 1, 1}};
  return cases;
}

TEST(CpuOps, PatchifyMatchesLoop) {
  for (const PatchCase& c : patch_cases()) {
    SCOPED_TRACE(describe(c));
    const int64_t count = c.channels * c.frames * c.height * c.width;
    const auto latent = random_normal(count, 91 + count);
    std::vector<float> tokens(static_cast<size_t>(count), std::numeric_limits<float>::quiet_NaN());
    cpu::patchify(tokens.data(), latent.data(), c.channels, c.frames, c.height, c.width, c.pt, c.ph, c.pw);
    auto latent_p = latent;
    latent_p[static_cast<size_t>(count - 1)] += 1.0f;
    // A gather is exact.
    expect_match_and_sensitivity(tokens, ref_patchify(latent, c), ref_patchify(latent_p, c), 0.0, 1e-30);
  }
}

TEST(CpuOps, UnpatchifyMatchesLoop) {
  for (const PatchCase& c : patch_cases()) {
    SCOPED_TRACE(describe(c));
    const int64_t count = c.channels * c.frames * c.height * c.width;
    const auto tokens = random_normal(count, 101 + count);
    std::vector<float> latent(static_cast<size_t>(count), std::numeric_limits<float>::quiet_NaN());
    cpu::unpatchify(latent.data(), tokens.data(), c.channels, c.frames, c.height, c.width, c.pt, c.ph, c.pw);
    auto tokens_p = tokens;
    tokens_p[0] += 1.0f;
    expect_match_and_sensitivity(latent, ref_unpatchify(tokens, c), ref_unpatchify(tokens_p, c), 0.0, 1e-30);
  }
}

TEST(CpuOps, UnpatchifyInvertsReorderedPatchify) {
  for (const PatchCase& c : patch_cases()) {
    SCOPED_TRACE(describe(c));
    const int64_t count = c.channels * c.frames * c.height * c.width;
    const int64_t patch = c.pt * c.ph * c.pw, features = c.channels * patch, tokens_n = count / features;
    const auto latent = random_normal(count, 111 + count);
    std::vector<float> tokens(static_cast<size_t>(count));
    cpu::patchify(tokens.data(), latent.data(), c.channels, c.frames, c.height, c.width, c.pt, c.ph, c.pw);
    // Reorder each token's features from channel-major (c·patch + s) to channel-minor (s·C + c).
    std::vector<float> reordered(tokens.size());
    for (int64_t n = 0; n < tokens_n; ++n)
      for (int64_t ch = 0; ch < c.channels; ++ch)
        for (int64_t s = 0; s < patch; ++s)
          reordered[static_cast<size_t>(n * features + s * c.channels + ch)] =
              tokens[static_cast<size_t>(n * features + ch * patch + s)];
    std::vector<float> back(static_cast<size_t>(count), std::numeric_limits<float>::quiet_NaN());
    cpu::unpatchify(back.data(), reordered.data(), c.channels, c.frames, c.height, c.width, c.pt, c.ph, c.pw);
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(back[static_cast<size_t>(i)], latent[static_cast<size_t>(i)]) << i;
    // Without the reordering the round trip fails whenever there is more than one channel and patch element.
    if (c.channels > 1 && patch > 1) {
      std::vector<float> wrong(static_cast<size_t>(count));
      cpu::unpatchify(wrong.data(), tokens.data(), c.channels, c.frames, c.height, c.width, c.pt, c.ph, c.pw);
      int64_t mismatches = 0;
      for (int64_t i = 0; i < count; ++i) mismatches += wrong[static_cast<size_t>(i)] != latent[static_cast<size_t>(i)];
      EXPECT_GT(mismatches, 0);
    }
  }
}

}  // namespace
}  // namespace fastar
