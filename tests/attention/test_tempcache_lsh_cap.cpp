// The per-bucket LSH candidate cap (TempCacheOptions::lsh_bucket_cap, LshSearchOptions::
// max_candidates_per_bucket): bucket order and capped candidates against a brute-force definition,
// cap 0 and a cap above every bucket's size against the uncapped search, the candidate bound and the
// top-1 recall on crowded keys (one strong shared direction + noise, like random-weight Wan keys),
// and TempCache keeping the newest representatives of a crowded bucket.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>

#include "fastar/attention/ann_lsh.h"
#include "fastar/attention/tempcache.h"
#include "fastar/core/error.h"
#include "test_util.h"

namespace fastar {
namespace {

// Crowded keys: every row = strength · sqrt(dim) · u (one shared unit direction u) + N(0, 1) noise per
// coordinate, so two unrelated rows have cosine ≈ strength² / (strength² + 1) and most LSH bits are
// fixed by u: the rows fall into a few buckets. queries[i] = rows[i] + N(0, jitter) (the token's key one
// frame later). Rows are grouped into frames of `per_frame` rows (frame = row / per_frame).
struct CrowdedData {
  int64_t rows, dim;
  std::vector<float> database, queries;
};

CrowdedData crowded(int64_t rows, int64_t dim, float strength, float jitter, uint64_t seed) {
  CrowdedData data{rows, dim, testing::random_normal(rows * dim, seed), {}};
  std::vector<float> u = testing::random_normal(dim, seed + 1);
  double n = 0;
  for (float x : u) n += double(x) * x;
  const double scale = strength * std::sqrt(double(dim)) / std::sqrt(n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < dim; ++j) data.database[static_cast<size_t>(r * dim + j)] += static_cast<float>(scale * u[j]);
  const std::vector<float> noise = testing::random_normal(rows * dim, seed + 2, jitter);
  data.queries.resize(data.database.size());
  for (size_t i = 0; i < data.database.size(); ++i) data.queries[i] = data.database[i] + noise[i];
  return data;
}

// Capped candidates by definition: for each probed (table, bucket), the rows with that code ranked by
// (priority desc, row desc), the first `cap` of them; union, ascending.
std::vector<int32_t> capped_candidates_reference(const std::vector<uint32_t>& codes, const std::vector<int64_t>& priority,
                                                 int64_t rows, int tables, int bits, const uint32_t* q, int probe,
                                                 int64_t cap) {
  std::vector<uint8_t> take(static_cast<size_t>(rows), 0);
  for (int t = 0; t < tables; ++t) {
    for (int flip = -1; flip < (probe ? bits : 0); ++flip) {
      const uint32_t bucket = flip < 0 ? q[t] : q[t] ^ (1u << flip);
      std::vector<int32_t> members;
      for (int64_t r = 0; r < rows; ++r)
        if (codes[static_cast<size_t>(r * tables + t)] == bucket) members.push_back(static_cast<int32_t>(r));
      std::sort(members.begin(), members.end(), [&](int32_t a, int32_t b) {
        return std::make_pair(priority[static_cast<size_t>(a)], a) > std::make_pair(priority[static_cast<size_t>(b)], b);
      });
      const size_t keep = cap > 0 ? std::min(members.size(), static_cast<size_t>(cap)) : members.size();
      for (size_t i = 0; i < keep; ++i) take[static_cast<size_t>(members[i])] = 1;
    }
  }
  std::vector<int32_t> out;
  for (int64_t r = 0; r < rows; ++r)
    if (take[static_cast<size_t>(r)]) out.push_back(static_cast<int32_t>(r));
  return out;
}

TEST(LshCap, BucketOrderAndCappedCandidatesMatchTheDefinition) {
  const int tables = 3, bits = 4;
  const int64_t rows = 400;
  std::mt19937_64 rng(17);
  std::vector<uint32_t> codes(static_cast<size_t>(rows * tables));
  for (uint32_t& c : codes) c = static_cast<uint32_t>(rng() % (1u << bits));
  std::vector<int64_t> priority(static_cast<size_t>(rows));
  for (int64_t& p : priority) p = static_cast<int64_t>(rng() % 7);  // many ties: broken by the higher row
  LshBuckets buckets;
  buckets.build(codes.data(), rows, tables, bits, priority);
  for (int t = 0; t < tables; ++t) {
    for (uint32_t b = 0; b < (1u << bits); ++b) {
      const auto ids = buckets.bucket(t, b);
      for (size_t i = 1; i < ids.size(); ++i)
        ASSERT_GT(std::make_pair(priority[static_cast<size_t>(ids[i - 1])], ids[i - 1]),
                  std::make_pair(priority[static_cast<size_t>(ids[i])], ids[i]));
    }
  }
  std::vector<uint8_t> seen(static_cast<size_t>(rows), 0);
  std::vector<int32_t> got;
  for (int probe = 0; probe <= 1; ++probe) {
    for (int64_t cap : {0, 1, 3, 10, 1000}) {
      for (int trial = 0; trial < 20; ++trial) {
        std::vector<uint32_t> q(tables);
        for (uint32_t& c : q) c = static_cast<uint32_t>(rng() % (1u << bits));
        lsh_candidates(buckets, q.data(), probe, &got, &seen, cap);
        ASSERT_EQ(got, capped_candidates_reference(codes, priority, rows, tables, bits, q.data(), probe, cap))
            << "probe " << probe << " cap " << cap;
        if (cap > 0) ASSERT_LE(static_cast<int64_t>(got.size()), tables * (1 + probe * bits) * cap);
        ASSERT_TRUE(std::all_of(seen.begin(), seen.end(), [](uint8_t s) { return s == 0; }));
      }
    }
  }
  EXPECT_THROW(lsh_candidates(buckets, codes.data(), 0, &got, &seen, -1), Error);
  priority.pop_back();
  EXPECT_THROW(buckets.build(codes.data(), rows, tables, bits, priority), Error);
}

struct CrowdedSearch {
  static constexpr int kTables = 4, kBits = 10;
  static constexpr int64_t kRows = 4000, kDim = 128, kPerFrame = 500;
  CrowdedData data = crowded(kRows, kDim, 2.0f, 0.15f, 31);
  LshHasher hasher{LshParams{kDim, kTables, kBits, 5}};
  std::vector<uint32_t> db_codes, q_codes;
  std::vector<int64_t> frame;
  CrowdedSearch() : db_codes(kRows * kTables), q_codes(kRows * kTables), frame(kRows) {
    hasher.hash(data.database.data(), kRows, kDim, db_codes.data());
    hasher.hash(data.queries.data(), kRows, kDim, q_codes.data());
    for (int64_t r = 0; r < kRows; ++r) frame[static_cast<size_t>(r)] = r / kPerFrame;
  }
  // Top-1 of queries [first, first + count) with the given cap (buckets ordered newest first).
  void top1(int64_t cap, int64_t first, int64_t count, std::vector<int32_t>* best, std::vector<float>* score) const {
    LshBuckets buckets;
    buckets.build(db_codes.data(), kRows, kTables, kBits, frame);
    LshSearchOptions options;
    options.multi_probe = 1;
    options.max_candidates_per_bucket = cap;
    best->resize(count);
    score->resize(count);
    lsh_top1(buckets, q_codes.data() + first * kTables, data.queries.data() + first * kDim, count, kDim,
             data.database.data(), kDim, kDim, options, best->data(), score->data());
  }
};

// Cap 0 and a cap above every bucket's size give the uncapped search's results exactly (and the
// bucket order does not change the uncapped result: ties are broken by the row index).
TEST(LshCap, ZeroOrLargeCapEqualsTheUncappedSearch) {
  const CrowdedSearch s;
  LshBuckets ascending;
  ascending.build(s.db_codes.data(), s.kRows, s.kTables, s.kBits);
  int64_t largest = 0;
  for (int t = 0; t < s.kTables; ++t)
    for (uint32_t b = 0; b < (1u << s.kBits); ++b)
      largest = std::max<int64_t>(largest, static_cast<int64_t>(ascending.bucket(t, b).size()));
  const int64_t n = 1500;
  LshSearchOptions options;
  options.multi_probe = 1;
  std::vector<int32_t> want(n);
  std::vector<float> want_score(n);
  lsh_top1(ascending, s.q_codes.data(), s.data.queries.data(), n, s.kDim, s.data.database.data(), s.kDim, s.kDim,
           options, want.data(), want_score.data());
  for (int64_t cap : {int64_t{0}, largest, largest + 100}) {
    std::vector<int32_t> got;
    std::vector<float> score;
    s.top1(cap, 0, n, &got, &score);
    EXPECT_EQ(got, want) << "cap " << cap;
    EXPECT_EQ(0, std::memcmp(score.data(), want_score.data(), n * sizeof(float))) << "cap " << cap;
  }
  EXPECT_GT(largest, 64) << "the data should crowd buckets beyond the default cap";
}

// Crowded keys: the uncapped search re-ranks a large share of the cache per query; with the cap each
// query re-ranks at most tables · (1 + bits) · cap rows (multi-probe 1), and the top-1 recall against
// brute force stays high for queries whose source is in the newest frames (TempCache's case: a token
// continues from the previous frame and merging keeps its representative the newest).
TEST(LshCap, CrowdedKeysBoundTheCandidatesAndKeepRecallOnRecentSources) {
  const CrowdedSearch s;
  const int64_t rows = s.kRows;
  LshBuckets newest_first;
  newest_first.build(s.db_codes.data(), rows, s.kTables, s.kBits, s.frame);
  std::vector<uint8_t> seen(static_cast<size_t>(rows), 0);
  std::vector<int32_t> cand;
  double uncapped = 0;
  int64_t most = 0;
  const int64_t cap = 64, sampled = 600;
  for (int64_t i = 0; i < sampled; ++i) {
    const int64_t q = i * (rows / sampled);
    lsh_candidates(newest_first, s.q_codes.data() + q * s.kTables, 1, &cand, &seen, 0);
    uncapped += double(cand.size());
    lsh_candidates(newest_first, s.q_codes.data() + q * s.kTables, 1, &cand, &seen, cap);
    most = std::max<int64_t>(most, static_cast<int64_t>(cand.size()));
    lsh_candidates(newest_first, s.q_codes.data() + q * s.kTables, 0, &cand, &seen, cap);
    ASSERT_LE(static_cast<int64_t>(cand.size()), s.kTables * cap);  // own buckets only: tables · cap
  }
  uncapped /= double(sampled) * double(rows);
  std::printf("crowded keys, 4 x 10 bits, multi-probe 1: uncapped candidates %.1f%% of %lld rows; cap %lld: at most %lld\n",
              100.0 * uncapped, static_cast<long long>(rows), static_cast<long long>(cap), static_cast<long long>(most));
  EXPECT_GT(uncapped, 0.25) << "the data should be crowded";
  EXPECT_LE(most, s.kTables * (1 + s.kBits) * cap);

  // Recall on the newest two frames' sources (1000 queries) and, for the record, on all sources.
  std::vector<int32_t> want(rows), got;
  std::vector<float> want_score(rows), score;
  brute_force_top1(s.data.queries.data(), rows, s.kDim, s.data.database.data(), rows, s.kDim, s.kDim,
                   SimilarityMetric::cosine, want.data(), want_score.data());
  auto recall = [&](int64_t c, int64_t first, int64_t count) {
    s.top1(c, first, count, &got, &score);
    int64_t hits = 0;
    for (int64_t i = 0; i < count; ++i) hits += got[i] == want[first + i];
    return double(hits) / count;
  };
  const int64_t recent = s.kPerFrame;  // the newest frame's sources
  const double recent_uncapped = recall(0, rows - recent, recent), all_uncapped = recall(0, 0, rows);
  double recent_capped = 0, all_capped = 0;
  for (int64_t c : {256, 64, 128}) {
    recent_capped = recall(c, rows - recent, recent);
    all_capped = recall(c, 0, rows);
    std::printf("top-1 recall, newest frame's sources: cap %lld %.4f (uncapped %.4f); all sources: %.4f (%.4f)\n",
                static_cast<long long>(c), recent_capped, recent_uncapped, all_capped, all_uncapped);
  }
  EXPECT_GE(recent_uncapped, 0.99);
  EXPECT_GE(recent_capped, 0.995);  // cap 128 (the default): 1.000 measured; cap 64: 0.988
  EXPECT_LT(all_capped, all_uncapped);  // old sources are dropped from crowded buckets: the price of the cap
}

// TempCache with cap 1 on keys that all hash alike: each new key sees only its bucket's newest
// representative (latest frame, ties → the higher slot), so a frame's keys all match that one group,
// one of them merges (the most similar) and the rest append.
TEST(LshCap, TempCacheReRanksTheNewestRepresentatives) {
  const int64_t d = 32, tpf = 6;
  TempCacheOptions o;
  o.threshold = 0.5f;
  o.lsh_bucket_cap = 1;
  o.lsh_multi_probe = 0;
  const LshHasher hasher(LshParams{d, o.lsh_tables, o.lsh_bits, o.seed});
  TempCacheHead head(d, o, &hasher);
  // keys = 40 · u + N(0, 0.01): one bucket per table for every key (checked), cosine ≈ 1 between all.
  std::vector<float> u = testing::random_normal(d, 3);
  auto frame_keys = [&](uint64_t seed) {
    std::vector<float> k = testing::random_normal(tpf * d, seed, 0.01f);
    for (int64_t i = 0; i < tpf; ++i)
      for (int64_t j = 0; j < d; ++j) k[static_cast<size_t>(i * d + j)] += 40.0f * u[static_cast<size_t>(j)];
    return k;
  };
  std::vector<int64_t> slot_of_group;  // group id → slot (ids are assigned in slot order while nothing is evicted)
  std::vector<uint32_t> first_codes(o.lsh_tables), codes(o.lsh_tables);
  for (int64_t f = 0; f < 4; ++f) {
    const std::vector<float> k = frame_keys(100 + f), v = testing::random_normal(tpf * d, 200 + f);
    for (int64_t i = 0; i < tpf; ++i) {
      hasher.hash(k.data() + i * d, 1, d, codes.data());
      if (f == 0 && i == 0) first_codes = codes;
      ASSERT_EQ(codes, first_codes) << "precondition: every key in the same buckets";
    }
    const std::vector<int64_t> frames_before = head.rep_frames();
    const int64_t size_before = head.size();
    std::vector<int64_t> group;
    head.commit_frame(k.data(), v.data(), nullptr, d, tpf, f, false, &group);
    if (f == 0) {
      EXPECT_EQ(head.size(), tpf);
      continue;
    }
    // The newest representative before this frame: latest frame, then the highest slot.
    int64_t newest = 0;
    for (int64_t s = 1; s < size_before; ++s)
      if (std::make_pair(frames_before[s], s) > std::make_pair(frames_before[newest], newest)) newest = s;
    EXPECT_EQ(head.size(), size_before + tpf - 1) << "frame " << f << ": one merge, the rest appended";
    int64_t merged = 0;
    for (int64_t i = 0; i < tpf; ++i) {
      if (group[static_cast<size_t>(i)] < size_before) {  // joined an existing group
        EXPECT_EQ(group[static_cast<size_t>(i)], head.group_ids()[static_cast<size_t>(newest)]) << "frame " << f;
        ++merged;
      }
    }
    EXPECT_EQ(merged, 1) << "frame " << f;
  }
  // Uncapped, the same stream merges the frame's keys into distinct groups (all are candidates).
  o.lsh_bucket_cap = 0;
  TempCacheHead uncapped(d, o, &hasher);
  for (int64_t f = 0; f < 4; ++f) {
    const std::vector<float> k = frame_keys(100 + f), v = testing::random_normal(tpf * d, 200 + f);
    uncapped.commit_frame(k.data(), v.data(), nullptr, d, tpf, f, false, nullptr);
  }
  EXPECT_LT(uncapped.size(), head.size());
}

TEST(LshCap, NegativeCapIsAnError) {
  TempCacheOptions o;
  o.lsh_bucket_cap = -1;
  EXPECT_THROW(o.validate(), Error);
}

}  // namespace
}  // namespace fastar
