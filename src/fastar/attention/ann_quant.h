// 8-bit quantized similarity search for the ANN toolkit of FAST-AR (papers.md §1.3: "quantize
// queries and keys to a low-bit representation and perform nearest-neighbor search directly in
// the quantized space"; 8 bits by default).
//
// Symmetric per-row scalar quantization: scale = max_j |x_j| / 127, code_j = round(x_j / scale)
// clamped to [−127, 127] (a zero row gets scale 0 and all-zero codes). The dequantized dot product
// of two rows is scale_a · scale_b · Σ_j code_a[j]·code_b[j], accumulated exactly in int32
// (|Σ| ≤ 127²·dim < 2^31 for dim ≤ 133 000).
// For cosine search, normalise the rows to unit length before quantizing.
#pragma once

#include <cstdint>
#include <vector>

namespace fastar {

struct Int8Rows {
  std::vector<int8_t> codes;  // [rows, dim]
  std::vector<float> scale;   // [rows]
  int64_t rows = 0, dim = 0;
};

// x: [rows, row_stride] floats (row_stride >= dim). Overwrites *out. Threads over rows.
void quantize_rows_int8(const float* x, int64_t rows, int64_t row_stride, int64_t dim, Int8Rows* out);

// Appends rows quantized like quantize_rows_int8 (out->dim must equal dim, or out be empty).
void append_rows_int8(const float* x, int64_t rows, int64_t row_stride, int64_t dim, Int8Rows* out);

// Replaces row `row` of *out by the quantized x[0 .. dim).
void set_row_int8(const float* x, int64_t row, Int8Rows* out);

// best[i] = index of the database row with the largest dequantized dot product with query row i
// (ties → lowest index), score[i] its value; an empty database gives best = −1, score = −inf.
// queries.dim must equal database.dim. Threads over queries.
void int8_top1(const Int8Rows& queries, const Int8Rows& database, int32_t* best, float* score);

}  // namespace fastar
