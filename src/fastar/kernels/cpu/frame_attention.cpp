#include "fastar/kernels/cpu/frame_attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace fastar::cpu {

// Loops over fewer elements than this run on one thread: at the narrow test widths a parallel
// region costs more than the work, and far more when the cores are shared.
constexpr int64_t kParallelMinElements = int64_t{1} << 16;

void frame_attention_forward(float* out, int64_t out_row_stride, const float* qkv, int64_t qkv_row_stride,
                             int64_t channels, int64_t tokens) {
  const int C = static_cast<int>(channels), N = static_cast<int>(tokens);
  const float* q = qkv;
  const float* k = qkv + channels * qkv_row_stride;
  const float* v = qkv + 2 * channels * qkv_row_stride;
  std::vector<float> scores(static_cast<size_t>(tokens * tokens));  // [query, key]
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(channels)));
  // scores[N, N] = scale · qᵀ[N, C] · k[C, N]
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, C, scale, q, static_cast<int>(qkv_row_stride), k,
              static_cast<int>(qkv_row_stride), 0.0f, scores.data(), N);
#pragma omp parallel for schedule(static) if (tokens * tokens >= kParallelMinElements)
  for (int64_t i = 0; i < tokens; ++i) {
    float* row = scores.data() + i * tokens;
    const float peak = *std::max_element(row, row + tokens);
    double sum = 0.0;
    for (int64_t j = 0; j < tokens; ++j) {
      row[j] = std::exp(row[j] - peak);
      sum += row[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < tokens; ++j) row[j] *= inv;
  }
  // out[C, N] = v[C, N(keys)] · scoresᵀ[N(keys), N(queries)]
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, N, N, 1.0f, v, static_cast<int>(qkv_row_stride),
              scores.data(), N, 0.0f, out, static_cast<int>(out_row_stride));
}

}  // namespace fastar::cpu
