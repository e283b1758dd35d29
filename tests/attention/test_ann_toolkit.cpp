// The ANN toolkit (LSH and int8 search) against brute force in double precision.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <set>

#include "fastar/attention/ann_lsh.h"
#include "fastar/attention/ann_quant.h"
#include "fastar/core/error.h"
#include "test_util.h"

namespace fastar {
namespace {

// Seeded clustered data like consecutive video frames: `rows` database rows drawn around `clusters`
// random centres (spread `spread` per coordinate), and one query per database row: the row plus
// noise of `jitter` per coordinate (the "next frame" of that token).
struct ClusteredData {
  int64_t rows, dim;
  std::vector<float> database, queries;
};

ClusteredData clustered(int64_t rows, int64_t dim, int64_t clusters, float spread, float jitter, uint64_t seed) {
  ClusteredData data{rows, dim, {}, {}};
  const std::vector<float> centres = testing::random_normal(clusters * dim, seed);
  const std::vector<float> offsets = testing::random_normal(rows * dim, seed + 1, spread);
  const std::vector<float> noise = testing::random_normal(rows * dim, seed + 2, jitter);
  std::mt19937_64 rng(seed + 3);
  data.database.resize(static_cast<size_t>(rows * dim));
  data.queries.resize(static_cast<size_t>(rows * dim));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = static_cast<int64_t>(rng() % static_cast<uint64_t>(clusters));
    for (int64_t j = 0; j < dim; ++j) {
      const size_t i = static_cast<size_t>(r * dim + j);
      data.database[i] = centres[static_cast<size_t>(c * dim + j)] + offsets[i];
      data.queries[i] = data.database[i] + noise[i];
    }
  }
  return data;
}

double dot_d(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return s;
}

double cosine_d(const float* a, const float* b, int64_t n) {
  const double na = std::sqrt(dot_d(a, a, n)), nb = std::sqrt(dot_d(b, b, n));
  return dot_d(a, b, n) / (na * nb);
}

TEST(Lsh, CodesAreSignBitsOfTheProjections) {
  LshParams params;
  params.dim = 48;
  params.tables = 3;
  params.bits = 10;
  params.seed = 5;
  LshHasher hasher(params);
  const int64_t rows = 200, stride = 50;  // stride > dim: padding must be ignored
  std::vector<float> x = testing::random_normal(rows * stride, 1);
  std::vector<uint32_t> codes(static_cast<size_t>(rows * params.tables));
  hasher.hash(x.data(), rows, stride, codes.data());
  int64_t checked = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int t = 0; t < params.tables; ++t) {
      const uint32_t code = codes[static_cast<size_t>(r * params.tables + t)];
      ASSERT_LT(code, 1u << params.bits);
      for (int b = 0; b < params.bits; ++b) {
        const double s = dot_d(hasher.projections() + (t * params.bits + b) * params.dim, x.data() + r * stride, params.dim);
        if (std::fabs(s) < 1e-4) continue;  // fp32 rounding may flip a sign this close to zero
        EXPECT_EQ((code >> b) & 1u, s >= 0 ? 1u : 0u) << "row " << r << " table " << t << " bit " << b;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, rows * params.tables * params.bits * 99 / 100);

  // Deterministic in the seed; another seed gives other projections; projections look N(0, 1).
  LshHasher same(params);
  std::vector<uint32_t> again(codes.size());
  same.hash(x.data(), rows, stride, again.data());
  EXPECT_EQ(codes, again);
  params.seed = 6;
  LshHasher other(params);
  other.hash(x.data(), rows, stride, again.data());
  EXPECT_NE(codes, again);
  const int64_t n = int64_t{params.tables} * params.bits * params.dim;
  double mean = 0, var = 0;
  for (int64_t i = 0; i < n; ++i) mean += hasher.projections()[i];
  mean /= n;
  for (int64_t i = 0; i < n; ++i) var += std::pow(hasher.projections()[i] - mean, 2);
  var /= n;
  EXPECT_NEAR(mean, 0.0, 5.0 / std::sqrt(double(n)));
  EXPECT_NEAR(var, 1.0, 0.1);
}

TEST(Lsh, BadParamsAreErrors) {
  LshParams p;
  EXPECT_THROW(LshHasher{p}, Error);  // dim 0
  p.dim = 8;
  p.tables = 0;
  EXPECT_THROW(LshHasher{p}, Error);
  p.tables = 2;
  p.bits = 25;
  EXPECT_THROW(LshHasher{p}, Error);
  p.bits = 4;
  LshHasher ok(p);
  std::vector<float> x(8);
  std::vector<uint32_t> c(2);
  EXPECT_THROW(ok.hash(x.data(), 1, 4, c.data()), Error);  // stride < dim
}

TEST(Lsh, BucketsAndCandidatesMatchABruteForceCodeComparison) {
  const int tables = 3, bits = 5;
  const int64_t rows = 300;
  std::mt19937_64 rng(9);
  std::vector<uint32_t> codes(static_cast<size_t>(rows * tables));
  for (uint32_t& c : codes) c = static_cast<uint32_t>(rng() % (1u << bits));
  LshBuckets buckets;
  buckets.build(codes.data(), rows, tables, bits);
  // Each row sits once per table, in its code's bucket, ids ascending.
  for (int t = 0; t < tables; ++t) {
    int64_t total = 0;
    for (uint32_t b = 0; b < (1u << bits); ++b) {
      auto ids = buckets.bucket(t, b);
      EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
      for (int32_t id : ids) EXPECT_EQ(codes[static_cast<size_t>(id * tables + t)], b);
      total += static_cast<int64_t>(ids.size());
    }
    EXPECT_EQ(total, rows);
  }
  std::vector<uint8_t> seen(static_cast<size_t>(rows), 0);
  std::vector<int32_t> got;
  for (int probe = 0; probe <= 1; ++probe) {
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<uint32_t> q(tables);
      for (uint32_t& c : q) c = static_cast<uint32_t>(rng() % (1u << bits));
      lsh_candidates(buckets, q.data(), probe, &got, &seen);
      std::vector<int32_t> want;
      for (int64_t r = 0; r < rows; ++r) {
        bool hit = false;
        for (int t = 0; t < tables; ++t)
          hit |= std::popcount(codes[static_cast<size_t>(r * tables + t)] ^ q[static_cast<size_t>(t)]) <= probe;
        if (hit) want.push_back(static_cast<int32_t>(r));
      }
      ASSERT_EQ(got, want) << "multi-probe " << probe;
      ASSERT_TRUE(std::all_of(seen.begin(), seen.end(), [](uint8_t s) { return s == 0; }));
    }
  }
  codes[0] = 1u << bits;  // out of range
  EXPECT_THROW(buckets.build(codes.data(), rows, tables, bits), Error);
}

// Recall = share of queries whose LSH top-1 is the brute-force top-1 (cosine). Clustered data with
// the query at cosine ≈ 0.95–0.97 of its source row, the regime of TempCache's merges (τ = 0.9).
TEST(Lsh, Top1RecallOnClusteredData) {
  const int64_t rows = 2000, dim = 64;
  ClusteredData data = clustered(rows, dim, 16, 0.5f, 0.12f, 21);
  std::vector<int32_t> want(rows), got(rows);
  std::vector<float> want_score(rows), got_score(rows);
  brute_force_top1(data.queries.data(), rows, dim, data.database.data(), rows, dim, dim, SimilarityMetric::cosine,
                   want.data(), want_score.data());
  int64_t self = 0;
  for (int64_t i = 0; i < rows; ++i) self += want[i] == i;
  EXPECT_GT(self, rows * 9 / 10);  // the data is as intended: mostly the source row is the nearest

  LshParams params;
  params.dim = dim;
  params.tables = 4;
  params.bits = 8;
  params.seed = 1;
  LshHasher hasher(params);
  std::vector<uint32_t> db_codes(rows * 4), q_codes(rows * 4);
  hasher.hash(data.database.data(), rows, dim, db_codes.data());
  hasher.hash(data.queries.data(), rows, dim, q_codes.data());
  LshBuckets buckets;
  buckets.build(db_codes.data(), rows, 4, 8);
  for (int probe = 0; probe <= 1; ++probe) {
    LshSearchOptions options;
    options.multi_probe = probe;
    lsh_top1(buckets, q_codes.data(), data.queries.data(), rows, dim, data.database.data(), dim, dim, options,
             got.data(), got_score.data());
    int64_t hits = 0;
    for (int64_t i = 0; i < rows; ++i) {
      hits += got[i] == want[i];
      if (got[i] >= 0) {  // exact re-ranking: the score is the true cosine, never above the true best
        EXPECT_NEAR(got_score[i], cosine_d(data.queries.data() + i * dim, data.database.data() + got[i] * dim, dim), 1e-6);
        EXPECT_LE(got_score[i], want_score[i] + 1e-6f);
      }
    }
    const double recall = double(hits) / rows;
    std::printf("LSH 4 tables x 8 bits, multi-probe %d: top-1 recall %.4f\n", probe, recall);
    EXPECT_GE(recall, probe == 0 ? 0.97 : 0.995) << "multi-probe " << probe;
  }
}

TEST(Lsh, Top1TiesGoToTheLowestIndexAndEmptyBucketsGiveMinusOne) {
  const int64_t dim = 8;
  std::vector<float> db = testing::random_normal(3 * dim, 4);
  std::copy(db.begin(), db.begin() + dim, db.begin() + 2 * dim);  // row 2 = row 0
  LshParams params;
  params.dim = dim;
  params.tables = 2;
  params.bits = 6;
  LshHasher hasher(params);
  std::vector<uint32_t> codes(3 * 2);
  hasher.hash(db.data(), 3, dim, codes.data());
  LshBuckets buckets;
  buckets.build(codes.data(), 3, 2, 6);
  int32_t best;
  float score;
  lsh_top1(buckets, codes.data() + 2 * 2, db.data() + 2 * dim, 1, dim, db.data(), dim, dim, LshSearchOptions{}, &best,
           &score);
  EXPECT_EQ(best, 0);
  EXPECT_NEAR(score, 1.0f, 1e-6f);
  // A query whose codes match no bucket (every bit flipped in every table, no multi-probe).
  std::vector<uint32_t> far = {codes[0] ^ 63u, codes[1] ^ 63u};
  for (int r = 1; r < 3; ++r)
    for (int t = 0; t < 2; ++t) ASSERT_NE(far[t], codes[r * 2 + t]) << "pick another seed";
  lsh_top1(buckets, far.data(), db.data(), 1, dim, db.data(), dim, dim, LshSearchOptions{}, &best, &score);
  EXPECT_EQ(best, -1);
  EXPECT_TRUE(std::isinf(score) && score < 0);
}

TEST(Int8, QuantizationErrorIsAtMostHalfAStep) {
  const int64_t rows = 50, dim = 37, stride = 40;
  std::vector<float> x = testing::random_normal(rows * stride, 3, 2.0f);
  for (int64_t j = 0; j < dim; ++j) x[static_cast<size_t>(7 * stride + j)] = 0.0f;  // a zero row
  Int8Rows q;
  quantize_rows_int8(x.data(), rows, stride, dim, &q);
  ASSERT_EQ(q.rows, rows);
  ASSERT_EQ(q.dim, dim);
  for (int64_t r = 0; r < rows; ++r) {
    double amax = 0;
    for (int64_t j = 0; j < dim; ++j) amax = std::max(amax, std::fabs(double(x[r * stride + j])));
    EXPECT_NEAR(q.scale[r], amax / 127.0, 1e-6 * amax);
    for (int64_t j = 0; j < dim; ++j) {
      const double deq = double(q.scale[r]) * q.codes[r * dim + j];
      EXPECT_LE(std::fabs(deq - x[r * stride + j]), 0.5 * q.scale[r] + 1e-6 * amax);
      EXPECT_GE(q.codes[r * dim + j], -127);
    }
  }
  EXPECT_EQ(q.scale[7], 0.0f);
  // append/set keep the same encoding.
  Int8Rows grown;
  append_rows_int8(x.data(), 20, stride, dim, &grown);
  append_rows_int8(x.data() + 20 * stride, rows - 20, stride, dim, &grown);
  EXPECT_EQ(grown.codes, q.codes);
  EXPECT_EQ(grown.scale, q.scale);
  set_row_int8(x.data() + 3 * stride, 0, &grown);
  EXPECT_TRUE(std::equal(grown.codes.begin(), grown.codes.begin() + dim, q.codes.begin() + 3 * dim));
  EXPECT_THROW(append_rows_int8(x.data(), 1, stride, dim + 1, &grown), Error);
  EXPECT_THROW(set_row_int8(x.data(), rows, &grown), Error);
  std::vector<float> bad = {1.0f, NAN};
  EXPECT_THROW(quantize_rows_int8(bad.data(), 1, 2, 2, &grown), Error);
}

TEST(Int8, Top1EqualsBruteForceOnDequantizedRowsAndTiesGoLow) {
  const int64_t nq = 60, nd = 200, dim = 32;
  std::vector<float> qx = testing::random_normal(nq * dim, 5), dx = testing::random_normal(nd * dim, 6);
  std::copy(dx.begin() + 10 * dim, dx.begin() + 11 * dim, dx.begin() + 150 * dim);  // row 150 = row 10
  Int8Rows q, d;
  quantize_rows_int8(qx.data(), nq, dim, dim, &q);
  quantize_rows_int8(dx.data(), nd, dim, dim, &d);
  std::vector<int32_t> best(nq);
  std::vector<float> score(nq);
  int8_top1(q, d, best.data(), score.data());
  for (int64_t i = 0; i < nq; ++i) {
    int32_t want = -1;
    double top = -INFINITY;
    for (int64_t r = 0; r < nd; ++r) {
      double s = 0;  // dequantized dot in double
      for (int64_t j = 0; j < dim; ++j) s += double(q.scale[i]) * q.codes[i * dim + j] * double(d.scale[r]) * d.codes[r * dim + j];
      if (s > top * (1 + 1e-6) + 1e-9 || want < 0) {
        top = s;
        want = static_cast<int32_t>(r);
      }
    }
    EXPECT_EQ(best[i], want) << "query " << i;
    EXPECT_NEAR(score[i], top, 1e-5 * std::fabs(top));
    EXPECT_NE(best[i], 150);  // its duplicate, row 10, has the lower index
  }
  Int8Rows empty;
  empty.dim = dim;
  int8_top1(q, empty, best.data(), score.data());
  EXPECT_EQ(best[0], -1);
  Int8Rows other;
  quantize_rows_int8(dx.data(), 2, dim, dim - 1, &other);
  EXPECT_THROW(int8_top1(q, other, best.data(), score.data()), Error);
}

// Recall of the int8 search of unit vectors (cosine) against float brute force, clustered data.
TEST(Int8, CosineTop1RecallOnClusteredData) {
  const int64_t rows = 2000, dim = 64;
  ClusteredData data = clustered(rows, dim, 16, 0.5f, 0.12f, 21);
  auto normalise = [&](std::vector<float>& x) {
    for (int64_t r = 0; r < rows; ++r) {
      const double n = std::sqrt(dot_d(x.data() + r * dim, x.data() + r * dim, dim));
      for (int64_t j = 0; j < dim; ++j) x[r * dim + j] = static_cast<float>(x[r * dim + j] / n);
    }
  };
  normalise(data.database);
  normalise(data.queries);
  std::vector<int32_t> want(rows), got(rows);
  std::vector<float> want_score(rows), got_score(rows);
  brute_force_top1(data.queries.data(), rows, dim, data.database.data(), rows, dim, dim, SimilarityMetric::cosine,
                   want.data(), want_score.data());
  Int8Rows q, d;
  quantize_rows_int8(data.queries.data(), rows, dim, dim, &q);
  quantize_rows_int8(data.database.data(), rows, dim, dim, &d);
  int8_top1(q, d, got.data(), got_score.data());
  int64_t hits = 0;
  double worst_gap = 0;
  for (int64_t i = 0; i < rows; ++i) {
    hits += got[i] == want[i];
    const double true_sim = cosine_d(data.queries.data() + i * dim, data.database.data() + got[i] * dim, dim);
    worst_gap = std::max(worst_gap, double(want_score[i]) - true_sim);
  }
  const double recall = double(hits) / rows;
  std::printf("int8 cosine top-1 recall %.4f, worst similarity loss %.4f\n", recall, worst_gap);
  EXPECT_GE(recall, 0.99);
  EXPECT_LT(worst_gap, 0.02);  // a miss is a near tie
}

}  // namespace
}  // namespace fastar
