#include "fastar/attention/ann_quant.h"

#include <cmath>
#include <limits>

#include "fastar/core/error.h"

namespace fastar {

namespace {

constexpr int64_t kMaxInt8Dim = 133000;  // keeps 127² · dim inside int32

// Returns false (and writes nothing) when the row holds a NaN or an infinity.
bool quantize_row(const float* x, int64_t dim, int8_t* codes, float* scale) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t j = 0; j < dim; ++j) {
    finite &= std::isfinite(x[j]);
    amax = std::max(amax, std::fabs(x[j]));
  }
  if (!finite) return false;
  if (amax == 0.0f) {
    *scale = 0.0f;
    for (int64_t j = 0; j < dim; ++j) codes[j] = 0;
    return true;
  }
  *scale = amax / 127.0f;
  const float inv = 127.0f / amax;
  for (int64_t j = 0; j < dim; ++j) {
    const float c = std::nearbyint(x[j] * inv);
    codes[j] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, c)));
  }
  return true;
}

constexpr const char* kNonFinite = "int8 quantization: the input row has a non-finite value (NaN or inf upstream)";

// Quantizes rows into out's rows [first, first + rows); false if any row is not finite.
bool quantize_into(const float* x, int64_t rows, int64_t row_stride, int64_t dim, int64_t first, Int8Rows* out) {
  bool ok = true;
#pragma omp parallel for schedule(static) reduction(&& : ok) if (rows * dim > 65536)
  for (int64_t r = 0; r < rows; ++r)
    ok = quantize_row(x + r * row_stride, dim, out->codes.data() + (first + r) * dim, out->scale.data() + first + r) && ok;
  return ok;
}

}  // namespace

void quantize_rows_int8(const float* x, int64_t rows, int64_t row_stride, int64_t dim, Int8Rows* out) {
  out->codes.clear();
  out->scale.clear();
  out->rows = 0;
  out->dim = dim;
  append_rows_int8(x, rows, row_stride, dim, out);
}

void append_rows_int8(const float* x, int64_t rows, int64_t row_stride, int64_t dim, Int8Rows* out) {
  FASTAR_CHECK(dim > 0 && dim <= kMaxInt8Dim, "int8 quantization: dim must be in [1, " << kMaxInt8Dim << "] (got "
                                                                                       << dim << ")");
  FASTAR_CHECK(row_stride >= dim, "int8 quantization: row stride " << row_stride << " < dim " << dim);
  FASTAR_CHECK(rows >= 0 && (rows == 0 || x), "int8 quantization: bad rows or null input");
  FASTAR_CHECK(out->rows == 0 || out->dim == dim,
               "int8 quantization: appending rows of dim " << dim << " to rows of dim " << out->dim);
  out->dim = dim;
  const int64_t first = out->rows;
  out->codes.resize(static_cast<size_t>((first + rows) * dim));
  out->scale.resize(static_cast<size_t>(first + rows));
  if (!quantize_into(x, rows, row_stride, dim, first, out)) {
    out->codes.resize(static_cast<size_t>(first * dim));
    out->scale.resize(static_cast<size_t>(first));
    FASTAR_FAIL(kNonFinite);
  }
  out->rows = first + rows;
}

void set_row_int8(const float* x, int64_t row, Int8Rows* out) {
  FASTAR_CHECK(row >= 0 && row < out->rows, "int8 quantization: row " << row << " out of [0, " << out->rows << ")");
  FASTAR_CHECK(quantize_row(x, out->dim, out->codes.data() + row * out->dim, out->scale.data() + row), kNonFinite);
}

void int8_top1(const Int8Rows& queries, const Int8Rows& database, int32_t* best, float* score) {
  FASTAR_CHECK(queries.rows == 0 || database.rows == 0 || queries.dim == database.dim,
               "int8 top-1: query dim " << queries.dim << " != database dim " << database.dim);
  const int64_t dim = queries.dim, nq = queries.rows, nd = database.rows;
  const float neg_inf = -std::numeric_limits<float>::infinity();
#pragma omp parallel for schedule(static) if (nq * nd * dim > 262144)
  for (int64_t i = 0; i < nq; ++i) {
    const int8_t* qc = queries.codes.data() + i * dim;
    const float qs = queries.scale[static_cast<size_t>(i)];
    int32_t arg = -1;
    float top = neg_inf;
    for (int64_t r = 0; r < nd; ++r) {
      const int8_t* dc = database.codes.data() + r * dim;
      int32_t acc = 0;
      for (int64_t j = 0; j < dim; ++j) acc += static_cast<int32_t>(qc[j]) * static_cast<int32_t>(dc[j]);
      const float s = qs * database.scale[static_cast<size_t>(r)] * static_cast<float>(acc);
      if (arg < 0 || s > top) {
        arg = static_cast<int32_t>(r);
        top = s;
      }
    }
    best[i] = arg;
    score[i] = top;
  }
}

}  // namespace fastar
