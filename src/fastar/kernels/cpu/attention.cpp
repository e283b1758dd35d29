#include "fastar/kernels/cpu/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "fastar/core/error.h"

namespace fastar {

AttentionParams packed_attention_params(const void* q, const void* k, const void* v, void* o, int64_t q_len,
                                        int64_t kv_len, int64_t heads, int64_t head_dim) {
  AttentionParams p;
  p.q = q;
  p.k = k;
  p.v = v;
  p.o = o;
  const int64_t row = heads * head_dim;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = row;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = head_dim;
  p.num_heads = heads;
  p.head_dim = head_dim;
  p.q_len = q_len;
  p.kv_len = kv_len;
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  return p;
}

namespace cpu {

namespace {

constexpr int64_t kQueryTile = 64;  // query rows that share one pass over the keys
constexpr int64_t kKeyTile = 128;   // keys scored at a time (one S tile = kQueryTile × kKeyTile floats)

struct KeyRange {
  int64_t begin, end;
};

// The key ranges query block `qb` may visit (before the block-causal clip).
void key_ranges_for_block(const AttentionParams& p, int64_t qb, std::vector<KeyRange>* ranges) {
  ranges->clear();
  if (!p.block_offsets) {
    ranges->push_back({0, p.kv_len});
    return;
  }
  for (int32_t e = p.block_offsets[qb]; e < p.block_offsets[qb + 1]; ++e) {
    const int64_t kb = p.block_index[e];
    const int64_t begin = kb * p.block_k, end = std::min(p.kv_len, begin + p.block_k);
    if (begin < end) ranges->push_back({begin, end});
  }
}

}  // namespace

void attention_forward(const AttentionParams& p) {
  FASTAR_ASSERT(p.q && p.k && p.v && p.o, "attention_forward: null tensor");
  FASTAR_ASSERT(p.head_dim > 0 && p.num_heads > 0 && p.q_len >= 0 && p.kv_len >= 0, "attention_forward: bad sizes");
  FASTAR_ASSERT(p.causal_block == 0 || p.q_len <= p.kv_len,
                "attention_forward: a block-causal mask needs the queries to be the last q_len keys (q_len <= kv_len)");
  FASTAR_ASSERT(!p.block_offsets || (p.block_index && p.block_q > 0 && p.block_k > 0),
                "attention_forward: block-sparse mask needs block_index, block_q and block_k");
  const auto* q = static_cast<const float*>(p.q);
  const auto* k = static_cast<const float*>(p.k);
  const auto* v = static_cast<const float*>(p.v);
  auto* o = static_cast<float*>(p.o);
  const int64_t hd = p.head_dim;
  // With a block-sparse mask, a query tile is one mask block so all its rows share the key list.
  const int64_t tile_q = p.block_offsets ? p.block_q : kQueryTile;
  const int64_t num_tiles = (p.q_len + tile_q - 1) / tile_q;
  const int64_t causal_offset = p.kv_len - p.q_len;
  const float neg_inf = -std::numeric_limits<float>::infinity();

#pragma omp parallel
  {
    std::vector<KeyRange> ranges;
    std::vector<float> row_max(static_cast<size_t>(tile_q)), row_sum(static_cast<size_t>(tile_q));
    std::vector<float> acc(static_cast<size_t>(tile_q * hd));
    std::vector<int64_t> row_limit(static_cast<size_t>(tile_q));
    std::vector<float> scores(static_cast<size_t>(tile_q * kKeyTile));  // S, then P, of one key tile

#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t h = 0; h < p.num_heads; ++h) {
      for (int64_t tile = 0; tile < num_tiles; ++tile) {
        const int64_t q0 = tile * tile_q, rows = std::min(tile_q, p.q_len - q0);
        key_ranges_for_block(p, tile, &ranges);
        std::fill(row_max.begin(), row_max.end(), neg_inf);
        std::fill(row_sum.begin(), row_sum.end(), 0.0f);
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t r = 0; r < rows; ++r) {
          int64_t limit = p.kv_len;
          if (p.causal_block > 0)
            limit = std::min(p.kv_len, ((q0 + r + causal_offset) / p.causal_block + 1) * p.causal_block);
          row_limit[static_cast<size_t>(r)] = limit;
        }
        const float* bias = p.key_bias ? p.key_bias + h * p.key_bias_head_stride : nullptr;
        const float* q_tile = q + q0 * p.q_row_stride + h * p.q_head_stride;

        for (const KeyRange& range : ranges) {
          for (int64_t j0 = range.begin; j0 < range.end; j0 += kKeyTile) {
            const int64_t n = std::min(range.end, j0 + kKeyTile) - j0;
            // S[rows, n] = scale · Q_tile · K_tileᵀ (one small GEMM; OpenBLAS runs it on this thread).
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n),
                        static_cast<int>(hd), p.scale, q_tile, static_cast<int>(p.q_row_stride),
                        k + j0 * p.k_row_stride + h * p.k_head_stride, static_cast<int>(p.k_row_stride), 0.0f,
                        scores.data(), static_cast<int>(kKeyTile));
            bool any = false;
            for (int64_t r = 0; r < rows; ++r) {
              float* s = scores.data() + r * kKeyTile;
              const int64_t j_end = std::clamp<int64_t>(row_limit[static_cast<size_t>(r)] - j0, 0, n);
              float tile_max = neg_inf;
              for (int64_t j = 0; j < n; ++j) {
                if (j >= j_end) s[j] = neg_inf;  // masked by the block-causal limit
                else if (bias) s[j] += bias[j0 + j];
                tile_max = std::max(tile_max, s[j]);
              }
              // Online softmax: rescale what was accumulated so far to the new running max; P = exp(S − max).
              float& m = row_max[static_cast<size_t>(r)];
              const float new_max = std::max(m, tile_max);
              if (new_max == neg_inf) {  // every logit so far is -inf (mask, or bias -inf): contributes nothing
                std::fill(s, s + n, 0.0f);
                continue;
              }
              const float correction = (m == neg_inf) ? 0.0f : std::exp(m - new_max);
              float* a = acc.data() + r * hd;
              float sum = row_sum[static_cast<size_t>(r)] * correction;
              for (int64_t d = 0; d < hd; ++d) a[d] *= correction;
              for (int64_t j = 0; j < n; ++j) {
                s[j] = std::exp(s[j] - new_max);
                sum += s[j];
              }
              row_sum[static_cast<size_t>(r)] = sum;
              m = new_max;
              any = true;
            }
            // acc[rows, hd] += P[rows, n] · V_tile.
            if (any)
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(hd),
                          static_cast<int>(n), 1.0f, scores.data(), static_cast<int>(kKeyTile),
                          v + j0 * p.v_row_stride + h * p.v_head_stride, static_cast<int>(p.v_row_stride), 1.0f,
                          acc.data(), static_cast<int>(hd));
          }
        }

        for (int64_t r = 0; r < rows; ++r) {
          float* orow = o + (q0 + r) * p.o_row_stride + h * p.o_head_stride;
          const float sum = row_sum[static_cast<size_t>(r)];
          const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
          const float* a = acc.data() + r * hd;
          for (int64_t d = 0; d < hd; ++d) orow[d] = a[d] * inv;
          if (p.lse)
            p.lse[h * p.q_len + q0 + r] = sum > 0.0f ? row_max[static_cast<size_t>(r)] + std::log(sum) : neg_inf;
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace fastar
