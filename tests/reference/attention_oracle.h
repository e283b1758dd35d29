// The test suite's one attention oracle, in double precision, written from the formula (not from
// any kernel):
//
//   logit(h, i, j) = scale · Σ_d q[i, h, d] · k[j, h, d] + bias(h, i, j)
//   o[i, h, :]     = Σ_j softmax_j(logit(h, i, ·)) · v[j, h, :]        over the keys j visible to (h, i)
//   lse[h, i]      = log Σ_j exp(logit(h, i, j))                      over the same keys
//
// Key j is visible to query i of head h iff the boolean mask allows it (no mask: every key) AND,
// when a block-sparse selection is given, key block ⌊j / block_k⌋ is listed for query block
// ⌊i / block_q⌋ (the CSR form of AttentionParams, kernels/cpu/attention.h).
//
// Empty rows, stated here once for the whole suite: a query row that sees no key at all has
// o = 0 exactly and lse = −inf, the rule of the engine's attention kernels. The oracle never
// produces a NaN; attention_scaled_error() checks those rows against exact zeros (a kernel that
// writes NaN, garbage, or a tolerance-sized value there fails).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace fastar::testing {

// A read-only [rows, heads, head_dim] view with strides in elements, over float or double storage.
class OracleOperand {
 public:
  OracleOperand() = default;
  OracleOperand(const float* data, int64_t row_stride, int64_t head_stride)
      : f32_(data), row_stride_(row_stride), head_stride_(head_stride) {}
  OracleOperand(const double* data, int64_t row_stride, int64_t head_stride)
      : f64_(data), row_stride_(row_stride), head_stride_(head_stride) {}
  // Rows of heads · head_dim contiguous values, heads side by side ([rows, heads · head_dim]).
  static OracleOperand packed(const float* data, int64_t heads, int64_t head_dim) {
    return {data, heads * head_dim, head_dim};
  }
  static OracleOperand packed(const double* data, int64_t heads, int64_t head_dim) {
    return {data, heads * head_dim, head_dim};
  }

  bool defined() const { return f32_ != nullptr || f64_ != nullptr; }
  double at(int64_t row, int64_t head, int64_t d) const {
    const int64_t e = row * row_stride_ + head * head_stride_ + d;
    return f32_ ? static_cast<double>(f32_[e]) : f64_[e];
  }

 private:
  const float* f32_ = nullptr;
  const double* f64_ = nullptr;
  int64_t row_stride_ = 0, head_stride_ = 0;
};

// Block-sparse key selection, shared by all heads: query block b = rows [b·block_q, (b+1)·block_q)
// sees key blocks block_index[block_offsets[b] .. block_offsets[b+1]), key block kb = keys
// [kb·block_k, (kb+1)·block_k). block_offsets == nullptr: no selection (dense).
struct OracleBlockSparse {
  const int32_t* block_offsets = nullptr;  // [ceil(q_len / block_q) + 1]
  const int32_t* block_index = nullptr;
  int64_t block_q = 0;
  int64_t block_k = 0;
};

struct OracleAttentionArgs {
  OracleOperand q;  // [q_len, heads, head_dim]
  OracleOperand k;  // [kv_len, heads, head_dim]
  OracleOperand v;  // [kv_len, heads, head_dim]
  int64_t heads = 0, head_dim = 0, q_len = 0, kv_len = 0;
  double scale = 0.0;  // finite and non-zero; usually 1/√head_dim
  // Optional boolean mask: true = key j visible to query i of head h. Empty = every key.
  std::function<bool(int64_t h, int64_t i, int64_t j)> mask;
  // Optional additive logit bias; must be finite on every visible key. Empty = 0.
  std::function<double(int64_t h, int64_t i, int64_t j)> bias;
  OracleBlockSparse block_sparse;
};

// Which keys each query sees under `args` (mask ∧ block-sparse selection), as defined above.
class OracleVisibility {
 public:
  explicit OracleVisibility(const OracleAttentionArgs& args);
  bool operator()(int64_t h, int64_t i, int64_t j) const;

 private:
  const OracleAttentionArgs& args_;
  std::vector<std::vector<char>> block_allowed_;  // [query block][key block]
};

struct OracleAttentionResult {
  int64_t heads = 0, q_len = 0, head_dim = 0;
  std::vector<double> o;               // [q_len, heads, head_dim]; exactly 0 on empty rows
  std::vector<double> lse;             // [heads, q_len]; −inf on empty rows
  std::vector<int64_t> visible_keys;   // [heads, q_len]

  bool row_empty(int64_t h, int64_t i) const { return visible_keys[static_cast<size_t>(h * q_len + i)] == 0; }
  int64_t empty_rows() const;          // over all heads
  int64_t visible_pairs() const;       // Σ visible_keys
};

// Throws fastar::Error on inconsistent arguments (missing operand, bad scale, a CSR list naming a
// key block outside [0, ceil(kv_len / block_k)), a non-finite bias on a visible key).
OracleAttentionResult attention_oracle(const OracleAttentionArgs& args);

// The comparison for attention outputs, built on max_scaled_error (scaled_error.h): `actual`
// [q_len, heads, head_dim] contiguous against the oracle; infinity (a failure) when an entry of an
// empty row is anything but exactly 0 or when any value is non-finite.
double attention_scaled_error(const float* actual, const OracleAttentionResult& expected, double rel_tol,
                              double abs_tol);
// The same for lse [heads, q_len]: empty rows must be exactly −inf, the others finite and within
// tolerance.
double attention_lse_scaled_error(const float* actual_lse, const OracleAttentionResult& expected, double rel_tol,
                                  double abs_tol);

}  // namespace fastar::testing
