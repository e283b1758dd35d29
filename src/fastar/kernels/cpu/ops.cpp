#include "fastar/kernels/cpu/ops.h"

#include <cblas.h>

#include <cmath>
#include <vector>

#include "fastar/core/error.h"

namespace fastar::cpu {

void linear_forward(float* out, const float* in, const float* weight, const float* bias, int64_t rows,
                    int64_t in_features, int64_t out_features) {
  FASTAR_ASSERT(out != in, "linear_forward: out aliases in");
  if (rows == 0 || out_features == 0) return;
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out_features; ++o) out[r * out_features + o] = bias[o];
  }
  // out[rows, out] (+)= in[rows, in] · weight[out, in]ᵀ
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(out_features),
              static_cast<int>(in_features), 1.0f, in, static_cast<int>(in_features), weight,
              static_cast<int>(in_features), bias ? 1.0f : 0.0f, out, static_cast<int>(out_features));
}

namespace {
// mean and 1/sqrt(var + eps) of one row, accumulated in double.
inline void row_moments(const float* x, int64_t dim, float eps, double* mean, double* inv_std) {
  double sum = 0.0, sum_sq = 0.0;
  for (int64_t i = 0; i < dim; ++i) sum += x[i];
  const double m = sum / static_cast<double>(dim);
  for (int64_t i = 0; i < dim; ++i) {
    const double d = x[i] - m;
    sum_sq += d * d;
  }
  *mean = m;
  *inv_std = 1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + eps);
}
}  // namespace

void layernorm_forward(float* out, const float* in, const float* weight, const float* bias, int64_t rows, int64_t dim,
                       float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * dim;
    float* y = out + r * dim;
    double mean, inv_std;
    row_moments(x, dim, eps, &mean, &inv_std);
    for (int64_t i = 0; i < dim; ++i) {
      float v = static_cast<float>((x[i] - mean) * inv_std);
      if (weight) v *= weight[i];
      if (bias) v += bias[i];
      y[i] = v;
    }
  }
}

void adaln_modulate_forward(float* out, const float* in, const float* shift, const float* scale, int64_t mod_stride,
                            int64_t frames, int64_t tokens_per_frame, int64_t dim, float eps) {
  const int64_t rows = frames * tokens_per_frame;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t f = r / tokens_per_frame;
    const float* sh = shift + f * mod_stride;
    const float* sc = scale + f * mod_stride;
    const float* x = in + r * dim;
    float* y = out + r * dim;
    double mean, inv_std;
    row_moments(x, dim, eps, &mean, &inv_std);
    for (int64_t i = 0; i < dim; ++i) {
      const float normed = static_cast<float>((x[i] - mean) * inv_std);
      y[i] = normed * (1.0f + sc[i]) + sh[i];
    }
  }
}

void rmsnorm_forward(float* out, const float* in, const float* weight, int64_t rows, int64_t dim, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * dim;
    float* y = out + r * dim;
    double sum_sq = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
    const double inv_rms = 1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i) {
      const float v = static_cast<float>(x[i] * inv_rms);
      y[i] = weight ? v * weight[i] : v;
    }
  }
}

void gated_residual_add(float* x, const float* y, const float* gate, int64_t gate_stride, int64_t frames,
                        int64_t tokens_per_frame, int64_t dim) {
  const int64_t rows = frames * tokens_per_frame;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * dim;
    const float* yr = y + r * dim;
    if (gate) {
      const float* g = gate + (r / tokens_per_frame) * gate_stride;
      for (int64_t i = 0; i < dim; ++i) xr[i] += yr[i] * g[i];
    } else {
      for (int64_t i = 0; i < dim; ++i) xr[i] += yr[i];
    }
  }
}

void gelu_tanh_forward(float* x, int64_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void silu_forward(float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void timestep_embedding(float* out, const float* timesteps, int64_t n, int64_t dim) {
  FASTAR_ASSERT(dim % 2 == 0, "timestep_embedding: odd dim " << dim);
  const int64_t half = dim / 2;
  for (int64_t r = 0; r < n; ++r) {
    const double t = timesteps[r];
    for (int64_t k = 0; k < half; ++k) {
      const double omega = std::pow(10000.0, -static_cast<double>(k) / static_cast<double>(half));
      out[r * dim + k] = static_cast<float>(std::cos(t * omega));
      out[r * dim + half + k] = static_cast<float>(std::sin(t * omega));
    }
  }
}

namespace {
// cos/sin of `pairs` rotation angles pos·10000^(−2j/n), n = 2·pairs, for positions [start, start+count).
void rope_axis_table(int64_t start, int64_t count, int64_t pairs, std::vector<double>* cos_out,
                     std::vector<double>* sin_out) {
  cos_out->resize(static_cast<size_t>(count * pairs));
  sin_out->resize(static_cast<size_t>(count * pairs));
  const double n = 2.0 * static_cast<double>(pairs);
  for (int64_t p = 0; p < count; ++p) {
    const double pos = static_cast<double>(start + p);
    for (int64_t j = 0; j < pairs; ++j) {
      const double angle = pos * std::pow(10000.0, -2.0 * static_cast<double>(j) / n);
      (*cos_out)[static_cast<size_t>(p * pairs + j)] = std::cos(angle);
      (*sin_out)[static_cast<size_t>(p * pairs + j)] = std::sin(angle);
    }
  }
}
}  // namespace

void rope_3d_forward(float* x, int64_t row_stride, int64_t frames, int64_t height, int64_t width, int64_t frame_start,
                     int64_t heads, int64_t head_dim) {
  FASTAR_ASSERT(head_dim % 2 == 0, "rope: odd head_dim " << head_dim);
  const int64_t c = head_dim / 2;
  const int64_t pairs_h = c / 3, pairs_w = c / 3, pairs_t = c - 2 * (c / 3);
  std::vector<double> cos_t, sin_t, cos_h, sin_h, cos_w, sin_w;
  rope_axis_table(frame_start, frames, pairs_t, &cos_t, &sin_t);
  rope_axis_table(0, height, pairs_h, &cos_h, &sin_h);
  rope_axis_table(0, width, pairs_w, &cos_w, &sin_w);
  const int64_t tokens = frames * height * width;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < tokens; ++n) {
    const int64_t f = n / (height * width), h = (n / width) % height, w = n % width;
    float* row = x + n * row_stride;
    for (int64_t head = 0; head < heads; ++head) {
      float* v = row + head * head_dim;
      for (int64_t j = 0; j < c; ++j) {
        double cs, sn;
        if (j < pairs_t) {
          cs = cos_t[static_cast<size_t>(f * pairs_t + j)];
          sn = sin_t[static_cast<size_t>(f * pairs_t + j)];
        } else if (j < pairs_t + pairs_h) {
          cs = cos_h[static_cast<size_t>(h * pairs_h + j - pairs_t)];
          sn = sin_h[static_cast<size_t>(h * pairs_h + j - pairs_t)];
        } else {
          cs = cos_w[static_cast<size_t>(w * pairs_w + j - pairs_t - pairs_h)];
          sn = sin_w[static_cast<size_t>(w * pairs_w + j - pairs_t - pairs_h)];
        }
        const double a = v[2 * j], b = v[2 * j + 1];
        v[2 * j] = static_cast<float>(a * cs - b * sn);
        v[2 * j + 1] = static_cast<float>(a * sn + b * cs);
      }
    }
  }
}

void patchify(float* tokens, const float* latent, int64_t channels, int64_t frames, int64_t height, int64_t width,
              int64_t pt, int64_t ph, int64_t pw) {
  const int64_t gf = frames / pt, gh = height / ph, gw = width / pw;
  const int64_t features = channels * pt * ph * pw;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < gf * gh * gw; ++n) {
    const int64_t f = n / (gh * gw), h = (n / gw) % gh, w = n % gw;
    float* out = tokens + n * features;
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t p = 0; p < pt; ++p)
        for (int64_t q = 0; q < ph; ++q)
          for (int64_t r = 0; r < pw; ++r)
            out[((c * pt + p) * ph + q) * pw + r] =
                latent[((c * frames + f * pt + p) * height + h * ph + q) * width + w * pw + r];
  }
}

void unpatchify(float* latent, const float* tokens, int64_t channels, int64_t frames, int64_t height, int64_t width,
                int64_t pt, int64_t ph, int64_t pw) {
  const int64_t gf = frames / pt, gh = height / ph, gw = width / pw;
  const int64_t features = channels * pt * ph * pw;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < gf * gh * gw; ++n) {
    const int64_t f = n / (gh * gw), h = (n / gw) % gh, w = n % gw;
    const float* in = tokens + n * features;
    for (int64_t p = 0; p < pt; ++p)
      for (int64_t q = 0; q < ph; ++q)
        for (int64_t r = 0; r < pw; ++r)
          for (int64_t c = 0; c < channels; ++c)
            latent[((c * frames + f * pt + p) * height + h * ph + q) * width + w * pw + r] =
                in[((p * ph + q) * pw + r) * channels + c];
  }
}

}  // namespace fastar::cpu
