// AnnSaMemory (attention/ann_self_attention.h) wrapped around DenseMemory: against the suite's
// attention oracle (tests/reference/) with a mask from a brute-force bucket check (the same LSH
// projections, applied here by hand); one bucket = dense; the schedule's dense calls go through
// unchanged; commits reach the wrapped cache; recall and density on seeded clustered data; the
// sparse schedule helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "fastar/attention/ann_lsh.h"
#include "fastar/attention/ann_self_attention.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/attention/tempcache_memory.h"
#include "fastar/core/error.h"
#include "reference/attention_oracle.h"
#include "test_util.h"

namespace fastar {
namespace {

using testing::attention_oracle;
using testing::attention_scaled_error;
using testing::kF32AbsTol;
using testing::kF32RelTol;
using testing::max_scaled_error;
using testing::OracleAttentionArgs;
using testing::OracleAttentionResult;
using testing::OracleOperand;
using testing::random_normal;

constexpr int64_t kHeads = 2, kHd = 16, kTpf = 24, kFrames = 2, kTokens = kTpf * kFrames, kDim = kHeads * kHd;

MemoryCall call_at(int64_t frame_start, bool commit, const float* timesteps = nullptr) {
  MemoryCall c;
  c.frame_start = frame_start;
  c.num_frames = kFrames;
  c.tokens_per_frame = kTpf;
  c.commit = commit;
  c.timesteps = timesteps;
  return c;
}

// Reference: the suite's attention oracle over the keys [cached; own] (cached rows first): query i
// of head h sees cached key j iff cached_allowed(h, i, j) and own key j iff own_allowed(h, i, j). A
// query that sees no key at all outputs exactly 0 (the oracle's empty-row rule, which
// attention_scaled_error checks).
template <typename OwnAllowed, typename CachedAllowed>
OracleAttentionResult reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                                const std::vector<float>& ck, const std::vector<float>& cv, int64_t cached,
                                OwnAllowed own_allowed, CachedAllowed cached_allowed) {
  std::vector<float> keys(ck.begin(), ck.begin() + cached * kDim), values(cv.begin(), cv.begin() + cached * kDim);
  keys.insert(keys.end(), k.begin(), k.end());
  values.insert(values.end(), v.begin(), v.end());
  OracleAttentionArgs a;
  a.q = OracleOperand::packed(q.data(), kHeads, kHd);
  a.k = OracleOperand::packed(keys.data(), kHeads, kHd);
  a.v = OracleOperand::packed(values.data(), kHeads, kHd);
  a.heads = kHeads, a.head_dim = kHd, a.q_len = kTokens, a.kv_len = cached + kTokens;
  a.scale = 1.0 / std::sqrt(double(kHd));
  a.mask = [&](int64_t h, int64_t i, int64_t j) {
    return j < cached ? cached_allowed(h, i, j) : own_allowed(h, i, j - cached);
  };
  return attention_oracle(a);
}

// Per-head LSH codes of rows [rows, kDim], by the projections of the policy's seed.
std::vector<uint32_t> head_codes(const LshHasher& hasher, const std::vector<float>& x, int64_t rows, int64_t h) {
  std::vector<uint32_t> codes(static_cast<size_t>(rows));
  hasher.hash(x.data() + h * kHd, rows, kDim, codes.data());
  return codes;
}

class AnnSaMemoryTest : public ::testing::TestWithParam<AnnSaOwnKeys> {};

TEST_P(AnnSaMemoryTest, MatchesBruteForceBucketMask) {
  AnnSaOptions options;
  options.bits = 2;
  options.block_q = options.block_k = 1;  // element-wise blocks: exactly the bucket pattern
  options.own_keys = GetParam();
  AnnSaMemory sparse(std::make_unique<DenseMemory>(1, kHeads, kHd), 1, kHeads, kHd, options, nullptr);
  DenseMemory dense(1, kHeads, kHd);

  // Chunk 0, committed: nothing cached yet.
  const std::vector<float> q0 = random_normal(kTokens * kDim, 1), k0 = random_normal(kTokens * kDim, 2),
                           v0 = random_normal(kTokens * kDim, 3);
  std::vector<float> out_sparse(static_cast<size_t>(kTokens * kDim)), out_dense(out_sparse.size());
  sparse.attend(0, call_at(0, true), q0.data(), k0.data(), v0.data(), out_sparse.data());
  dense.attend(0, call_at(0, true), q0.data(), k0.data(), v0.data(), out_dense.data());
  EXPECT_EQ(sparse.cached_frames(0), kFrames);
  EXPECT_EQ(sparse.bytes(), dense.bytes());

  // Chunk 1 against the cached chunk 0.
  const std::vector<float> q1 = random_normal(kTokens * kDim, 4), k1 = random_normal(kTokens * kDim, 5),
                           v1 = random_normal(kTokens * kDim, 6);
  sparse.attend(0, call_at(kFrames, false), q1.data(), k1.data(), v1.data(), out_sparse.data());

  LshParams lsh;
  lsh.dim = kHd;
  lsh.tables = 1;
  lsh.bits = options.bits;
  lsh.seed = options.seed;
  const LshHasher hasher(lsh);
  std::vector<std::vector<uint32_t>> qc, ck, kc;
  for (int64_t h = 0; h < kHeads; ++h) {
    qc.push_back(head_codes(hasher, q1, kTokens, h));
    ck.push_back(head_codes(hasher, k0, kTokens, h));
    kc.push_back(head_codes(hasher, k1, kTokens, h));
  }
  const bool own_dense = GetParam() == AnnSaOwnKeys::dense;
  const OracleAttentionResult expected = reference(
      q1, k1, v1, k0, v0, kTokens,
      [&](int64_t h, int64_t i, int64_t j) { return own_dense || qc[h][i] == kc[h][j]; },
      [&](int64_t h, int64_t i, int64_t j) { return qc[h][i] == ck[h][j]; });
  // Rows whose mask is empty (own keys sparse, no shared bucket) must be exactly 0.
  EXPECT_LE(attention_scaled_error(out_sparse.data(), expected, kF32RelTol, kF32AbsTol), 1.0);
  // The bucket mask really drops keys: dense attention differs.
  auto every_key = [](int64_t, int64_t, int64_t) { return true; };
  const OracleAttentionResult full = reference(q1, k1, v1, k0, v0, kTokens, every_key, every_key);
  EXPECT_LT(expected.visible_pairs(), full.visible_pairs());
  EXPECT_GT(attention_scaled_error(out_sparse.data(), full, kF32RelTol, kF32AbsTol), 100.0);

  const SparseStats::Layer stats = sparse.stats().layer(0);
  EXPECT_EQ(stats.sparse_calls, 2);
  EXPECT_GT(stats.density(), 0.0);
  EXPECT_LT(stats.density(), 1.0);
}

INSTANTIATE_TEST_SUITE_P(OwnKeys, AnnSaMemoryTest, ::testing::Values(AnnSaOwnKeys::dense, AnnSaOwnKeys::sparse));

TEST(AnnSaMemory, QueryWithNoKeyInItsBucketOutputsZero) {
  // Every key (cached and own) is the same vector u; half of the queries are u, the other half −u,
  // whose sign-projection code is the complement of u's: those rows share no bucket with any key.
  AnnSaOptions options;
  options.bits = 2;
  options.block_q = options.block_k = 1;
  options.own_keys = AnnSaOwnKeys::sparse;
  AnnSaMemory sparse(std::make_unique<DenseMemory>(1, kHeads, kHd), 1, kHeads, kHd, options, nullptr);
  const std::vector<float> u = random_normal(kDim, 21);
  std::vector<float> keys(static_cast<size_t>(kTokens * kDim)), queries(keys.size());
  for (int64_t t = 0; t < kTokens; ++t)
    for (int64_t c = 0; c < kDim; ++c) {
      keys[static_cast<size_t>(t * kDim + c)] = u[static_cast<size_t>(c)];
      queries[static_cast<size_t>(t * kDim + c)] = (t % 2 ? -1.0f : 1.0f) * u[static_cast<size_t>(c)];
    }
  const std::vector<float> v0 = random_normal(kTokens * kDim, 22), v1 = random_normal(kTokens * kDim, 23);
  std::vector<float> out(static_cast<size_t>(kTokens * kDim));
  sparse.attend(0, call_at(0, true), queries.data(), keys.data(), v0.data(), out.data());
  sparse.attend(0, call_at(kFrames, false), queries.data(), keys.data(), v1.data(), out.data());

  LshParams lsh = annsa_lsh_params(options, kHd);
  const LshHasher hasher(lsh);
  std::vector<std::vector<uint32_t>> qc, kc;
  for (int64_t h = 0; h < kHeads; ++h) {
    qc.push_back(head_codes(hasher, queries, kTokens, h));
    kc.push_back(head_codes(hasher, keys, kTokens, h));
  }
  auto shares_bucket = [&](int64_t h, int64_t i, int64_t j) { return qc[h][i] == kc[h][j]; };
  for (int64_t h = 0; h < kHeads; ++h) ASSERT_NE(qc[h][1], kc[h][0]) << "the −u queries must have no key";
  const OracleAttentionResult expected = reference(queries, keys, v1, keys, v0, kTokens, shares_bucket, shares_bucket);
  // Every −u query of every head sees no key: the oracle's rows are exactly 0, and so must the policy's.
  EXPECT_EQ(expected.empty_rows(), kHeads * kTokens / 2);
  for (int64_t h = 0; h < kHeads; ++h) EXPECT_TRUE(expected.row_empty(h, 1));
  EXPECT_LE(attention_scaled_error(out.data(), expected, kF32RelTol, kF32AbsTol), 1.0);
  // Negative control: the comparison rejects a policy that leaves anything but 0 in such a row,
  // even a value far inside the tolerance.
  std::vector<float> nearly_zero = out;
  nearly_zero[static_cast<size_t>(1 * kDim)] = 1e-9f;
  EXPECT_GT(attention_scaled_error(nearly_zero.data(), expected, kF32RelTol, kF32AbsTol), 1.0);
}

TEST(AnnSaMemory, OneBucketIsDenseAndCommitsReachTheCache) {
  PromptBucketBoard board(1);  // prompt-anchored buckets with a single label: everything shares it
  std::vector<uint32_t> zeros(static_cast<size_t>(kTpf * kHeads), 0);
  AnnSaOptions options;
  options.buckets = AnnSaBuckets::prompt;
  options.own_keys = AnnSaOwnKeys::sparse;
  AnnSaMemory sparse(std::make_unique<WindowMemory>(1, kHeads, kHd, 3, 1), 1, kHeads, kHd, options, &board);
  WindowMemory dense(1, kHeads, kHd, 3, 1);
  std::vector<float> out_sparse(static_cast<size_t>(kTokens * kDim)), out_dense(out_sparse.size());
  for (int64_t chunk = 0; chunk < 4; ++chunk) {
    for (int64_t f = 0; f < kFrames; ++f) board.publish(0, chunk * kFrames + f, chunk * kFrames, kTpf, kHeads, zeros.data());
    const std::vector<float> q = random_normal(kTokens * kDim, 10 + chunk), k = random_normal(kTokens * kDim, 20 + chunk),
                             v = random_normal(kTokens * kDim, 30 + chunk);
    for (bool commit : {false, true}) {
      sparse.attend(0, call_at(chunk * kFrames, commit), q.data(), k.data(), v.data(), out_sparse.data());
      dense.attend(0, call_at(chunk * kFrames, commit), q.data(), k.data(), v.data(), out_dense.data());
      if (!commit) {
        const std::vector<double> expected(out_dense.begin(), out_dense.end());
        EXPECT_LE(max_scaled_error(out_sparse.data(), expected.data(), kTokens * kDim, 2 * kF32RelTol, 2 * kF32AbsTol), 1.0)
            << "chunk " << chunk;
      }
    }
    EXPECT_EQ(sparse.cached_frames(0), dense.cached_frames(0));  // the window evicted the same frames
  }
  EXPECT_EQ(sparse.stats().layer(0).density(), 1.0);
  // Without published labels for the call's frames, the call runs dense through the wrapped cache.
  const std::vector<float> q = random_normal(kTokens * kDim, 99);
  sparse.attend(0, call_at(100, false), q.data(), q.data(), q.data(), out_sparse.data());
  EXPECT_EQ(sparse.stats().layer(0).dense_calls, 1);
}

TEST(AnnSaMemory, OneBucketOverTempCacheEqualsTempCache) {
  // AnnSA over TempCache sees its representatives and their log-multiplicity bias: with a single
  // bucket it must reproduce TempCache's own (biased) attention, merges included (keys repeat
  // exactly across chunks, so groups form).
  PromptBucketBoard board(1);
  std::vector<uint32_t> zeros(static_cast<size_t>(kTpf * kHeads), 0);
  AnnSaOptions options;
  options.buckets = AnnSaBuckets::prompt;
  options.own_keys = AnnSaOwnKeys::sparse;
  TempCacheOptions tc;
  tc.threshold = 0.9f;
  AnnSaMemory sparse(std::make_unique<TempCacheMemory>(1, kHeads, kHd, tc), 1, kHeads, kHd, options, &board);
  TempCacheMemory plain(1, kHeads, kHd, tc);
  std::vector<float> out_sparse(static_cast<size_t>(kTokens * kDim)), out_plain(out_sparse.size());
  const std::vector<float> k = random_normal(kTokens * kDim, 21), v0 = random_normal(kTokens * kDim, 31);
  for (int64_t chunk = 0; chunk < 4; ++chunk) {
    for (int64_t f = 0; f < kFrames; ++f) board.publish(0, chunk * kFrames + f, chunk * kFrames, kTpf, kHeads, zeros.data());
    const std::vector<float> q = random_normal(kTokens * kDim, 10 + chunk), v = random_normal(kTokens * kDim, 30 + chunk);
    for (bool commit : {false, true}) {
      sparse.attend(0, call_at(chunk * kFrames, commit), q.data(), k.data(), v.data(), out_sparse.data());
      plain.attend(0, call_at(chunk * kFrames, commit), q.data(), k.data(), v.data(), out_plain.data());
      const std::vector<double> expected(out_plain.begin(), out_plain.end());
      EXPECT_LE(max_scaled_error(out_sparse.data(), expected.data(), kTokens * kDim, 2 * kF32RelTol, 2 * kF32AbsTol), 1.0)
          << "chunk " << chunk << (commit ? " (commit)" : "");
    }
  }
  const TempCacheStats stats = plain.stats();
  EXPECT_GT(stats.total.merges, 0);  // the same keys every chunk: groups formed
  EXPECT_LT(stats.total.density, 1.0);
}

TEST(AnnSaMemory, ScheduleDenseCallsAreUnchanged) {
  AnnSaOptions options;
  options.schedule.dense_above_timestep = 500.0;
  options.schedule.layers = {1};
  AnnSaMemory sparse(std::make_unique<DenseMemory>(2, kHeads, kHd), 2, kHeads, kHd, options, nullptr);
  DenseMemory dense(2, kHeads, kHd);
  const std::vector<float> q = random_normal(kTokens * kDim, 41), k = random_normal(kTokens * kDim, 42),
                           v = random_normal(kTokens * kDim, 43);
  const std::vector<float> early(kFrames, 800.0f), late(kFrames, 250.0f);
  std::vector<float> a(static_cast<size_t>(kTokens * kDim)), b(a.size());
  for (int64_t layer : {0, 1}) {
    sparse.attend(layer, call_at(0, true, early.data()), q.data(), k.data(), v.data(), a.data());
    dense.attend(layer, call_at(0, true, early.data()), q.data(), k.data(), v.data(), b.data());
    EXPECT_EQ(a, b);
  }
  sparse.attend(0, call_at(kFrames, false, late.data()), q.data(), k.data(), v.data(), a.data());  // layer 0: not chosen
  dense.attend(0, call_at(kFrames, false, late.data()), q.data(), k.data(), v.data(), b.data());
  EXPECT_EQ(a, b);
  sparse.attend(1, call_at(kFrames, false, late.data()), q.data(), k.data(), v.data(), a.data());
  EXPECT_EQ(sparse.stats().layer(1).sparse_calls, 1);
  EXPECT_EQ(sparse.stats().layer(0).sparse_calls, 0);
}

TEST(AnnSaMemory, RefusesACacheThatHidesItsKeys) {
  struct Opaque : CrossFrameMemory {
    void attend(int64_t, const MemoryCall&, const float*, const float*, const float*, float*) override {}
    int64_t cached_frames(int64_t) const override { return 0; }
    int64_t bytes() const override { return 0; }
    std::string describe() const override { return "opaque"; }
  };
  EXPECT_THROW(AnnSaMemory(std::make_unique<Opaque>(), 1, kHeads, kHd, AnnSaOptions{}, nullptr), Error);
  AnnSaOptions prompt;
  prompt.buckets = AnnSaBuckets::prompt;
  EXPECT_THROW(AnnSaMemory(std::make_unique<DenseMemory>(1, kHeads, kHd), 1, kHeads, kHd, prompt, nullptr), Error);
}

// Seeded clustered data (8 semantic clusters, as papers.md §1.2 describes Q and K): recall and
// density of the LSH buckets (reading B), checked against a brute-force double computation of the
// same bucket pattern, and stated figures.
TEST(AnnSaMemory, RecallAndDensityOnClusteredData) {
  const int64_t hd = 32, tpf = 128, frames = 2, n = tpf * frames, clusters = 8;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> centroids(static_cast<size_t>(clusters * hd));
  for (auto& c : centroids) c = normal(rng);
  for (int64_t c = 0; c < clusters; ++c) {  // scale each centroid to norm 7
    double norm = 0;
    for (int64_t i = 0; i < hd; ++i) norm += centroids[c * hd + i] * centroids[c * hd + i];
    for (int64_t i = 0; i < hd; ++i) centroids[c * hd + i] *= static_cast<float>(7.0 / std::sqrt(norm));
  }
  auto sample = [&](int64_t rows) {
    std::vector<float> x(static_cast<size_t>(rows * hd));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t c = static_cast<int64_t>(rng() % clusters);
      for (int64_t i = 0; i < hd; ++i) x[static_cast<size_t>(r * hd + i)] = centroids[c * hd + i] + 0.3f * normal(rng);
    }
    return x;
  };
  AnnSaOptions options;
  options.bits = 2;
  options.own_keys = AnnSaOwnKeys::sparse;
  options.block_q = options.block_k = 1;
  options.diagnostics = true;
  AnnSaMemory memory(std::make_unique<DenseMemory>(1, 1, hd), 1, 1, hd, options, nullptr);
  MemoryCall call;
  call.num_frames = frames;
  call.tokens_per_frame = tpf;
  std::vector<float> out(static_cast<size_t>(n * hd));
  const std::vector<float> q0 = sample(n), k0 = sample(n), v0 = random_normal(n * hd, 8);
  call.commit = true;
  memory.attend(0, call, q0.data(), k0.data(), v0.data(), out.data());
  const std::vector<float> q1 = sample(n), k1 = sample(n), v1 = random_normal(n * hd, 9);
  call.frame_start = frames;
  call.commit = false;
  memory.attend(0, call, q1.data(), k1.data(), v1.data(), out.data());

  // Brute force of the second call: keys = [k0; k1], mask = equal LSH code.
  LshParams lsh;
  lsh.dim = hd;
  lsh.tables = 1;
  lsh.bits = options.bits;
  lsh.seed = options.seed;
  const LshHasher hasher(lsh);
  std::vector<float> keys(k0);
  keys.insert(keys.end(), k1.begin(), k1.end());
  std::vector<uint32_t> qc(static_cast<size_t>(n)), kc(static_cast<size_t>(2 * n));
  hasher.hash(q1.data(), n, hd, qc.data());
  hasher.hash(keys.data(), 2 * n, hd, kc.data());
  // Recall = the dense softmax mass on the bucket's keys = exp(lse(bucket mask) − lse(all keys)).
  std::vector<float> values(v0);
  values.insert(values.end(), v1.begin(), v1.end());
  OracleAttentionArgs a;
  a.q = OracleOperand::packed(q1.data(), 1, hd);
  a.k = OracleOperand::packed(keys.data(), 1, hd);
  a.v = OracleOperand::packed(values.data(), 1, hd);
  a.heads = 1, a.head_dim = hd, a.q_len = n, a.kv_len = 2 * n;
  a.scale = 1.0 / std::sqrt(double(hd));
  const OracleAttentionResult all_keys = attention_oracle(a);
  a.mask = [&](int64_t, int64_t i, int64_t j) { return qc[static_cast<size_t>(i)] == kc[static_cast<size_t>(j)]; };
  const OracleAttentionResult bucket = attention_oracle(a);
  double kept = 0;
  for (int64_t i = 0; i < n; ++i)
    kept += std::exp(bucket.lse[static_cast<size_t>(i)] - all_keys.lse[static_cast<size_t>(i)]);  // 0 for an empty row
  const double pairs = static_cast<double>(bucket.visible_pairs());
  EXPECT_LE(attention_scaled_error(out.data(), bucket, kF32RelTol, kF32AbsTol), 1.0);  // the call's output too
  const double recall = kept / n, density = pairs / (double(n) * 2 * n);
  // The policy's own statistics of the second call: its totals minus a replay of the first call.
  const SparseStats::Layer& s = memory.stats().layer(0);
  AnnSaMemory replay(std::make_unique<DenseMemory>(1, 1, hd), 1, 1, hd, options, nullptr);
  call.frame_start = 0;
  call.commit = true;
  replay.attend(0, call, q0.data(), k0.data(), v0.data(), out.data());
  const SparseStats::Layer first = replay.stats().layer(0);
  const double stats_recall = (s.kept_mass - first.kept_mass) / n;
  const double stats_density = (s.executed - first.executed) / (s.dense - first.dense);
  EXPECT_NEAR(stats_recall, recall, 1e-4);
  EXPECT_NEAR(stats_density, density, 1e-12);
  // Stated figures (seed 7, 8 clusters, centroid norm 7, noise 0.3 per coordinate; measured
  // recall 0.732, density 0.355): 4 LSH buckets of q and k in a shared space (reading B).
  EXPECT_GE(recall, 0.70);
  EXPECT_LE(density, 0.40);
  std::printf("clustered data, 4 LSH buckets: recall %.4f density %.4f\n", recall, density);
}

TEST(SparseSchedule, DensePhaseAndLayerList) {
  const std::vector<float> steps = {1000.0f, 937.5f, 833.3f, 625.0f};
  const double threshold = dense_phase_threshold(steps, 0.3);  // steps 0 and 1 (i < 1.2) dense
  SparseSchedule schedule;
  schedule.dense_above_timestep = threshold;
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(schedule.frame_is_sparse(&steps[i], 0), i >= 2) << i;
  const float clean = 0.0f;
  EXPECT_TRUE(schedule.frame_is_sparse(&clean, 0));
  EXPECT_FALSE(schedule.frame_is_sparse(nullptr, 0));  // unknown timestep during a dense phase
  EXPECT_FALSE(schedule.frames_are_sparse(steps.data() + 1, 2));
  EXPECT_EQ(dense_phase_threshold(steps, 0.0), std::numeric_limits<double>::infinity());
  EXPECT_EQ(dense_phase_threshold(steps, 1.0), -std::numeric_limits<double>::infinity());
  EXPECT_THROW(dense_phase_threshold(steps, 1.5), Error);
  EXPECT_THROW(dense_phase_threshold({1.0f, 2.0f}, 0.3), Error);
  EXPECT_EQ(parse_layer_list("3,0-2,2", 30, "--ann-layers"), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_TRUE(parse_layer_list("all", 30, "--ann-layers").empty());
  EXPECT_THROW(parse_layer_list("30", 30, "--ann-layers"), Error);
  EXPECT_THROW(parse_layer_list("2-x", 30, "--ann-layers"), Error);
  schedule.layers = {1, 5};
  EXPECT_TRUE(schedule.layer_is_sparse(5));
  EXPECT_FALSE(schedule.layer_is_sparse(2));
}

}  // namespace
}  // namespace fastar
