#include "fastar/kernels/cpu/stored_weight_linear.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/ops.h"

namespace fastar::cpu {

namespace {
constexpr int64_t kScratchFloats = int64_t{1} << 20;  // 4 MiB of converted weight rows per thread
}  // namespace

void stored_weight_linear(float* out, const float* in, const void* weight, DType weight_dtype, int64_t rows,
                          int64_t in_features, int64_t out_features) {
  FASTAR_ASSERT(out != in, "stored_weight_linear: out aliases in");
  if (rows == 0 || out_features == 0) return;
  if (weight_dtype == DType::F32) {
    linear_forward(out, in, static_cast<const float*>(weight), nullptr, rows, in_features, out_features);
    return;
  }
  FASTAR_ASSERT(weight_dtype == DType::BF16 || weight_dtype == DType::F16,
                "stored_weight_linear: weight dtype " << dtype_name(weight_dtype));
  const int64_t block = std::max<int64_t>(1, std::min(out_features, kScratchFloats / std::max<int64_t>(1, in_features)));
  const int64_t blocks = (out_features + block - 1) / block;
  const auto* bytes = static_cast<const uint8_t*>(weight);
  const int64_t row_bytes = in_features * dtype_size(weight_dtype);
  // One block per task: convert its weight rows, then a single-threaded sgemm into its output columns
  // (OpenBLAS built for OpenMP runs single-threaded inside a parallel region).
#pragma omp parallel
  {
    std::vector<float> scratch(static_cast<size_t>(block * in_features));
#pragma omp for schedule(dynamic)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t first = b * block;
      const int64_t count = std::min(block, out_features - first);
      convert_to_f32(bytes + first * row_bytes, weight_dtype, scratch.data(), count * in_features);
      // out[:, first:first+count] = in · scratch[count, in]ᵀ
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(count),
                  static_cast<int>(in_features), 1.0f, in, static_cast<int>(in_features), scratch.data(),
                  static_cast<int>(in_features), 0.0f, out + first, static_cast<int>(out_features));
    }
  }
}

}  // namespace fastar::cpu
