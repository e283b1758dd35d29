#include "fastar/attention/tempcache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <span>

#include "fastar/core/error.h"

namespace fastar {

namespace {

double cosine(const float* a, const float* b, int64_t n) {
  double ab = 0.0, aa = 0.0, bb = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  if (aa == 0.0 || bb == 0.0) return 0.0;
  return ab / std::sqrt(aa * bb);
}

// out = x / |x| (a zero row stays zero).
void unit_row(const float* x, int64_t n, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double inv = ss > 0.0 ? 1.0 / std::sqrt(ss) : 0.0;
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(x[i] * inv);
}

}  // namespace

void TempCacheOptions::validate() const {
  FASTAR_CHECK(std::isfinite(threshold) && threshold >= -1.0f,
               "tempcache: --tempcache-threshold must be a number >= -1 (cosine similarity; > 1 never merges), got "
                   << threshold);
  FASTAR_CHECK(lsh_tables >= 1 && lsh_tables <= 64, "tempcache: LSH tables must be in [1, 64], got " << lsh_tables);
  FASTAR_CHECK(lsh_bits >= 1 && lsh_bits <= 24, "tempcache: LSH bits must be in [1, 24], got " << lsh_bits);
  FASTAR_CHECK(lsh_multi_probe == 0 || lsh_multi_probe == 1,
               "tempcache: LSH multi-probe must be 0 or 1, got " << lsh_multi_probe);
  FASTAR_CHECK(lsh_bucket_cap >= 0,
               "tempcache: --tempcache-lsh-cap must be >= 0 (candidates per LSH bucket; 0 = unlimited), got "
                   << lsh_bucket_cap);
  FASTAR_CHECK(window >= -1, "tempcache: --window must be >= 0 (or unset), got " << window);
  FASTAR_CHECK(sink >= 0, "tempcache: --sink must be >= 0, got " << sink);
  FASTAR_CHECK(sink == 0 || window >= 0 || max_tokens > 0,
               "tempcache: --sink pins frames against a bound; give --window or --tempcache-max-tokens as well");
  FASTAR_CHECK(max_tokens >= 0, "tempcache: --tempcache-max-tokens must be >= 0 (0 = unbounded), got " << max_tokens);
}

const char* ann_backend_name(AnnBackend backend) { return backend == AnnBackend::lsh ? "lsh" : "quant"; }
const char* tempcache_match_name(TempCacheMatch match) { return match == TempCacheMatch::key ? "key" : "query"; }

TempCacheHead::TempCacheHead(int64_t head_dim, const TempCacheOptions& options, const LshHasher* hasher)
    : head_dim_(head_dim), options_(options), hasher_(hasher) {
  options_.validate();
  FASTAR_CHECK(head_dim > 0, "tempcache: head_dim must be > 0");
  FASTAR_CHECK(options.ann != AnnBackend::lsh || (hasher && hasher->dim() == head_dim),
               "tempcache: the LSH back end needs a hasher of dimension head_dim = " << head_dim);
  int8_.dim = head_dim;
}

int64_t TempCacheHead::bytes() const {
  // Keys and values, log-count bias, count, representative frame, group id, pin flag, ANN index.
  int64_t per_row = 2 * head_dim_ * 4 + 4 + 3 * 8 + 1;
  if (options_.ann == AnnBackend::lsh) {
    per_row += options_.lsh_tables * (4 + 4);  // codes + bucket ids (offsets are per table, below)
    return size_ * per_row + options_.lsh_tables * ((int64_t{1} << options_.lsh_bits) + 1) * 4;
  }
  per_row += head_dim_ + 4;  // int8 codes + scale
  return size_ * per_row;
}

void TempCacheHead::append(const float* k, const float* v, int64_t frame, bool sink_frame) {
  const size_t d = static_cast<size_t>(head_dim_);
  keys_.insert(keys_.end(), k, k + d);
  values_.insert(values_.end(), v, v + d);
  log_count_.push_back(0.0f);
  count_.push_back(1);
  rep_frame_.push_back(frame);
  group_id_.push_back(next_group_id_++);
  pinned_.push_back(sink_frame ? 1 : 0);
  ++size_;
}

void TempCacheHead::search(const float* k, const float* q, int64_t stride, int64_t tokens, int32_t* best) {
  const int64_t d = head_dim_;
  const bool by_key = options_.match == TempCacheMatch::key;
  const float* probe = by_key ? k : q;
  std::vector<float> score(static_cast<size_t>(tokens));
  if (options_.ann == AnnBackend::lsh) {
    if (buckets_dirty_) {
      // With a cap, each bucket lists its newest representatives first (the ones a capped search keeps).
      const std::span<const int64_t> priority =
          options_.lsh_bucket_cap > 0 ? std::span<const int64_t>(rep_frame_) : std::span<const int64_t>();
      buckets_.build(codes_.data(), size_, hasher_->tables(), hasher_->bits(), priority);
      buckets_dirty_ = false;
    }
    std::vector<uint32_t> probe_codes(static_cast<size_t>(tokens * hasher_->tables()));
    hasher_->hash(probe, tokens, stride, probe_codes.data());
    LshSearchOptions search;
    search.multi_probe = options_.lsh_multi_probe;
    search.max_candidates_per_bucket = options_.lsh_bucket_cap;
    search.metric = by_key ? SimilarityMetric::cosine : SimilarityMetric::dot;
    lsh_top1(buckets_, probe_codes.data(), probe, tokens, stride, keys_.data(), d, d, search, best, score.data());
    return;
  }
  Int8Rows probe_rows;
  if (by_key) {  // cosine: compare unit vectors
    std::vector<float> unit(static_cast<size_t>(tokens * d));
    for (int64_t i = 0; i < tokens; ++i) unit_row(k + i * stride, d, unit.data() + i * d);
    quantize_rows_int8(unit.data(), tokens, d, d, &probe_rows);
  } else {
    quantize_rows_int8(q, tokens, stride, d, &probe_rows);
  }
  int8_top1(probe_rows, int8_, best, score.data());
}

void TempCacheHead::commit_frame(const float* k, const float* v, const float* q, int64_t stride, int64_t tokens,
                                 int64_t frame, bool sink_frame, std::vector<int64_t>* group_of_token) {
  FASTAR_CHECK(stride >= head_dim_ && tokens >= 0, "tempcache: bad commit shape");
  FASTAR_CHECK(options_.match == TempCacheMatch::key || q, "tempcache: query matching needs the queries");
  const int64_t d = head_dim_;
  const int64_t old_size = size_;
  std::vector<int32_t> best(static_cast<size_t>(tokens), -1);
  if (old_size > 0 && tokens > 0) search(k, q, stride, tokens, best.data());

  // Exact similarity test on the matched representative, then one winner per group.
  std::vector<double> sim(static_cast<size_t>(tokens), -2.0);
  std::vector<int64_t> winner(static_cast<size_t>(old_size), -1);
  for (int64_t i = 0; i < tokens; ++i) {
    const int32_t g = best[static_cast<size_t>(i)];
    if (g < 0) continue;
    FASTAR_ASSERT(g < old_size, "tempcache: ANN returned an out-of-range representative");
    const double s = cosine(k + i * stride, keys_.data() + g * d, d);
    sim[static_cast<size_t>(i)] = s;
    if (s < static_cast<double>(options_.threshold)) continue;
    int64_t& w = winner[static_cast<size_t>(g)];
    if (w < 0 || s > sim[static_cast<size_t>(w)]) w = i;  // i ascending: ties keep the lowest index
  }

  if (group_of_token) group_of_token->assign(static_cast<size_t>(tokens), -1);
  for (int64_t i = 0; i < tokens; ++i) {
    const int32_t g = best[static_cast<size_t>(i)];
    const float* ki = k + i * stride;
    const float* vi = v + i * stride;
    if (g >= 0 && winner[static_cast<size_t>(g)] == i) {
      // Merge: the newest key represents the group; running mean of values; m += 1.
      const size_t slot = static_cast<size_t>(g);
      const int64_t m = ++count_[slot];
      float* vm = values_.data() + g * d;
      const float inv_m = 1.0f / static_cast<float>(m);
      for (int64_t j = 0; j < d; ++j) vm[j] += (vi[j] - vm[j]) * inv_m;
      std::memcpy(keys_.data() + g * d, ki, static_cast<size_t>(d) * sizeof(float));
      log_count_[slot] = static_cast<float>(std::log(static_cast<double>(m)));
      rep_frame_[slot] = frame;
      ++merges_;
      if (group_of_token) (*group_of_token)[static_cast<size_t>(i)] = group_id_[slot];
      // Refresh the representative's ANN entry.
      if (options_.ann == AnnBackend::lsh) {
        hasher_->hash(ki, 1, d, codes_.data() + g * hasher_->tables());
        buckets_dirty_ = true;
      } else if (options_.match == TempCacheMatch::key) {
        std::vector<float> unit(static_cast<size_t>(d));
        unit_row(ki, d, unit.data());
        set_row_int8(unit.data(), g, &int8_);
      } else {
        set_row_int8(ki, g, &int8_);
      }
    } else {
      append(ki, vi, frame, sink_frame);
      if (group_of_token) (*group_of_token)[static_cast<size_t>(i)] = group_id_.back();
    }
  }
  // Index the appended representatives.
  const int64_t added = size_ - old_size;
  if (added > 0) {
    const float* new_keys = keys_.data() + old_size * d;
    if (options_.ann == AnnBackend::lsh) {
      codes_.resize(static_cast<size_t>(size_ * hasher_->tables()));
      hasher_->hash(new_keys, added, d, codes_.data() + old_size * hasher_->tables());
      buckets_dirty_ = true;
    } else if (options_.match == TempCacheMatch::key) {
      std::vector<float> unit(static_cast<size_t>(added * d));
      for (int64_t i = 0; i < added; ++i) unit_row(new_keys + i * d, d, unit.data() + i * d);
      append_rows_int8(unit.data(), added, d, d, &int8_);
    } else {
      append_rows_int8(new_keys, added, d, d, &int8_);
    }
  }
  tokens_seen_ += tokens;
}

void TempCacheHead::evict(int64_t newest_frame) {
  std::vector<uint8_t> keep(static_cast<size_t>(size_), 1);
  int64_t kept = size_;
  if (options_.window >= 0) {
    const int64_t oldest_kept_frame = newest_frame - options_.window + 1;
    for (int64_t s = 0; s < size_; ++s) {
      if (!pinned_[static_cast<size_t>(s)] && rep_frame_[static_cast<size_t>(s)] < oldest_kept_frame) {
        keep[static_cast<size_t>(s)] = 0;
        --kept;
      }
    }
  }
  if (options_.max_tokens > 0 && kept > options_.max_tokens) {
    // Evict unpinned groups before pinned ones, older representatives first, lower slots first.
    std::vector<int64_t> order;
    for (int64_t s = 0; s < size_; ++s)
      if (keep[static_cast<size_t>(s)]) order.push_back(s);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      const auto ka = std::make_pair(pinned_[static_cast<size_t>(a)], rep_frame_[static_cast<size_t>(a)]);
      const auto kb = std::make_pair(pinned_[static_cast<size_t>(b)], rep_frame_[static_cast<size_t>(b)]);
      return ka < kb;
    });
    for (size_t i = 0; kept > options_.max_tokens; ++i) {
      keep[static_cast<size_t>(order[i])] = 0;
      --kept;
    }
  }
  if (kept < size_) compact(keep);
}

void TempCacheHead::compact(const std::vector<uint8_t>& keep) {
  const int64_t d = head_dim_;
  const int tables = options_.ann == AnnBackend::lsh ? hasher_->tables() : 0;
  int64_t out = 0;
  for (int64_t s = 0; s < size_; ++s) {
    const size_t src = static_cast<size_t>(s);
    if (!keep[src]) {
      tokens_evicted_ += count_[src];
      continue;
    }
    if (out != s) {
      const size_t dst = static_cast<size_t>(out);
      std::memmove(keys_.data() + out * d, keys_.data() + s * d, static_cast<size_t>(d) * sizeof(float));
      std::memmove(values_.data() + out * d, values_.data() + s * d, static_cast<size_t>(d) * sizeof(float));
      log_count_[dst] = log_count_[src];
      count_[dst] = count_[src];
      rep_frame_[dst] = rep_frame_[src];
      group_id_[dst] = group_id_[src];
      pinned_[dst] = pinned_[src];
      if (tables > 0) {
        std::memmove(codes_.data() + out * tables, codes_.data() + s * tables, static_cast<size_t>(tables) * 4);
      } else {
        std::memmove(int8_.codes.data() + out * d, int8_.codes.data() + s * d, static_cast<size_t>(d));
        int8_.scale[dst] = int8_.scale[src];
      }
    }
    ++out;
  }
  size_ = out;
  const size_t n = static_cast<size_t>(out), nd = static_cast<size_t>(out * d);
  keys_.resize(nd);
  values_.resize(nd);
  log_count_.resize(n);
  count_.resize(n);
  rep_frame_.resize(n);
  group_id_.resize(n);
  pinned_.resize(n);
  if (tables > 0) {
    codes_.resize(n * static_cast<size_t>(tables));
    buckets_dirty_ = true;
  } else {
    int8_.codes.resize(nd);
    int8_.scale.resize(n);
    int8_.rows = out;
  }
}

}  // namespace fastar
