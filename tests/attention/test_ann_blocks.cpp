// Bucket sort, the bucket → block-sparse plan, bucketed attention of one head and the log-sum-exp
// merge (attention/bucket_block_plan.h, attention/ann_self_attention.h), each against brute force
// or the suite's attention oracle (tests/reference/).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "fastar/attention/ann_self_attention.h"
#include "fastar/attention/bucket_block_plan.h"
#include "fastar/core/error.h"
#include "reference/attention_oracle.h"
#include "test_util.h"

namespace fastar {
namespace {

using testing::kF32AbsTol;
using testing::kF32RelTol;
using testing::max_scaled_error;
using testing::random_normal;

std::vector<uint32_t> random_labels(int64_t rows, uint32_t buckets, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> labels(static_cast<size_t>(rows));
  for (auto& l : labels) l = static_cast<uint32_t>(rng() % buckets);
  return labels;
}

TEST(BucketSort, IsAStablePermutationGroupedByBucket) {
  for (const auto& [rows, buckets] : std::vector<std::pair<int64_t, uint32_t>>{{0, 3}, {1, 1}, {77, 4}, {1000, 17}, {513, 256}}) {
    const std::vector<uint32_t> labels = random_labels(rows, buckets, rows * 31 + buckets);
    BucketOrder order;
    bucket_sort(labels.data(), rows, 1, buckets, &order);
    ASSERT_EQ(static_cast<int64_t>(order.order.size()), rows);
    std::vector<int> seen(static_cast<size_t>(rows), 0);
    for (int32_t r : order.order) {
      ASSERT_GE(r, 0);
      ASSERT_LT(r, rows);
      ++seen[static_cast<size_t>(r)];
    }
    for (int s : seen) EXPECT_EQ(s, 1) << "not a permutation (rows " << rows << ")";
    ASSERT_EQ(order.offsets.size(), buckets + 1);
    EXPECT_EQ(order.offsets.front(), 0);
    EXPECT_EQ(order.offsets.back(), rows);
    for (uint32_t b = 0; b < buckets; ++b) {
      const int64_t count = std::count(labels.begin(), labels.end(), b);
      EXPECT_EQ(order.offsets[b + 1] - order.offsets[b], count);
      for (int32_t i = order.offsets[b]; i < order.offsets[b + 1]; ++i) {
        EXPECT_EQ(labels[static_cast<size_t>(order.order[static_cast<size_t>(i)])], b);
        if (i > order.offsets[b]) EXPECT_LT(order.order[static_cast<size_t>(i) - 1], order.order[static_cast<size_t>(i)]);
      }
    }
  }
}

TEST(BucketSort, StridedLabelsAndBadLabel) {
  const std::vector<uint32_t> strided = {2, 9, 0, 9, 1, 9, 0, 9};  // labels at stride 2: 2, 0, 1, 0
  BucketOrder order;
  bucket_sort(strided.data(), 4, 2, 3, &order);
  EXPECT_EQ(order.order, (std::vector<int32_t>{1, 3, 2, 0}));
  const std::vector<uint32_t> bad = {0, 5};
  EXPECT_THROW(bucket_sort(bad.data(), 2, 1, 3, &order), Error);
}

// Brute force over the key layout the plan addresses: label_at[p] is the bucket of the key at position
// p (−1: padding). Query block qb must visit key block kb iff some (query, key) pair of the two blocks
// shares a bucket, listed ascending without repeats; executed pairs count the visited blocks' real keys
// (padding excluded); bucket pairs are the (query, key) pairs of a shared bucket.
void expect_plan_matches_layout(const BucketBlockPlan& plan, const std::vector<uint32_t>& ql, const BucketOrder& qo,
                                const std::vector<int64_t>& label_at, int64_t bq, int64_t bk) {
  const int64_t q_rows = static_cast<int64_t>(ql.size()), positions = static_cast<int64_t>(label_at.size());
  const int64_t q_blocks = (q_rows + bq - 1) / bq, k_blocks = (positions + bk - 1) / bk;
  ASSERT_EQ(static_cast<int64_t>(plan.block_offsets.size()), q_blocks + 1);
  int64_t executed = 0, bucket_pairs = 0;
  for (int64_t qb = 0; qb < q_blocks; ++qb) {
    std::set<int32_t> expected;
    for (int64_t i = qb * bq; i < std::min(q_rows, (qb + 1) * bq); ++i)
      for (int64_t p = 0; p < positions; ++p)
        if (label_at[static_cast<size_t>(p)] == ql[static_cast<size_t>(qo.order[static_cast<size_t>(i)])])
          expected.insert(static_cast<int32_t>(p / bk));
    const std::vector<int32_t> listed(plan.block_index.begin() + plan.block_offsets[static_cast<size_t>(qb)],
                                      plan.block_index.begin() + plan.block_offsets[static_cast<size_t>(qb) + 1]);
    EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end()));
    EXPECT_EQ(std::set<int32_t>(listed.begin(), listed.end()), expected) << "query block " << qb;
    EXPECT_EQ(listed.size(), expected.size()) << "duplicate key block in query block " << qb;
    for (int32_t kb : listed) {
      EXPECT_LT(kb, k_blocks);
      for (int64_t p = int64_t{kb} * bk; p < std::min(positions, (int64_t{kb} + 1) * bk); ++p)
        executed += (std::min(q_rows, (qb + 1) * bq) - qb * bq) * (label_at[static_cast<size_t>(p)] >= 0);
    }
  }
  for (int64_t i = 0; i < q_rows; ++i)
    for (int64_t p = 0; p < positions; ++p) bucket_pairs += label_at[static_cast<size_t>(p)] == ql[static_cast<size_t>(i)];
  EXPECT_EQ(plan.executed_pairs, executed) << "padding rows must not count";
  EXPECT_EQ(plan.bucket_pairs, bucket_pairs);
  EXPECT_GE(plan.executed_pairs, plan.bucket_pairs);
}

// One key segment: the keys in sorted order, no padding.
void check_plan(int64_t q_rows, int64_t k_rows, uint32_t buckets, int64_t bq, int64_t bk, uint64_t seed) {
  const std::vector<uint32_t> ql = random_labels(q_rows, buckets, seed), kl = random_labels(k_rows, buckets, seed + 1);
  BucketOrder qo, ko;
  bucket_sort(ql.data(), q_rows, 1, buckets, &qo);
  bucket_sort(kl.data(), k_rows, 1, buckets, &ko);
  BucketBlockPlan plan;
  bucket_block_plan(qo.offsets.data(), ko.offsets.data(), buckets, bq, bk, &plan);
  std::vector<int64_t> label_at(static_cast<size_t>(k_rows));
  for (int64_t j = 0; j < k_rows; ++j) label_at[static_cast<size_t>(j)] = kl[static_cast<size_t>(ko.order[static_cast<size_t>(j)])];
  expect_plan_matches_layout(plan, ql, qo, label_at, bq, bk);
}

TEST(BucketBlockPlan, CoversExactlyTheBlocksWithSharedBuckets) {
  check_plan(300, 500, 4, 64, 64, 1);
  check_plan(257, 129, 16, 64, 128, 2);
  check_plan(100, 100, 256, 16, 8, 3);   // many small buckets
  check_plan(64, 1000, 1, 64, 64, 4);    // one bucket: every block
  check_plan(50, 0, 4, 64, 64, 5);       // no keys
  check_plan(1, 7, 3, 1, 1, 6);          // element-wise blocks: exactly the bucket pairs
}

// Two key segments (cached keys sorted at a commit, own keys sorted per call), the second from key
// block `first_block`: the plan against brute force over the concatenated layout.
void check_two_segment_plan(int64_t q_rows, int64_t rows0, int64_t rows1, uint32_t buckets, int64_t bq, int64_t bk,
                            int64_t gap_blocks, uint64_t seed) {
  const std::vector<uint32_t> ql = random_labels(q_rows, buckets, seed), kl0 = random_labels(rows0, buckets, seed + 1),
                              kl1 = random_labels(rows1, buckets, seed + 2);
  BucketOrder qo, ko0, ko1;
  bucket_sort(ql.data(), q_rows, 1, buckets, &qo);
  bucket_sort(kl0.data(), rows0, 1, buckets, &ko0);
  bucket_sort(kl1.data(), rows1, 1, buckets, &ko1);
  const int64_t first_block = (rows0 + bk - 1) / bk + gap_blocks;
  const KeySegmentOffsets segments[2] = {{ko0.offsets.data(), 0}, {ko1.offsets.data(), first_block}};
  BucketBlockPlan plan;
  bucket_block_plan(qo.offsets.data(), segments, 2, buckets, bq, bk, &plan);
  // The layout: key position p holds segment 0's sorted row p, or segment 1's sorted row p − first_block·bk,
  // or padding.
  std::vector<int64_t> label_at(static_cast<size_t>(first_block * bk + rows1), -1);
  for (int64_t j = 0; j < rows0; ++j) label_at[static_cast<size_t>(j)] = kl0[static_cast<size_t>(ko0.order[static_cast<size_t>(j)])];
  for (int64_t j = 0; j < rows1; ++j)
    label_at[static_cast<size_t>(first_block * bk + j)] = kl1[static_cast<size_t>(ko1.order[static_cast<size_t>(j)])];
  expect_plan_matches_layout(plan, ql, qo, label_at, bq, bk);
}

TEST(BucketBlockPlan, TwoKeySegmentsEachFromABlockBoundary) {
  check_two_segment_plan(300, 500, 200, 4, 64, 64, 0, 31);   // segment 0 ends mid-block: padding follows
  check_two_segment_plan(257, 128, 333, 8, 128, 64, 0, 32);  // segment 0 ends on a block boundary
  check_two_segment_plan(200, 300, 150, 2, 64, 64, 3, 33);   // spare blocks between the segments
  check_two_segment_plan(100, 0, 90, 4, 64, 64, 0, 34);      // no cached keys
  check_two_segment_plan(64, 70, 70, 1, 64, 64, 0, 35);      // one bucket: every key block of both
  // Equals the one-segment plan when the second is empty.
  const std::vector<uint32_t> ql = random_labels(150, 4, 36), kl = random_labels(260, 4, 37);
  BucketOrder qo, ko, none;
  bucket_sort(ql.data(), 150, 1, 4, &qo);
  bucket_sort(kl.data(), 260, 1, 4, &ko);
  bucket_sort(kl.data(), 0, 1, 4, &none);
  BucketBlockPlan one, two;
  bucket_block_plan(qo.offsets.data(), ko.offsets.data(), 4, 64, 64, &one);
  const KeySegmentOffsets segments[2] = {{ko.offsets.data(), 0}, {none.offsets.data(), 5}};
  bucket_block_plan(qo.offsets.data(), segments, 2, 4, 64, 64, &two);
  EXPECT_EQ(one.block_index, two.block_index);
  EXPECT_EQ(one.block_offsets, two.block_offsets);
  EXPECT_EQ(one.executed_pairs, two.executed_pairs);
  // Overlapping segments are a programming error.
  const KeySegmentOffsets overlapping[2] = {{ko.offsets.data(), 0}, {ko.offsets.data(), 4}};  // 260 rows need 5 blocks
  EXPECT_DEATH(bucket_block_plan(qo.offsets.data(), overlapping, 2, 4, 64, 64, &two), "overlaps");
}

// One head of the suite's attention oracle (tests/reference/): q rows of stride `q_stride` over
// keys/values [n, head_dim] (contiguous), with an optional per-key bias and a mask allowed(i, j).
testing::OracleAttentionResult one_head_oracle(const float* q, int64_t q_stride, int64_t q_len,
                                               const std::vector<float>& keys, const std::vector<float>& values,
                                               const std::vector<float>& bias, int64_t head_dim, double scale,
                                               std::function<bool(int64_t, int64_t)> allowed) {
  testing::OracleAttentionArgs a;
  a.q = testing::OracleOperand(q, q_stride, 0);
  a.k = testing::OracleOperand::packed(keys.data(), 1, head_dim);
  a.v = testing::OracleOperand::packed(values.data(), 1, head_dim);
  a.heads = 1, a.head_dim = head_dim, a.q_len = q_len, a.kv_len = static_cast<int64_t>(keys.size()) / head_dim;
  a.scale = scale;
  if (!bias.empty()) a.bias = [&bias](int64_t, int64_t, int64_t j) { return double{bias[static_cast<size_t>(j)]}; };
  a.mask = [&allowed](int64_t, int64_t i, int64_t j) { return allowed(i, j); };
  return testing::attention_oracle(a);
}

// Bucketed attention with element-wise blocks (exactly the bucket pattern) and with 64-blocks
// (the block superset) against the reference; one bucket = dense attention.
TEST(BucketedAttentionHead, MatchesMaskedSoftmaxReference) {
  const int64_t hd = 16, q_len = 150, seg0 = 90, seg1 = 70, stride = 3 * hd;  // strided rows
  const std::vector<float> q = random_normal(q_len * stride, 11), k0 = random_normal(seg0 * stride, 12),
                           v0 = random_normal(seg0 * stride, 13), k1 = random_normal(seg1 * hd, 14),
                           v1 = random_normal(seg1 * hd, 15), bias0 = random_normal(seg0, 16, 0.5f);
  for (uint32_t buckets : {1u, 3u, 8u}) {
    for (int64_t block : {1, 64}) {
      const std::vector<uint32_t> ql = random_labels(q_len, buckets, 21 + buckets), kl = random_labels(seg0 + seg1, buckets, 22 + buckets);
      BucketedHeadArgs a;
      a.q = q.data() + hd;  // column offset inside the strided rows
      a.q_stride = stride;
      a.q_len = q_len;
      a.keys[0] = {k0.data() + 2 * hd, v0.data(), stride, stride, bias0.data(), seg0};
      a.keys[1] = {k1.data(), v1.data(), hd, hd, nullptr, seg1};
      a.q_labels = ql.data();
      a.k_labels = kl.data();
      a.num_buckets = buckets;
      a.head_dim = hd;
      a.scale = 0.3f;
      a.block_q = block;
      a.block_k = block;
      std::vector<float> o(static_cast<size_t>(q_len * hd), -7.0f), lse(static_cast<size_t>(q_len));
      a.o = o.data();
      a.o_stride = hd;
      a.lse = lse.data();
      BucketedScratch scratch;
      const int64_t executed = bucketed_attention_head(a, &scratch);

      // Position of each row in the sorted order, to rebuild the block pattern.
      std::vector<int64_t> q_pos(static_cast<size_t>(q_len)), k_pos(static_cast<size_t>(seg0 + seg1));
      for (int64_t i = 0; i < q_len; ++i) q_pos[static_cast<size_t>(scratch.q_order.order[static_cast<size_t>(i)])] = i;
      // Each segment sorted on its own; segment 1 from the key block after segment 0.
      EXPECT_EQ(scratch.seg1_base, (seg0 + block - 1) / block * block);
      for (int64_t j = 0; j < seg0; ++j) k_pos[static_cast<size_t>(scratch.k_order[0].order[static_cast<size_t>(j)])] = j;
      for (int64_t j = 0; j < seg1; ++j)
        k_pos[static_cast<size_t>(seg0 + scratch.k_order[1].order[static_cast<size_t>(j)])] = scratch.seg1_base + j;
      std::set<std::pair<int64_t, int64_t>> blocks;
      for (int64_t qb = 0; qb + 1 < static_cast<int64_t>(scratch.plan.block_offsets.size()); ++qb)
        for (int32_t e = scratch.plan.block_offsets[static_cast<size_t>(qb)]; e < scratch.plan.block_offsets[static_cast<size_t>(qb) + 1]; ++e)
          blocks.insert({qb, scratch.plan.block_index[static_cast<size_t>(e)]});

      // Keys and values of both segments, gathered contiguous, with segment 1's bias 0.
      std::vector<float> keys, values, bias;
      for (int64_t j = 0; j < seg0; ++j) {
        keys.insert(keys.end(), k0.begin() + 2 * hd + j * stride, k0.begin() + 3 * hd + j * stride);
        values.insert(values.end(), v0.begin() + j * stride, v0.begin() + hd + j * stride);
        bias.push_back(bias0[static_cast<size_t>(j)]);
      }
      keys.insert(keys.end(), k1.begin(), k1.end());
      values.insert(values.end(), v1.begin(), v1.end());
      bias.resize(static_cast<size_t>(seg0 + seg1), 0.0f);
      auto allowed = [&](int64_t i, int64_t j) {
        return blocks.count({q_pos[static_cast<size_t>(i)] / block, k_pos[static_cast<size_t>(j)] / block}) > 0;
      };
      for (int64_t i = 0; i < q_len; ++i)
        for (int64_t j = 0; j < seg0 + seg1; ++j) {
          // The pattern always holds the bucket pattern; element-wise blocks hold nothing else.
          const bool same = ql[static_cast<size_t>(i)] == kl[static_cast<size_t>(j)];
          if (same) EXPECT_TRUE(allowed(i, j));
          if (block == 1) EXPECT_EQ(allowed(i, j), same);
        }
      const testing::OracleAttentionResult expected =
          one_head_oracle(q.data() + hd, stride, q_len, keys, values, bias, hd, 0.3, allowed);
      const int64_t pairs = expected.visible_pairs();
      EXPECT_EQ(executed, pairs);
      if (buckets == 1) EXPECT_EQ(pairs, q_len * (seg0 + seg1)) << "one bucket must be dense";
      EXPECT_LE(testing::attention_scaled_error(o.data(), expected, kF32RelTol, kF32AbsTol), 1.0)
          << buckets << " buckets, block " << block;
      EXPECT_LE(testing::attention_lse_scaled_error(lse.data(), expected, kF32RelTol, kF32AbsTol), 1.0);
    }
  }
}

TEST(MergeAttentionParts, TwoDisjointKeySetsEqualAttentionOverTheirUnion) {
  const int64_t hd = 8, rows = 20, n1 = 13, n2 = 9;
  const std::vector<float> q = random_normal(rows * hd, 31), k = random_normal((n1 + n2) * hd, 32),
                           v = random_normal((n1 + n2) * hd, 33);
  // Part 1: keys [0, n1); part 2: keys [n1, n1 + n2), empty for row 3; all: their union.
  auto first = [&](int64_t, int64_t j) { return j < n1; };
  auto second = [&](int64_t i, int64_t j) { return j >= n1 && i != 3; };
  auto all = [&](int64_t i, int64_t j) { return first(i, j) || second(i, j); };
  const testing::OracleAttentionResult part1 = one_head_oracle(q.data(), hd, rows, k, v, {}, hd, 0.5, first);
  const testing::OracleAttentionResult part2 = one_head_oracle(q.data(), hd, rows, k, v, {}, hd, 0.5, second);
  const testing::OracleAttentionResult expected = one_head_oracle(q.data(), hd, rows, k, v, {}, hd, 0.5, all);
  ASSERT_TRUE(part2.row_empty(0, 3));  // its part: o = 0, lse = −inf
  std::vector<float> o1(part1.o.begin(), part1.o.end()), o2(part2.o.begin(), part2.o.end());
  std::vector<float> l1(part1.lse.begin(), part1.lse.end()), l2(part2.lse.begin(), part2.lse.end());
  const std::vector<float> unmerged = o1;
  merge_attention_parts(o1.data(), l1.data(), hd, 1, o2.data(), l2.data(), hd, 1, rows, hd);
  EXPECT_LE(testing::attention_scaled_error(o1.data(), expected, kF32RelTol, kF32AbsTol), 1.0);
  EXPECT_LE(testing::attention_lse_scaled_error(l1.data(), expected, kF32RelTol, kF32AbsTol), 1.0);
  EXPECT_GT(testing::attention_scaled_error(unmerged.data(), expected, kF32RelTol, kF32AbsTol), 1.0);  // part 1 alone
}

}  // namespace
}  // namespace fastar
