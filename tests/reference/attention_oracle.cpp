#include "reference/attention_oracle.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "fastar/core/error.h"
#include "reference/scaled_error.h"

namespace fastar::testing {

OracleVisibility::OracleVisibility(const OracleAttentionArgs& args) : args_(args) {
  const OracleBlockSparse& bs = args.block_sparse;
  if (!bs.block_offsets) return;
  FASTAR_CHECK(bs.block_index && bs.block_q > 0 && bs.block_k > 0,
               "attention oracle: a block-sparse selection needs block_index and block_q, block_k > 0");
  const int64_t q_blocks = (args.q_len + bs.block_q - 1) / bs.block_q;
  const int64_t k_blocks = (args.kv_len + bs.block_k - 1) / bs.block_k;
  block_allowed_.assign(static_cast<size_t>(q_blocks), std::vector<char>(static_cast<size_t>(k_blocks), 0));
  for (int64_t b = 0; b < q_blocks; ++b) {
    FASTAR_CHECK(bs.block_offsets[b] <= bs.block_offsets[b + 1],
                 "attention oracle: block_offsets must not decrease (query block " << b << ")");
    for (int32_t e = bs.block_offsets[b]; e < bs.block_offsets[b + 1]; ++e) {
      const int32_t kb = bs.block_index[e];
      FASTAR_CHECK(kb >= 0 && kb < k_blocks, "attention oracle: query block " << b << " lists key block " << kb
                                                                              << ", outside [0, " << k_blocks << ")");
      block_allowed_[static_cast<size_t>(b)][static_cast<size_t>(kb)] = 1;
    }
  }
}

bool OracleVisibility::operator()(int64_t h, int64_t i, int64_t j) const {
  const OracleBlockSparse& bs = args_.block_sparse;
  if (bs.block_offsets && !block_allowed_[static_cast<size_t>(i / bs.block_q)][static_cast<size_t>(j / bs.block_k)])
    return false;
  return !args_.mask || args_.mask(h, i, j);
}

int64_t OracleAttentionResult::empty_rows() const {
  return std::count(visible_keys.begin(), visible_keys.end(), int64_t{0});
}

int64_t OracleAttentionResult::visible_pairs() const {
  int64_t total = 0;
  for (const int64_t n : visible_keys) total += n;
  return total;
}

OracleAttentionResult attention_oracle(const OracleAttentionArgs& args) {
  FASTAR_CHECK(args.q.defined() && args.k.defined() && args.v.defined(), "attention oracle: q, k and v must be set");
  FASTAR_CHECK(args.heads > 0 && args.head_dim > 0 && args.q_len >= 0 && args.kv_len >= 0,
               "attention oracle: heads and head_dim must be > 0, lengths >= 0");
  FASTAR_CHECK(std::isfinite(args.scale) && args.scale != 0.0, "attention oracle: scale must be finite and non-zero");
  const OracleVisibility visible(args);
  OracleAttentionResult r;
  r.heads = args.heads, r.q_len = args.q_len, r.head_dim = args.head_dim;
  r.o.assign(static_cast<size_t>(args.q_len * args.heads * args.head_dim), 0.0);
  r.lse.assign(static_cast<size_t>(args.heads * args.q_len), -std::numeric_limits<double>::infinity());
  r.visible_keys.assign(static_cast<size_t>(args.heads * args.q_len), 0);

  std::vector<int64_t> keys;
  std::vector<double> logits, acc(static_cast<size_t>(args.head_dim));
  for (int64_t h = 0; h < args.heads; ++h)
    for (int64_t i = 0; i < args.q_len; ++i) {
      keys.clear();
      logits.clear();
      for (int64_t j = 0; j < args.kv_len; ++j) {
        if (!visible(h, i, j)) continue;
        double dot = 0.0;
        for (int64_t d = 0; d < args.head_dim; ++d) dot += args.q.at(i, h, d) * args.k.at(j, h, d);
        double logit = args.scale * dot;
        if (args.bias) {
          const double b = args.bias(h, i, j);
          FASTAR_CHECK(std::isfinite(b), "attention oracle: bias(" << h << ", " << i << ", " << j << ") = " << b
                                                                     << " on a visible key; mask the key instead");
          logit += b;
        }
        keys.push_back(j);
        logits.push_back(logit);
      }
      r.visible_keys[static_cast<size_t>(h * args.q_len + i)] = static_cast<int64_t>(keys.size());
      if (keys.empty()) continue;  // empty row: o stays exactly 0, lse −inf
      const double top = *std::max_element(logits.begin(), logits.end());
      double total = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (size_t n = 0; n < keys.size(); ++n) {
        const double w = std::exp(logits[n] - top);
        total += w;
        for (int64_t d = 0; d < args.head_dim; ++d) acc[static_cast<size_t>(d)] += w * args.v.at(keys[n], h, d);
      }
      double* o = r.o.data() + (i * args.heads + h) * args.head_dim;
      for (int64_t d = 0; d < args.head_dim; ++d) o[d] = acc[static_cast<size_t>(d)] / total;
      r.lse[static_cast<size_t>(h * args.q_len + i)] = top + std::log(total);
    }
  return r;
}

double attention_scaled_error(const float* actual, const OracleAttentionResult& expected, double rel_tol,
                              double abs_tol) {
  for (int64_t i = 0; i < expected.q_len; ++i)
    for (int64_t h = 0; h < expected.heads; ++h) {
      if (!expected.row_empty(h, i)) continue;
      const float* row = actual + (i * expected.heads + h) * expected.head_dim;
      for (int64_t d = 0; d < expected.head_dim; ++d)
        if (row[d] != 0.0f) return INFINITY;  // NaN compares unequal too
    }
  return max_scaled_error(actual, expected.o.data(), static_cast<int64_t>(expected.o.size()), rel_tol, abs_tol);
}

double attention_lse_scaled_error(const float* actual_lse, const OracleAttentionResult& expected, double rel_tol,
                                  double abs_tol) {
  double worst = 0.0;
  for (int64_t h = 0; h < expected.heads; ++h)
    for (int64_t i = 0; i < expected.q_len; ++i) {
      const size_t e = static_cast<size_t>(h * expected.q_len + i);
      if (expected.row_empty(h, i)) {
        if (!(std::isinf(actual_lse[e]) && actual_lse[e] < 0)) return INFINITY;
        continue;
      }
      worst = std::max(worst, max_scaled_error(actual_lse + e, expected.lse.data() + e, 1, rel_tol, abs_tol));
    }
  return worst;
}

}  // namespace fastar::testing
