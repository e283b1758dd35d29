#include "fastar/attention/ann_lsh.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "fastar/core/error.h"

namespace fastar {

namespace {

// SplitMix64: a small counter-style generator, so the projections depend only on the seed (not
// on the standard library's distribution implementation).
uint64_t splitmix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Uniform in (0, 1]: 53 random bits, never 0 (Box–Muller takes its log).
double uniform_open0(uint64_t* state) { return (static_cast<double>(splitmix64(state) >> 11) + 1.0) * 0x1.0p-53; }

double dot(const float* a, const float* b, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

double norm(const float* a, int64_t n) { return std::sqrt(dot(a, a, n)); }

// Similarity under `metric`; `a_norm`/`b_norm` are only used for cosine.
float similarity(const float* a, const float* b, int64_t n, SimilarityMetric metric, double a_norm, double b_norm) {
  const double d = dot(a, b, n);
  if (metric == SimilarityMetric::dot) return static_cast<float>(d);
  if (a_norm == 0.0 || b_norm == 0.0) return 0.0f;
  return static_cast<float>(d / (a_norm * b_norm));
}

}  // namespace

LshHasher::LshHasher(const LshParams& params) : params_(params) {
  FASTAR_CHECK(params.dim > 0, "LSH: the hashed dimension must be > 0 (got " << params.dim << ")");
  FASTAR_CHECK(params.tables >= 1 && params.tables <= 64,
               "LSH: tables must be in [1, 64] (got " << params.tables << ")");
  FASTAR_CHECK(params.bits >= 1 && params.bits <= 24, "LSH: bits per table must be in [1, 24] (got " << params.bits
                                                                                                     << ")");
  const int64_t count = static_cast<int64_t>(params.tables) * params.bits * params.dim;
  projections_.resize(static_cast<size_t>(count));
  uint64_t state = params.seed ^ 0x6C73685F70726F6AULL;  // "lsh_proj"
  for (int64_t i = 0; i < count; i += 2) {
    // Box–Muller: two independent N(0, 1) samples per pair of uniforms.
    const double radius = std::sqrt(-2.0 * std::log(uniform_open0(&state)));
    const double angle = 2.0 * M_PI * uniform_open0(&state);
    projections_[static_cast<size_t>(i)] = static_cast<float>(radius * std::cos(angle));
    if (i + 1 < count) projections_[static_cast<size_t>(i + 1)] = static_cast<float>(radius * std::sin(angle));
  }
}

void LshHasher::hash(const float* x, int64_t rows, int64_t row_stride, uint32_t* codes) const {
  FASTAR_CHECK(rows == 0 || (x && codes), "LSH hash: null input or output");
  FASTAR_CHECK(row_stride >= params_.dim, "LSH hash: row stride " << row_stride << " < dim " << params_.dim);
  const int tables = params_.tables, bits = params_.bits;
  const int64_t dim = params_.dim;
  const float* proj = projections_.data();
#pragma omp parallel for schedule(static) if (rows * tables * bits * dim > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * row_stride;
    for (int t = 0; t < tables; ++t) {
      uint32_t code = 0;
      for (int b = 0; b < bits; ++b) {
        const float* dir = proj + (static_cast<int64_t>(t) * bits + b) * dim;
        float s = 0.0f;
        for (int64_t j = 0; j < dim; ++j) s += dir[j] * row[j];
        if (s >= 0.0f) code |= (1u << b);
      }
      codes[r * tables + t] = code;
    }
  }
}

void LshBuckets::build(const uint32_t* codes, int64_t rows, int tables, int bits, std::span<const int64_t> priority) {
  FASTAR_CHECK(tables >= 1 && bits >= 1 && bits <= 24, "LSH buckets: bad tables/bits (" << tables << ", " << bits
                                                                                         << ")");
  FASTAR_CHECK(rows >= 0 && rows <= std::numeric_limits<int32_t>::max(), "LSH buckets: too many rows (" << rows
                                                                                                         << ")");
  FASTAR_CHECK(rows == 0 || codes, "LSH buckets: null codes");
  FASTAR_CHECK(priority.empty() || static_cast<int64_t>(priority.size()) == rows,
               "LSH buckets: priority has " << priority.size() << " entries for " << rows << " rows");
  rows_ = rows;
  tables_ = tables;
  bits_ = bits;
  const int64_t nb = int64_t{1} << bits;
  offsets_.assign(static_cast<size_t>(tables * (nb + 1)), 0);
  ids_.resize(static_cast<size_t>(tables * rows));
  // The order in which rows are scattered; the scatter is stable, so it is each bucket's order.
  std::vector<int32_t> order(static_cast<size_t>(rows));
  std::iota(order.begin(), order.end(), 0);
  if (!priority.empty())
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      const int64_t pa = priority[static_cast<size_t>(a)], pb = priority[static_cast<size_t>(b)];
      return pa != pb ? pa > pb : a > b;
    });
  for (int t = 0; t < tables; ++t) {
    int32_t* off = offsets_.data() + t * (nb + 1);
    // Counting sort: histogram, exclusive prefix sum, then a stable scatter (ids ascending per bucket).
    for (int64_t r = 0; r < rows; ++r) {
      const uint32_t c = codes[r * tables + t];
      FASTAR_CHECK(c < static_cast<uint64_t>(nb), "LSH buckets: code " << c << " >= 2^" << bits);
      ++off[c + 1];
    }
    for (int64_t b = 0; b < nb; ++b) off[b + 1] += off[b];
    std::vector<int32_t> cursor(off, off + nb);
    int32_t* ids = ids_.data() + t * rows;
    for (const int32_t r : order) ids[cursor[codes[static_cast<int64_t>(r) * tables + t]]++] = r;
  }
}

std::span<const int32_t> LshBuckets::bucket(int table, uint32_t bucket) const {
  FASTAR_ASSERT(table >= 0 && table < tables_ && bucket < (1u << bits_), "LshBuckets::bucket: out of range");
  const int64_t nb = int64_t{1} << bits_;
  const int32_t* off = offsets_.data() + table * (nb + 1);
  const int32_t* ids = ids_.data() + table * rows_;
  return {ids + off[bucket], ids + off[bucket + 1]};
}

void lsh_candidates(const LshBuckets& buckets, const uint32_t* query_codes, int multi_probe,
                    std::vector<int32_t>* out, std::vector<uint8_t>* seen, int64_t max_per_bucket) {
  FASTAR_CHECK(multi_probe == 0 || multi_probe == 1, "LSH: multi_probe must be 0 or 1 (got " << multi_probe << ")");
  FASTAR_CHECK(max_per_bucket >= 0, "LSH: the per-bucket candidate cap must be >= 0 (0 = unlimited), got "
                                        << max_per_bucket);
  FASTAR_ASSERT(static_cast<int64_t>(seen->size()) >= buckets.rows(), "lsh_candidates: scratch too small");
  out->clear();
  auto visit = [&](int t, uint32_t b) {
    std::span<const int32_t> ids = buckets.bucket(t, b);
    if (max_per_bucket > 0 && static_cast<int64_t>(ids.size()) > max_per_bucket)
      ids = ids.first(static_cast<size_t>(max_per_bucket));
    for (int32_t id : ids) {
      if (!(*seen)[static_cast<size_t>(id)]) {
        (*seen)[static_cast<size_t>(id)] = 1;
        out->push_back(id);
      }
    }
  };
  for (int t = 0; t < buckets.tables(); ++t) {
    const uint32_t code = query_codes[t];
    visit(t, code);
    if (multi_probe == 1)
      for (int b = 0; b < buckets.bits(); ++b) visit(t, code ^ (1u << b));
  }
  for (int32_t id : *out) (*seen)[static_cast<size_t>(id)] = 0;
  std::sort(out->begin(), out->end());
}

void lsh_top1(const LshBuckets& buckets, const uint32_t* query_codes, const float* queries, int64_t q_rows,
              int64_t q_stride, const float* database, int64_t db_stride, int64_t dim,
              const LshSearchOptions& options, int32_t* best, float* score) {
  FASTAR_CHECK(dim > 0 && q_stride >= dim && db_stride >= dim, "LSH top-1: bad dim/strides (" << dim << ", "
                                                                                             << q_stride << ", "
                                                                                             << db_stride << ")");
  FASTAR_CHECK(options.multi_probe == 0 || options.multi_probe == 1,
               "LSH top-1: multi_probe must be 0 or 1 (got " << options.multi_probe << ")");
  FASTAR_CHECK(options.max_candidates_per_bucket >= 0,
               "LSH top-1: the per-bucket candidate cap must be >= 0 (0 = unlimited), got "
                   << options.max_candidates_per_bucket);
  const int tables = buckets.tables();
  const float neg_inf = -std::numeric_limits<float>::infinity();
  std::vector<double> db_norm;
  if (options.metric == SimilarityMetric::cosine) {
    db_norm.resize(static_cast<size_t>(buckets.rows()));
    for (int64_t r = 0; r < buckets.rows(); ++r) db_norm[static_cast<size_t>(r)] = norm(database + r * db_stride, dim);
  }
#pragma omp parallel if (q_rows > 16)
  {
    std::vector<int32_t> cand;
    std::vector<uint8_t> seen(static_cast<size_t>(buckets.rows()), 0);
#pragma omp for schedule(dynamic, 8)
    for (int64_t i = 0; i < q_rows; ++i) {
      lsh_candidates(buckets, query_codes + i * tables, options.multi_probe, &cand, &seen,
                     options.max_candidates_per_bucket);
      const float* qrow = queries + i * q_stride;
      const double qn = options.metric == SimilarityMetric::cosine ? norm(qrow, dim) : 0.0;
      int32_t arg = -1;
      float top = neg_inf;
      for (int32_t id : cand) {  // ascending, so a strict > keeps the lowest index on ties
        const double dn = db_norm.empty() ? 0.0 : db_norm[static_cast<size_t>(id)];
        const float s = similarity(qrow, database + id * db_stride, dim, options.metric, qn, dn);
        if (arg < 0 || s > top) {
          arg = id;
          top = s;
        }
      }
      best[i] = arg;
      score[i] = top;
    }
  }
}

void brute_force_top1(const float* queries, int64_t q_rows, int64_t q_stride, const float* database,
                      int64_t db_rows, int64_t db_stride, int64_t dim, SimilarityMetric metric, int32_t* best,
                      float* score) {
  FASTAR_CHECK(dim > 0 && q_stride >= dim && db_stride >= dim, "brute-force top-1: bad dim/strides");
  const float neg_inf = -std::numeric_limits<float>::infinity();
  std::vector<double> db_norm(static_cast<size_t>(db_rows), 0.0);
  if (metric == SimilarityMetric::cosine)
    for (int64_t r = 0; r < db_rows; ++r) db_norm[static_cast<size_t>(r)] = norm(database + r * db_stride, dim);
#pragma omp parallel for schedule(static) if (q_rows * db_rows > 4096)
  for (int64_t i = 0; i < q_rows; ++i) {
    const float* qrow = queries + i * q_stride;
    const double qn = metric == SimilarityMetric::cosine ? norm(qrow, dim) : 0.0;
    int32_t arg = -1;
    float top = neg_inf;
    for (int64_t r = 0; r < db_rows; ++r) {
      const float s = similarity(qrow, database + r * db_stride, dim, metric, qn, db_norm[static_cast<size_t>(r)]);
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
