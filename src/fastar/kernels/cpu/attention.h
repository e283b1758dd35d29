// Scaled dot-product attention, forward, as one params struct shared by every backend.
//
//   o[i] = Σ_j softmax_j( scale · q[i]·k[j] + bias[j] ) · v[j]      over the keys j that the mask allows
//
// Variants are options of the same kernel, not copies of it (docs/design.md):
//   - key_bias:      per-key additive logit bias (TempCache's log multiplicity), per head;
//   - block-sparse:  for each block of block_q queries, the list of key blocks (block_k keys) to
//                    visit (AnnSA);
//   - block-causal:  query i sees key j iff ⌊j / causal_block⌋ ≤ ⌊(i + kv_len − q_len) / causal_block⌋
//                    (a chunk-causal video mask for full-sequence forwards; queries are the last
//                    q_len positions of the key sequence).
// A query row that the mask leaves with no key gets o = 0 and lse = −inf.
#pragma once

#include <cstdint>

namespace fastar {

struct AttentionParams {
  // q[q_len, heads, head_dim], k/v[kv_len, heads, head_dim], o[q_len, heads, head_dim]; any strides.
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  int64_t q_row_stride = 0, q_head_stride = 0;  // in elements
  int64_t k_row_stride = 0, k_head_stride = 0;
  int64_t v_row_stride = 0, v_head_stride = 0;
  int64_t o_row_stride = 0, o_head_stride = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t q_len = 0;
  int64_t kv_len = 0;
  float scale = 0.0f;  // usually 1/sqrt(head_dim)

  // Optional log-sum-exp of each row's logits, lse[heads, q_len] (natural log); nullptr = not written.
  float* lse = nullptr;

  // Variant: per-key additive bias, bias[h · key_bias_head_stride + j]; stride 0 shares one row
  // across heads. nullptr = no bias.
  const float* key_bias = nullptr;
  int64_t key_bias_head_stride = 0;

  // Variant: block-sparse mask in CSR form. Query block b = rows [b·block_q, (b+1)·block_q) visits
  // key blocks block_index[block_offsets[b] .. block_offsets[b+1]), each = keys
  // [kb·block_k, (kb+1)·block_k) ∩ [0, kv_len). Shared by all heads. nullptr = dense.
  const int32_t* block_offsets = nullptr;  // [ceil(q_len / block_q) + 1]
  const int32_t* block_index = nullptr;    // [block_offsets[last]]
  int64_t block_q = 0;
  int64_t block_k = 0;

  // Variant: block-causal mask with blocks of `causal_block` tokens; 0 = off.
  int64_t causal_block = 0;
};

// Params for q[q_len, heads·head_dim], k/v[kv_len, heads·head_dim], o[q_len, heads·head_dim], all
// contiguous, scale 1/√head_dim, no variant options set.
AttentionParams packed_attention_params(const void* q, const void* k, const void* v, void* o, int64_t q_len,
                                        int64_t kv_len, int64_t heads, int64_t head_dim);

namespace cpu {

// fp32 reference: q, k, v, o are float. Tiled over keys with an online softmax (never a
// q_len × kv_len matrix in memory); each (query tile, key tile) is two small OpenBLAS GEMMs
// (S = scale·Q·Kᵀ, then O += P·V); threads over (head, query tile). Deterministic for a given call
// and any thread count; a row's last bits can differ between calls that tile the queries differently.
void attention_forward(const AttentionParams& params);

}  // namespace cpu
}  // namespace fastar
