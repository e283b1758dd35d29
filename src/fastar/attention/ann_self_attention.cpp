#include "fastar/attention/ann_self_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "fastar/attention/ann_quant.h"
#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"

namespace fastar {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
}  // namespace

int64_t bucketed_attention_head(const BucketedHeadArgs& a, BucketedScratch* s) {
  const int64_t hd = a.head_dim;
  const int64_t rows0 = a.keys[0].rows, rows1 = a.keys[1].rows;
  // Segment 1 starts on the key block after segment 0 (the rows between are padding).
  s->seg1_base = rows1 > 0 ? (rows0 + a.block_k - 1) / a.block_k * a.block_k : rows0;
  const int64_t total = s->seg1_base + rows1;
  bucket_sort(a.q_labels, a.q_len, 1, a.num_buckets, &s->q_order);
  bucket_sort(a.k_labels, rows0, 1, a.num_buckets, &s->k_order[0]);
  bucket_sort(a.k_labels + rows0, rows1, 1, a.num_buckets, &s->k_order[1]);

  // Gather per head in sorted order.                          q: [q_len, hd], k/v: [total, hd]
  s->q.resize(static_cast<size_t>(a.q_len * hd));
  for (int64_t i = 0; i < a.q_len; ++i)
    std::memcpy(s->q.data() + i * hd, a.q + s->q_order.order[static_cast<size_t>(i)] * a.q_stride, sizeof(float) * hd);
  s->k.assign(static_cast<size_t>(std::max<int64_t>(total, 1) * hd), 0.0f);
  s->v.assign(s->k.size(), 0.0f);
  const bool any_bias = a.keys[0].bias || a.keys[1].bias || s->seg1_base > rows0;
  s->bias.assign(any_bias ? static_cast<size_t>(total) : 0, 0.0f);
  for (int64_t j = rows0; any_bias && j < s->seg1_base; ++j) s->bias[static_cast<size_t>(j)] = kNegInf;  // padding
  for (int seg = 0; seg < 2; ++seg) {
    const KeySegment& ks = a.keys[seg];
    const int64_t base = seg == 0 ? 0 : s->seg1_base;
    for (int64_t i = 0; i < ks.rows; ++i) {
      const int64_t row = s->k_order[seg].order[static_cast<size_t>(i)], j = base + i;
      std::memcpy(s->k.data() + j * hd, ks.k + row * ks.k_stride, sizeof(float) * hd);
      std::memcpy(s->v.data() + j * hd, ks.v + row * ks.v_stride, sizeof(float) * hd);
      if (ks.bias) s->bias[static_cast<size_t>(j)] = ks.bias[row];
    }
  }

  const KeySegmentOffsets segments[2] = {{s->k_order[0].offsets.data(), 0},
                                         {s->k_order[1].offsets.data(), s->seg1_base / a.block_k}};
  bucket_block_plan(s->q_order.offsets.data(), segments, rows1 > 0 ? 2 : 1, a.num_buckets, a.block_q, a.block_k, &s->plan);
  s->o.resize(static_cast<size_t>(a.q_len * hd));
  s->lse.resize(static_cast<size_t>(a.q_len));
  AttentionParams p = packed_attention_params(s->q.data(), s->k.data(), s->v.data(), s->o.data(), a.q_len, total, 1, hd);
  p.scale = a.scale;
  p.lse = s->lse.data();
  p.key_bias = any_bias ? s->bias.data() : nullptr;
  p.block_offsets = s->plan.block_offsets.data();
  static const int32_t kNoBlocks = 0;  // a valid pointer when no query block visits anything
  p.block_index = s->plan.block_index.empty() ? &kNoBlocks : s->plan.block_index.data();
  p.block_q = a.block_q;
  p.block_k = a.block_k;
  if (a.q_len > 0) cpu::attention_forward(p);

  // Scatter back to the original query order.
  for (int64_t i = 0; i < a.q_len; ++i) {
    const int64_t row = s->q_order.order[static_cast<size_t>(i)];
    std::memcpy(a.o + row * a.o_stride, s->o.data() + i * hd, sizeof(float) * hd);
    if (a.lse) a.lse[row] = s->lse[static_cast<size_t>(i)];
  }
  return s->plan.executed_pairs;
}

void merge_attention_parts(float* o1, float* lse1, int64_t o1_stride, int64_t lse1_stride, const float* o2,
                           const float* lse2, int64_t o2_stride, int64_t lse2_stride, int64_t rows, int64_t head_dim) {
  for (int64_t i = 0; i < rows; ++i) {
    float& l1 = lse1[i * lse1_stride];
    const float l2 = lse2[i * lse2_stride];
    const float m = std::max(l1, l2);
    if (m == kNegInf) continue;  // neither part saw a key: o1 stays 0
    const float w1 = l1 == kNegInf ? 0.0f : std::exp(l1 - m), w2 = l2 == kNegInf ? 0.0f : std::exp(l2 - m);
    const float inv = 1.0f / (w1 + w2);
    float* a = o1 + i * o1_stride;
    const float* b = o2 + i * o2_stride;
    for (int64_t d = 0; d < head_dim; ++d) a[d] = (w1 * a[d] + w2 * b[d]) * inv;
    l1 = m + std::log(w1 + w2);
  }
}

const char* annsa_buckets_name(AnnSaBuckets buckets) {
  return buckets == AnnSaBuckets::lsh ? "lsh" : "prompt";
}

LshParams annsa_lsh_params(const AnnSaOptions& options, int64_t head_dim) {
  LshParams lsh;
  lsh.dim = head_dim;
  lsh.tables = 1;
  lsh.bits = options.bits;
  lsh.seed = options.seed;
  return lsh;
}

void AnnSaOptions::validate() const {
  FASTAR_CHECK(bits >= 1 && bits <= 16, "annsa: LSH bits must be in [1, 16] (2^bits buckets), got " << bits);
  FASTAR_CHECK(block_q > 0 && block_k > 0, "annsa: block sizes must be positive, got " << block_q << " x " << block_k);
}

AnnSaMemory::AnnSaMemory(std::unique_ptr<CrossFrameMemory> inner, int64_t layers, int64_t heads, int64_t head_dim,
                         AnnSaOptions options, const PromptBucketBoard* board)
    : inner_(std::move(inner)),
      layers_(layers),
      heads_(heads),
      head_dim_(head_dim),
      options_(std::move(options)),
      board_(board),
      stats_(layers) {
  FASTAR_ASSERT(inner_, "AnnSaMemory needs a cache policy to wrap");
  options_.validate();
  CachedKvHead probe;
  FASTAR_CHECK(inner_->cached_kv(0, 0, &probe), "annsa cannot wrap the memory policy '"
                                                      << inner_->describe()
                                                      << "': it does not expose its cached keys; combine annsa with "
                                                         "dense, window or tempcache");
  if (options_.buckets == AnnSaBuckets::lsh) {
    hasher_ = std::make_unique<LshHasher>(annsa_lsh_params(options_, head_dim));
    num_buckets_ = 1u << options_.bits;
  } else {
    FASTAR_CHECK(board_, "annsa with prompt-anchored buckets needs annca in the same policy (e.g. dense+annsa+annca)");
  }
}

std::string AnnSaMemory::describe() const {
  std::ostringstream out;
  out << inner_->describe() << " + annsa (" << annsa_buckets_name(options_.buckets) << " buckets";
  if (options_.buckets == AnnSaBuckets::lsh) out << ", " << (1 << options_.bits) << " per head";
  out << ", own keys " << (options_.own_keys == AnnSaOwnKeys::dense ? "dense" : "sparse") << ", "
      << options_.schedule.describe() << ")";
  return out.str();
}

bool AnnSaMemory::label_head(int64_t layer, const MemoryCall& call, int64_t head, const float* q, const float* k,
                             const CachedKvHead& cached) {
  const int64_t n = call.num_frames * call.tokens_per_frame, d = heads_ * head_dim_, m = cached.tokens;
  const bool own_sparse = options_.own_keys == AnnSaOwnKeys::sparse;
  q_labels_.resize(static_cast<size_t>(n));
  k_labels_.resize(static_cast<size_t>(m + (own_sparse ? n : 0)));
  if (options_.buckets == AnnSaBuckets::lsh) {
    hasher_->hash(q + head * head_dim_, n, d, q_labels_.data());
    if (m > 0) hasher_->hash(cached.k, m, cached.k_row_stride, k_labels_.data());
    if (own_sparse) hasher_->hash(k + head * head_dim_, n, d, k_labels_.data() + m);
    return true;
  }
  // (A) Queries and own keys: the board's labels of their tokens.
  num_buckets_ = board_->num_labels();
  if (num_buckets_ == 0) return false;
  for (int64_t f = 0; f < call.num_frames; ++f) {
    const uint32_t* labels = board_->frame_labels(layer, call.frame_start + f, call.tokens_per_frame, heads_);
    if (!labels) return false;
    for (int64_t t = 0; t < call.tokens_per_frame; ++t)
      q_labels_[static_cast<size_t>(f * call.tokens_per_frame + t)] = labels[t * heads_ + head];
  }
  if (own_sparse) std::copy(q_labels_.begin(), q_labels_.end(), k_labels_.begin() + m);
  if (m == 0) return true;
  // Cached keys: the label whose anchor (unit mean of the call's own keys of that label, this
  // head) is most similar, by the 8-bit search of the ANN toolkit.
  std::vector<double> sums(static_cast<size_t>(num_buckets_) * static_cast<size_t>(head_dim_), 0.0);
  std::vector<int64_t> counts(num_buckets_, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = q_labels_[static_cast<size_t>(i)];
    const float* row = k + i * d + head * head_dim_;
    double norm = 0;
    for (int64_t c = 0; c < head_dim_; ++c) norm += double{row[c]} * row[c];
    const double inv = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;
    for (int64_t c = 0; c < head_dim_; ++c) sums[u * head_dim_ + c] += row[c] * inv;
    ++counts[u];
  }
  std::vector<uint32_t> present;
  std::vector<float> anchors;
  for (uint32_t u = 0; u < num_buckets_; ++u) {
    if (counts[u] == 0) continue;
    present.push_back(u);
    double norm = 0;
    for (int64_t c = 0; c < head_dim_; ++c) norm += sums[u * head_dim_ + c] * sums[u * head_dim_ + c];
    const double inv = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;
    for (int64_t c = 0; c < head_dim_; ++c) anchors.push_back(static_cast<float>(sums[u * head_dim_ + c] * inv));
  }
  std::vector<float> unit(static_cast<size_t>(m * head_dim_));
  for (int64_t j = 0; j < m; ++j) {
    const float* row = cached.k + j * cached.k_row_stride;
    double norm = 0;
    for (int64_t c = 0; c < head_dim_; ++c) norm += double{row[c]} * row[c];
    const double inv = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;
    for (int64_t c = 0; c < head_dim_; ++c) unit[static_cast<size_t>(j * head_dim_ + c)] = static_cast<float>(row[c] * inv);
  }
  Int8Rows keys8, anchors8;
  quantize_rows_int8(unit.data(), m, head_dim_, head_dim_, &keys8);
  quantize_rows_int8(anchors.data(), static_cast<int64_t>(present.size()), head_dim_, head_dim_, &anchors8);
  std::vector<int32_t> best(static_cast<size_t>(m));
  std::vector<float> score(static_cast<size_t>(m));
  int8_top1(keys8, anchors8, best.data(), score.data());
  for (int64_t j = 0; j < m; ++j) k_labels_[static_cast<size_t>(j)] = present[static_cast<size_t>(std::max(best[j], 0))];
  return true;
}

void AnnSaMemory::attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v,
                         float* out) {
  const int64_t n = call.num_frames * call.tokens_per_frame, d = heads_ * head_dim_, hd = head_dim_;
  const bool own_dense = options_.own_keys == AnnSaOwnKeys::dense;
  bool sparse = out && options_.schedule.layer_is_sparse(layer) &&
                options_.schedule.frames_are_sparse(call.timesteps, call.num_frames);
  if (sparse && options_.buckets == AnnSaBuckets::prompt) {  // labels published for every frame?
    for (int64_t f = 0; f < call.num_frames && sparse; ++f)
      sparse = board_->num_labels() > 0 &&
               board_->frame_labels(layer, call.frame_start + f, call.tokens_per_frame, heads_) != nullptr;
  }
  if (!sparse) {
    if (out) stats_.add_dense_call(layer);
    inner_->attend(layer, call, q, k, v, out);
    return;
  }

  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  if (own_dense) {  // the chunk's own keys, all heads at once, into `out`
    own_lse_.resize(static_cast<size_t>(heads_ * n));
    AttentionParams p = packed_attention_params(q, k, v, out, n, n, heads_, hd);
    p.lse = own_lse_.data();
    cpu::attention_forward(p);
  }
  head_o_.resize(static_cast<size_t>(n * hd));
  head_lse_.resize(static_cast<size_t>(n));
  double executed = 0, dense = 0, kept_mass = 0;
  for (int64_t h = 0; h < heads_; ++h) {
    CachedKvHead cached;
    FASTAR_ASSERT(inner_->cached_kv(layer, h, &cached), "wrapped memory stopped exposing its cache");
    FASTAR_ASSERT(label_head(layer, call, h, q, k, cached), "AnnSA labels vanished");
    BucketedHeadArgs args;
    args.q = q + h * hd;
    args.q_stride = d;
    args.q_len = n;
    args.keys[0] = {cached.k, cached.v, cached.k_row_stride, cached.v_row_stride, cached.key_bias, cached.tokens};
    if (!own_dense) args.keys[1] = {k + h * hd, v + h * hd, d, d, nullptr, n};
    args.q_labels = q_labels_.data();
    args.k_labels = k_labels_.data();
    args.num_buckets = num_buckets_;
    args.head_dim = hd;
    args.scale = scale;
    args.block_q = options_.block_q;
    args.block_k = options_.block_k;
    float* o_head = out + h * hd;
    float* lse_head = own_dense ? own_lse_.data() + h * n : head_lse_.data();
    if (own_dense) {
      args.o = head_o_.data();
      args.o_stride = hd;
      args.lse = head_lse_.data();
    } else {
      args.o = o_head;
      args.o_stride = d;
      args.lse = head_lse_.data();
    }
    executed += static_cast<double>(bucketed_attention_head(args, &scratch_)) + (own_dense ? double(n) * n : 0.0);
    dense += static_cast<double>(n) * static_cast<double>(cached.tokens + n);
    if (own_dense) merge_attention_parts(o_head, lse_head, d, 1, head_o_.data(), head_lse_.data(), hd, 1, n, hd);

    if (options_.diagnostics) {  // dense log-sum-exp over every key: one bucket holds everything
      BucketedHeadArgs all = args;
      all.keys[1] = {k + h * hd, v + h * hd, d, d, nullptr, n};
      std::vector<uint32_t> zeros(static_cast<size_t>(std::max(cached.tokens + n, n)), 0u);
      all.q_labels = zeros.data();
      all.k_labels = zeros.data();
      all.num_buckets = 1;
      std::vector<float> o_dense(static_cast<size_t>(n * hd));
      dense_lse_.resize(static_cast<size_t>(n));
      all.o = o_dense.data();
      all.o_stride = hd;
      all.lse = dense_lse_.data();
      bucketed_attention_head(all, &scratch_);
      for (int64_t i = 0; i < n; ++i)
        kept_mass += std::exp(static_cast<double>(lse_head[i]) - static_cast<double>(dense_lse_[static_cast<size_t>(i)]));
    }
  }
  stats_.add(layer, executed, dense);
  if (options_.diagnostics) stats_.add_recall(layer, kept_mass, n * heads_);
  if (call.commit) inner_->attend(layer, call, q, k, v, nullptr);
}

MemoryStats AnnSaMemory::summary() const {
  MemoryStats s = inner_->summary();
  const auto total = stats_.total();
  s.density = total.density();
  s.recall = total.recall();
  return s;
}

std::string AnnSaMemory::report() const { return inner_->report() + stats_.report("annsa (self-attention):"); }

}  // namespace fastar
