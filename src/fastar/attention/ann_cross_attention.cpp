#include "fastar/attention/ann_cross_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"

namespace fastar {

const char* ann_search_name(AnnSearch search) { return search == AnnSearch::lsh ? "lsh" : "quant"; }

void AnnCaOptions::validate() const {
  FASTAR_CHECK(tables >= 1 && tables <= 64, "annca: LSH tables must be in [1, 64], got " << tables);
  FASTAR_CHECK(bits >= 1 && bits <= 24, "annca: LSH bits must be in [1, 24], got " << bits);
  FASTAR_CHECK(top_k >= 1, "annca: quant top-k must be >= 1, got " << top_k);
  FASTAR_CHECK(label_bits >= 1 && label_bits <= bits,
               "annca: label bits for AnnSA's prompt buckets must be in [1, bits=" << bits << "], got " << label_bits);
}

LshParams annca_lsh_params(const AnnCaOptions& options, int64_t head_dim) {
  LshParams lsh;
  lsh.dim = head_dim;
  lsh.tables = options.tables;
  lsh.bits = options.bits;
  lsh.seed = options.seed;
  return lsh;
}

bool annca_padding_identical(const float* k, const float* v, int64_t rows, int64_t valid_rows, int64_t width) {
  if (valid_rows <= 0 || rows <= valid_rows) return false;
  // The sink is exact only for identical padding rows (what zero context rows give). The GEMM that
  // made them may round rows at different tile positions differently, so "identical" means equal to
  // fp32 rounding (kPaddingTol of the row's largest entry); other trailing rows are dropped.
  constexpr float kPaddingTol = 1e-5f;
  auto rows_match = [&](const float* base, int64_t r) {
    float scale = 0.0f, diff = 0.0f;
    for (int64_t c = 0; c < width; ++c) {
      scale = std::max(scale, std::fabs(base[valid_rows * width + c]));
      diff = std::max(diff, std::fabs(base[r * width + c] - base[valid_rows * width + c]));
    }
    return diff <= kPaddingTol * scale;
  };
  for (int64_t r = valid_rows + 1; r < rows; ++r)
    if (!rows_match(k, r) || !rows_match(v, r)) return false;
  return true;
}

void annca_keep_lsh(const uint32_t* query_codes, int64_t q_rows, const uint32_t* key_codes, int64_t key_rows,
                    int tables, int bits, std::vector<uint8_t>* kept) {
  const size_t buckets = size_t{1} << bits;
  std::vector<uint8_t> occupied(buckets * static_cast<size_t>(tables), 0);  // [tables, 2^bits]
  for (int64_t i = 0; i < q_rows; ++i)
    for (int t = 0; t < tables; ++t) occupied[t * buckets + query_codes[i * tables + t]] = 1;
  kept->assign(static_cast<size_t>(key_rows), 0);
  for (int64_t p = 0; p < key_rows; ++p)
    for (int t = 0; t < tables && !(*kept)[static_cast<size_t>(p)]; ++t)
      if (occupied[t * buckets + key_codes[p * tables + t]]) (*kept)[static_cast<size_t>(p)] = 1;
}

void annca_keep_quant(const Int8Rows& queries, const Int8Rows& keys, int top_k, std::vector<uint8_t>* kept,
                      int32_t* top1) {
  FASTAR_ASSERT(queries.dim == keys.dim || keys.rows == 0, "annca_keep_quant: dims differ");
  kept->assign(static_cast<size_t>(keys.rows), 0);
  if (keys.rows == 0) return;
  const int64_t dim = keys.dim;
  if (top_k == 1) {
    std::vector<int32_t> best(static_cast<size_t>(queries.rows));
    std::vector<float> score(static_cast<size_t>(queries.rows));
    int8_top1(queries, keys, best.data(), score.data());
    for (int64_t i = 0; i < queries.rows; ++i) {
      if (best[static_cast<size_t>(i)] >= 0) (*kept)[static_cast<size_t>(best[static_cast<size_t>(i)])] = 1;
      if (top1) top1[i] = best[static_cast<size_t>(i)];
    }
    return;
  }
  const int64_t k = std::min<int64_t>(top_k, keys.rows);
  std::vector<std::pair<float, int32_t>> scored(static_cast<size_t>(keys.rows));
  for (int64_t i = 0; i < queries.rows; ++i) {
    const int8_t* qi = queries.codes.data() + i * dim;
    for (int64_t p = 0; p < keys.rows; ++p) {
      const int8_t* kp = keys.codes.data() + p * dim;
      int32_t acc = 0;
      for (int64_t c = 0; c < dim; ++c) acc += int32_t{qi[c]} * int32_t{kp[c]};
      // Negated score so that ascending order = largest score first, ties → lower index.
      scored[static_cast<size_t>(p)] = {-(queries.scale[static_cast<size_t>(i)] * keys.scale[static_cast<size_t>(p)] *
                                          static_cast<float>(acc)),
                                        static_cast<int32_t>(p)};
    }
    std::partial_sort(scored.begin(), scored.begin() + k, scored.end());
    for (int64_t j = 0; j < k; ++j) (*kept)[static_cast<size_t>(scored[static_cast<size_t>(j)].second)] = 1;
    if (top1) top1[i] = scored[0].second;
  }
}

AnnCrossAttention::AnnCrossAttention(int64_t layers, int64_t heads, int64_t head_dim, AnnCaOptions options,
                                     PromptBucketBoard* board)
    : layers_(layers), heads_(heads), head_dim_(head_dim), options_(std::move(options)), board_(board), stats_(layers) {
  options_.validate();
  if (options_.search == AnnSearch::lsh) {
    hasher_ = std::make_unique<LshHasher>(annca_lsh_params(options_, head_dim));
    if (board_) board_->set_num_labels(1u << options_.label_bits);
  }
}

std::string AnnCrossAttention::describe() const {
  std::ostringstream out;
  out << "annca (" << ann_search_name(options_.search);
  if (options_.search == AnnSearch::lsh) out << " " << options_.tables << " tables x " << options_.bits << " bits";
  else out << " int8 top-" << options_.top_k;
  out << ", " << options_.schedule.describe() << ")";
  return out.str();
}

const AnnCrossAttention::PromptCodes& AnnCrossAttention::prompt_codes(const CrossAttentionCall& call, const float* k) {
  if (call.prompt_id != cached_prompt_) {  // a new prompt: forget every layer's codes
    codes_.clear();
    cached_prompt_ = call.prompt_id;
  }
  auto it = codes_.find(call.layer);
  if (it != codes_.end()) return it->second;
  PromptCodes& codes = codes_[call.layer];
  const int64_t d = heads_ * head_dim_, valid = call.prompt_valid_rows;
  if (options_.search == AnnSearch::lsh) {
    const int64_t per_head = valid * options_.tables;
    codes.lsh.resize(static_cast<size_t>(heads_ * per_head));
    for (int64_t h = 0; h < heads_; ++h) hasher_->hash(k + h * head_dim_, valid, d, codes.lsh.data() + h * per_head);
  } else {
    codes.quant.resize(static_cast<size_t>(heads_));
    for (int64_t h = 0; h < heads_; ++h)
      quantize_rows_int8(k + h * head_dim_, valid, d, head_dim_, &codes.quant[static_cast<size_t>(h)]);
  }
  return codes;
}

void AnnCrossAttention::attend(const CrossAttentionCall& call, const float* q, const float* k, const float* v,
                               float* out) {
  FASTAR_ASSERT(call.heads == heads_ && call.head_dim == head_dim_, "AnnCA built for another model");
  const int64_t tpf = call.tokens_per_frame, d = heads_ * head_dim_, hd = head_dim_;
  const int64_t rows = call.prompt_rows, valid = std::min(call.prompt_valid_rows, rows);
  const bool layer_sparse = options_.schedule.layer_is_sparse(call.layer) && valid > 0;
  const bool publish = board_ && valid > 0;
  if (publish && options_.search == AnnSearch::quant) board_->set_num_labels(static_cast<uint32_t>(valid));
  const PromptCodes* codes = (layer_sparse || publish) ? &prompt_codes(call, k) : nullptr;

  std::vector<uint32_t> q_codes, labels(static_cast<size_t>(tpf * heads_));
  std::vector<uint8_t> kept;
  std::vector<int32_t> top1(static_cast<size_t>(tpf)), kept_rows;
  // The padding rows enter as one key only when identical (annca_padding_identical); otherwise dropped.
  const bool padding_identical = options_.padding_sink && annca_padding_identical(k, v, rows, valid, d);
  std::vector<float> key_bias;
  std::vector<float> k_kept, v_kept, o_head(static_cast<size_t>(tpf * hd)), lse_sparse(static_cast<size_t>(tpf)),
      lse_dense(static_cast<size_t>(heads_ * tpf));
  Int8Rows q8;
  for (int64_t f = 0; f < call.num_frames; ++f) {
    const float* qf = q + f * tpf * d;
    float* of = out + f * tpf * d;
    const bool sparse = layer_sparse && options_.schedule.frame_is_sparse(call.timesteps, f);
    if (!sparse || options_.diagnostics) {  // dense over every prompt row (and its lse for recall)
      AttentionParams p = packed_attention_params(qf, k, v, of, tpf, rows, heads_, hd);
      p.lse = lse_dense.data();
      cpu::attention_forward(p);
      if (!sparse) stats_.add_dense_call(call.layer);
    }
    if (!sparse && !publish) continue;
    double executed = 0, kept_mass = 0;
    for (int64_t h = 0; h < heads_; ++h) {
      // Which prompt tokens some query of this frame finds, and each query's bucket label.
      if (options_.search == AnnSearch::lsh) {
        q_codes.resize(static_cast<size_t>(tpf * options_.tables));
        hasher_->hash(qf + h * hd, tpf, d, q_codes.data());
        const uint32_t label_mask = (1u << options_.label_bits) - 1;
        for (int64_t t = 0; t < tpf; ++t)
          labels[static_cast<size_t>(t * heads_ + h)] = q_codes[static_cast<size_t>(t * options_.tables)] & label_mask;
        if (sparse)
          annca_keep_lsh(q_codes.data(), tpf, codes->lsh.data() + h * valid * options_.tables, valid, options_.tables,
                         options_.bits, &kept);
      } else {
        quantize_rows_int8(qf + h * hd, tpf, d, hd, &q8);
        annca_keep_quant(q8, codes->quant[static_cast<size_t>(h)], sparse ? options_.top_k : 1, &kept, top1.data());
        for (int64_t t = 0; t < tpf; ++t)
          labels[static_cast<size_t>(t * heads_ + h)] = static_cast<uint32_t>(std::max(top1[static_cast<size_t>(t)], 0));
      }
      if (!sparse) continue;
      // Gather the kept tokens of this head and attend densely over them.   k/v_kept: [kept, hd]
      kept_rows.clear();
      for (int64_t p = 0; p < valid; ++p)
        if (kept[static_cast<size_t>(p)]) kept_rows.push_back(static_cast<int32_t>(p));
      // The identical padding rows enter as one key with bias log(count) (exact for identical keys).
      const int64_t padding = rows - valid;
      const bool sink = padding_identical;
      if (sink) kept_rows.push_back(static_cast<int32_t>(valid));
      const auto n_kept = static_cast<int64_t>(kept_rows.size());
      k_kept.resize(static_cast<size_t>(std::max<int64_t>(n_kept, 1) * hd));
      v_kept.resize(k_kept.size());
      for (int64_t j = 0; j < n_kept; ++j) {
        std::memcpy(k_kept.data() + j * hd, k + kept_rows[static_cast<size_t>(j)] * d + h * hd, sizeof(float) * hd);
        std::memcpy(v_kept.data() + j * hd, v + kept_rows[static_cast<size_t>(j)] * d + h * hd, sizeof(float) * hd);
      }
      key_bias.assign(static_cast<size_t>(std::max<int64_t>(n_kept, 1)), 0.0f);
      if (sink) key_bias[static_cast<size_t>(n_kept - 1)] = static_cast<float>(std::log(static_cast<double>(padding)));
      AttentionParams p = packed_attention_params(qf + h * hd, k_kept.data(), v_kept.data(), o_head.data(), tpf, n_kept, 1, hd);
      p.q_row_stride = d;
      p.lse = lse_sparse.data();
      p.key_bias = key_bias.data();
      cpu::attention_forward(p);
      for (int64_t t = 0; t < tpf; ++t) std::memcpy(of + t * d + h * hd, o_head.data() + t * hd, sizeof(float) * hd);
      executed += static_cast<double>(tpf) * static_cast<double>(n_kept);
      if (options_.diagnostics)
        for (int64_t t = 0; t < tpf; ++t)
          kept_mass += std::exp(static_cast<double>(lse_sparse[static_cast<size_t>(t)]) -
                                static_cast<double>(lse_dense[static_cast<size_t>(h * tpf + t)]));
    }
    if (publish) board_->publish(call.layer, call.frame_start + f, call.frame_start, tpf, heads_, labels.data());
    if (sparse) {
      stats_.add(call.layer, executed, static_cast<double>(tpf) * static_cast<double>(rows) * static_cast<double>(heads_));
      if (options_.diagnostics) stats_.add_recall(call.layer, kept_mass, tpf * heads_);
    }
  }
}

MemoryStats AnnCrossAttention::summary() const {
  MemoryStats s;
  const auto total = stats_.total();
  s.density = total.density();
  s.recall = total.recall();
  return s;
}

std::string AnnCrossAttention::report() const { return stats_.report(describe() + ":"); }

}  // namespace fastar
