// AnnCA (attention/ann_cross_attention.h): the kept-token tests against brute force (LSH bucket
// sharing, int8 top-k), the whole policy against the suite's attention oracle (tests/reference/)
// over the brute-force kept set, padding never kept, dense cases, the per-prompt code cache and the labels it publishes for AnnSA.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "fastar/attention/ann_cross_attention.h"
#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"
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

constexpr int64_t kHeads = 2, kHd = 16, kDim = kHeads * kHd, kTpf = 30, kFrames = 2, kRows = 40, kValid = 32;

TEST(AnnCaKeep, LshMatchesBruteForceBucketCheck) {
  std::mt19937_64 rng(3);
  const int tables = 3, bits = 4;
  const int64_t q_rows = 9, k_rows = 60;
  std::vector<uint32_t> qc(static_cast<size_t>(q_rows * tables)), kc(static_cast<size_t>(k_rows * tables));
  for (auto& c : qc) c = static_cast<uint32_t>(rng() % 16);
  for (auto& c : kc) c = static_cast<uint32_t>(rng() % 16);
  std::vector<uint8_t> kept;
  annca_keep_lsh(qc.data(), q_rows, kc.data(), k_rows, tables, bits, &kept);
  int64_t count = 0;
  for (int64_t p = 0; p < k_rows; ++p) {
    bool shares = false;
    for (int64_t i = 0; i < q_rows; ++i)
      for (int t = 0; t < tables; ++t) shares |= qc[static_cast<size_t>(i * tables + t)] == kc[static_cast<size_t>(p * tables + t)];
    EXPECT_EQ(kept[static_cast<size_t>(p)] != 0, shares) << "token " << p;
    count += shares;
  }
  EXPECT_GT(count, 0);
  EXPECT_LT(count, k_rows);  // the case is not trivially all/none
}

TEST(AnnCaKeep, QuantMatchesBruteForceTopK) {
  const int64_t q_rows = 12, k_rows = 50, dim = 24;
  const std::vector<float> q = random_normal(q_rows * dim, 5), k = random_normal(k_rows * dim, 6);
  Int8Rows q8, k8;
  quantize_rows_int8(q.data(), q_rows, dim, dim, &q8);
  quantize_rows_int8(k.data(), k_rows, dim, dim, &k8);
  for (int top_k : {1, 3}) {
    std::vector<uint8_t> kept;
    std::vector<int32_t> top1(static_cast<size_t>(q_rows));
    annca_keep_quant(q8, k8, top_k, &kept, top1.data());
    std::vector<uint8_t> expected(static_cast<size_t>(k_rows), 0);
    for (int64_t i = 0; i < q_rows; ++i) {
      std::vector<std::pair<double, int64_t>> scored;
      for (int64_t p = 0; p < k_rows; ++p) {
        double dot = 0;
        for (int64_t c = 0; c < dim; ++c)
          dot += double{q8.codes[static_cast<size_t>(i * dim + c)]} * q8.scale[static_cast<size_t>(i)] *
                 k8.codes[static_cast<size_t>(p * dim + c)] * k8.scale[static_cast<size_t>(p)];
        scored.push_back({-dot, p});
      }
      std::sort(scored.begin(), scored.end());
      for (int j = 0; j < top_k; ++j) expected[static_cast<size_t>(scored[static_cast<size_t>(j)].second)] = 1;
      EXPECT_EQ(top1[static_cast<size_t>(i)], scored[0].second);
    }
    EXPECT_EQ(kept, expected) << "top-" << top_k;
  }
}

struct Prompt {
  std::vector<float> k, v;
};

// Prompt keys whose padding rows align with the queries (dense attention would favour them).
Prompt make_prompt(uint64_t seed, const std::vector<float>& q) {
  Prompt p{random_normal(kRows * kDim, seed), random_normal(kRows * kDim, seed + 1)};
  for (int64_t r = kValid; r < kRows; ++r)
    for (int64_t c = 0; c < kDim; ++c) p.k[static_cast<size_t>(r * kDim + c)] = 3.0f * q[static_cast<size_t>(c)];
  return p;
}

CrossAttentionCall make_call(uint64_t prompt_id, int64_t valid = kValid, const float* timesteps = nullptr) {
  CrossAttentionCall c;
  c.layer = 0;
  c.frame_start = 4;
  c.num_frames = kFrames;
  c.tokens_per_frame = kTpf;
  c.timesteps = timesteps;
  c.heads = kHeads;
  c.head_dim = kHd;
  c.prompt_id = prompt_id;
  c.prompt_rows = kRows;
  c.prompt_valid_rows = valid;
  return c;
}

// The suite's attention oracle: each frame's queries (head h) over the prompt rows `keep(f, h)` says.
template <typename Keep>
OracleAttentionResult reference(const std::vector<float>& q, const Prompt& p, Keep keep) {
  std::vector<std::vector<uint8_t>> kept(static_cast<size_t>(kFrames * kHeads));  // [frame][head] → [row]
  for (int64_t f = 0; f < kFrames; ++f)
    for (int64_t h = 0; h < kHeads; ++h) kept[static_cast<size_t>(f * kHeads + h)] = keep(f, h);
  OracleAttentionArgs a;
  a.q = OracleOperand::packed(q.data(), kHeads, kHd);
  a.k = OracleOperand::packed(p.k.data(), kHeads, kHd);
  a.v = OracleOperand::packed(p.v.data(), kHeads, kHd);
  a.heads = kHeads, a.head_dim = kHd, a.q_len = kFrames * kTpf, a.kv_len = kRows;
  a.scale = 1.0 / std::sqrt(double(kHd));
  a.mask = [&](int64_t h, int64_t i, int64_t r) {
    return kept[static_cast<size_t>((i / kTpf) * kHeads + h)][static_cast<size_t>(r)] != 0;
  };
  return attention_oracle(a);
}

// Brute-force LSH kept set: some query of the frame and the token agree in some table.
std::vector<uint8_t> lsh_kept(const LshHasher& hasher, const std::vector<float>& q, const std::vector<float>& k, int64_t f,
                              int64_t h) {
  const int tables = hasher.tables();
  std::vector<uint32_t> qc(static_cast<size_t>(kTpf * tables)), kc(static_cast<size_t>(kRows * tables));
  hasher.hash(q.data() + f * kTpf * kDim + h * kHd, kTpf, kDim, qc.data());
  hasher.hash(k.data() + h * kHd, kRows, kDim, kc.data());
  std::vector<uint8_t> kept(static_cast<size_t>(kRows), 0);
  for (int64_t r = 0; r < kValid; ++r)
    for (int64_t i = 0; i < kTpf; ++i)
      for (int t = 0; t < tables; ++t)
        if (qc[static_cast<size_t>(i * tables + t)] == kc[static_cast<size_t>(r * tables + t)]) kept[static_cast<size_t>(r)] = 1;
  return kept;
}

TEST(AnnCrossAttention, LshMatchesBruteForceAndNeverKeepsPadding) {
  const std::vector<float> q = random_normal(kFrames * kTpf * kDim, 1);
  const Prompt p = make_prompt(2, q);
  AnnCaOptions options;
  options.tables = 2;
  options.bits = 6;
  options.diagnostics = true;
  PromptBucketBoard board;
  AnnCrossAttention annca(1, kHeads, kHd, options, &board);
  std::vector<float> out(q.size());
  annca.attend(make_call(7), q.data(), p.k.data(), p.v.data(), out.data());

  LshParams lsh;
  lsh.dim = kHd;
  lsh.tables = options.tables;
  lsh.bits = options.bits;
  lsh.seed = options.seed;
  const LshHasher hasher(lsh);
  int64_t kept_total = 0;
  const OracleAttentionResult expected = reference(q, p, [&](int64_t f, int64_t h) {
    std::vector<uint8_t> kept = lsh_kept(hasher, q, p.k, f, h);
    kept_total += std::accumulate(kept.begin(), kept.end(), int64_t{0});
    return kept;
  });
  EXPECT_GT(kept_total, 0);
  EXPECT_LT(kept_total, kFrames * kHeads * kValid);
  EXPECT_LE(attention_scaled_error(out.data(), expected, kF32RelTol, kF32AbsTol), 1.0);
  const SparseStats::Layer& s = annca.stats().layer(0);
  EXPECT_NEAR(s.density(), double(kept_total) * kTpf / (double(kFrames) * kHeads * kTpf * kRows), 1e-12);
  EXPECT_GT(s.recall(), 0.0);
  EXPECT_LT(s.recall(), 1.0);  // the padding rows hold mass dense attention gives them

  // Labels for AnnSA: the low label_bits bits of each query's table-0 code.
  for (int64_t f = 0; f < kFrames; ++f) {
    const uint32_t* labels = board.frame_labels(0, 4 + f, kTpf, kHeads);
    ASSERT_NE(labels, nullptr);
    for (int64_t h = 0; h < kHeads; ++h) {
      std::vector<uint32_t> qc(static_cast<size_t>(kTpf * options.tables));
      hasher.hash(q.data() + f * kTpf * kDim + h * kHd, kTpf, kDim, qc.data());
      for (int64_t t = 0; t < kTpf; ++t)
        EXPECT_EQ(labels[t * kHeads + h], qc[static_cast<size_t>(t * options.tables)] & 3u);
    }
  }
  EXPECT_EQ(board.num_labels(), 4u);
}

TEST(AnnCrossAttention, IdenticalPaddingEntersAsOneBiasedKeyExactly) {
  // Zero context rows give identical padding keys/values: the sink (one key, bias log(count)) must
  // reproduce dense attention over every padding row exactly; "drop" leaves them out.
  const std::vector<float> q = random_normal(kFrames * kTpf * kDim, 41);
  Prompt p = make_prompt(42, q);
  for (int64_t r = kValid + 1; r < kRows; ++r)
    for (int64_t c = 0; c < kDim; ++c) p.v[static_cast<size_t>(r * kDim + c)] = p.v[static_cast<size_t>(kValid * kDim + c)];
  LshParams lsh;
  lsh.dim = kHd;
  lsh.tables = 2;
  lsh.bits = 6;
  lsh.seed = AnnCaOptions{}.seed;
  const LshHasher hasher(lsh);
  for (bool sink : {true, false}) {
    AnnCaOptions options;
    options.tables = lsh.tables;
    options.bits = lsh.bits;
    options.padding_sink = sink;
    AnnCrossAttention annca(1, kHeads, kHd, options, nullptr);
    std::vector<float> out(q.size());
    annca.attend(make_call(9), q.data(), p.k.data(), p.v.data(), out.data());
    const OracleAttentionResult expected = reference(q, p, [&](int64_t f, int64_t h) {
      std::vector<uint8_t> kept = lsh_kept(hasher, q, p.k, f, h);
      for (int64_t r = kValid; r < kRows && sink; ++r) kept[static_cast<size_t>(r)] = 1;
      return kept;
    });
    EXPECT_LE(attention_scaled_error(out.data(), expected, kF32RelTol, kF32AbsTol), 1.0)
        << (sink ? "sink" : "drop");
  }
}

TEST(AnnCrossAttention, QuantKeepsTopKNeighbours) {
  const std::vector<float> q = random_normal(kFrames * kTpf * kDim, 11);
  const Prompt p = make_prompt(12, q);
  AnnCaOptions options;
  options.search = AnnSearch::quant;
  options.top_k = 2;
  AnnCrossAttention annca(1, kHeads, kHd, options, nullptr);
  std::vector<float> out(q.size());
  annca.attend(make_call(8), q.data(), p.k.data(), p.v.data(), out.data());
  const OracleAttentionResult expected = reference(q, p, [&](int64_t f, int64_t h) {
    Int8Rows q8, k8;
    quantize_rows_int8(q.data() + f * kTpf * kDim + h * kHd, kTpf, kDim, kHd, &q8);
    quantize_rows_int8(p.k.data() + h * kHd, kValid, kDim, kHd, &k8);
    std::vector<uint8_t> kept(static_cast<size_t>(kRows), 0);
    for (int64_t i = 0; i < kTpf; ++i) {
      std::vector<std::pair<double, int64_t>> scored;
      for (int64_t r = 0; r < kValid; ++r) {
        double dot = 0;
        for (int64_t c = 0; c < kHd; ++c)
          dot += double{q8.codes[static_cast<size_t>(i * kHd + c)]} * k8.codes[static_cast<size_t>(r * kHd + c)];
        scored.push_back({-dot * q8.scale[static_cast<size_t>(i)] * k8.scale[static_cast<size_t>(r)], r});
      }
      std::sort(scored.begin(), scored.end());
      kept[static_cast<size_t>(scored[0].second)] = kept[static_cast<size_t>(scored[1].second)] = 1;
    }
    return kept;
  });
  EXPECT_LE(attention_scaled_error(out.data(), expected, kF32RelTol, kF32AbsTol), 1.0);
  EXPECT_LT(annca.stats().layer(0).density(), 1.0);
}

TEST(AnnCrossAttention, DenseCases) {
  const std::vector<float> q = random_normal(kFrames * kTpf * kDim, 21);
  const Prompt p = make_prompt(22, q);
  std::vector<float> dense(q.size()), out(q.size());
  cpu::attention_forward(packed_attention_params(q.data(), p.k.data(), p.v.data(), dense.data(), kFrames * kTpf, kRows,
                                                 kHeads, kHd));
  const std::vector<double> expected(dense.begin(), dense.end());
  // Every token in a bucket some query occupies (1 table, 1 bit, 30 queries), no padding: dense.
  {
    AnnCaOptions options;
    options.tables = 1;
    options.bits = 1;
    options.label_bits = 1;
    AnnCrossAttention annca(1, kHeads, kHd, options, nullptr);
    annca.attend(make_call(1, kRows), q.data(), p.k.data(), p.v.data(), out.data());
    ASSERT_EQ(annca.stats().layer(0).density(), 1.0) << "the seeded case no longer fills both buckets";
    EXPECT_LE(max_scaled_error(out.data(), expected.data(), static_cast<int64_t>(out.size()), 2 * kF32RelTol, 2 * kF32AbsTol), 1.0);
  }
  // A layer the schedule leaves dense, a frame in the dense phase, a prompt with no real rows: dense
  // attention frame by frame (the CPU kernel's GEMM tiles differ from one call over all frames, so
  // equal to fp32 rounding, not bitwise).
  AnnCaOptions options;
  options.schedule.layers = {3};
  AnnCrossAttention other_layer(4, kHeads, kHd, options, nullptr);
  other_layer.attend(make_call(1), q.data(), p.k.data(), p.v.data(), out.data());
  EXPECT_LE(max_scaled_error(out.data(), expected.data(), static_cast<int64_t>(out.size()), kF32RelTol, kF32AbsTol), 1.0);
  options.schedule.layers.clear();
  options.schedule.dense_above_timestep = 500;
  const std::vector<float> early(kFrames, 900.0f);
  AnnCrossAttention early_step(1, kHeads, kHd, options, nullptr);
  early_step.attend(make_call(1, kValid, early.data()), q.data(), p.k.data(), p.v.data(), out.data());
  EXPECT_LE(max_scaled_error(out.data(), expected.data(), static_cast<int64_t>(out.size()), kF32RelTol, kF32AbsTol), 1.0);
  AnnCrossAttention empty_prompt(1, kHeads, kHd, AnnCaOptions{}, nullptr);
  empty_prompt.attend(make_call(1, 0), q.data(), p.k.data(), p.v.data(), out.data());
  EXPECT_LE(max_scaled_error(out.data(), expected.data(), static_cast<int64_t>(out.size()), kF32RelTol, kF32AbsTol), 1.0);
  EXPECT_THROW(AnnCrossAttention(1, kHeads, kHd, AnnCaOptions{.search = AnnSearch::lsh, .tables = 0}, nullptr), Error);
}

TEST(AnnCrossAttention, PromptCodesAreCachedPerPrompt) {
  const std::vector<float> q = random_normal(kFrames * kTpf * kDim, 31);
  const Prompt a = make_prompt(32, q), b = make_prompt(34, q);
  AnnCaOptions options;
  options.bits = 4;
  AnnCrossAttention annca(1, kHeads, kHd, options, nullptr), fresh(1, kHeads, kHd, options, nullptr);
  std::vector<float> out(q.size()), out_fresh(q.size());
  annca.attend(make_call(100), q.data(), a.k.data(), a.v.data(), out.data());
  // A new prompt id recomputes the codes: same result as a policy that never saw prompt a.
  annca.attend(make_call(101), q.data(), b.k.data(), b.v.data(), out.data());
  fresh.attend(make_call(101), q.data(), b.k.data(), b.v.data(), out_fresh.data());
  EXPECT_EQ(out, out_fresh);
  // The same id reuses the cached codes even if the rows were (wrongly) changed: the kept set is
  // still prompt b's.
  AnnCrossAttention cached(1, kHeads, kHd, options, nullptr);
  cached.attend(make_call(102), q.data(), b.k.data(), b.v.data(), out.data());
  cached.attend(make_call(102), q.data(), a.k.data(), a.v.data(), out.data());
  LshParams lsh{kHd, options.tables, options.bits, options.seed};
  const LshHasher hasher(lsh);
  const OracleAttentionResult expected = reference(q, a, [&](int64_t f, int64_t h) { return lsh_kept(hasher, q, b.k, f, h); });
  EXPECT_LE(attention_scaled_error(out.data(), expected, kF32RelTol, kF32AbsTol), 1.0);
}

}  // namespace
}  // namespace fastar
