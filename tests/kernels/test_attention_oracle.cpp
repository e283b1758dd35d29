// The suite's attention oracle and its comparison (tests/reference/attention_oracle.h) against
// values computed by hand, its empty-row rule (exact zeros, lse −inf, never NaN), the block-sparse
// selection against the same mask written as a predicate, and the comparison rejecting anything
// but an exact zero in an empty row.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "fastar/core/error.h"
#include "reference/attention_oracle.h"
#include "test_util.h"

namespace fastar {
namespace {

using testing::attention_lse_scaled_error;
using testing::attention_oracle;
using testing::attention_scaled_error;
using testing::OracleAttentionArgs;
using testing::OracleAttentionResult;
using testing::OracleOperand;

// One head, head_dim 2, two queries and two keys with a closed-form answer.
struct HandCase {
  std::vector<float> q = {1, 0, 0, 3}, k = {1, 0, 0, 1}, v = {1, 0, 0, 2};
  OracleAttentionArgs args() const {
    OracleAttentionArgs a;
    a.q = OracleOperand::packed(q.data(), 1, 2);
    a.k = OracleOperand::packed(k.data(), 1, 2);
    a.v = OracleOperand::packed(v.data(), 1, 2);
    a.heads = 1, a.head_dim = 2, a.q_len = 2, a.kv_len = 2;
    a.scale = 1.0;
    return a;
  }
};

TEST(AttentionOracle, MatchesAHandComputation) {
  const HandCase c;
  const double e = std::exp(1.0);
  // Query 0 = (1, 0): logits (1, 0); query 1 = (0, 3): logits (0, 3).
  OracleAttentionResult r = attention_oracle(c.args());
  EXPECT_NEAR(r.o[0], e / (e + 1), 1e-15);
  EXPECT_NEAR(r.o[1], 2 / (e + 1), 1e-15);
  EXPECT_NEAR(r.lse[0], std::log(e + 1), 1e-15);
  const double e3 = std::exp(3.0);
  EXPECT_NEAR(r.o[2], 1 / (1 + e3), 1e-15);
  EXPECT_NEAR(r.o[3], 2 * e3 / (1 + e3), 1e-15);
  EXPECT_NEAR(r.lse[1], std::log(1 + e3), 1e-15);
  EXPECT_EQ(r.empty_rows(), 0);
  EXPECT_EQ(r.visible_pairs(), 4);

  // A bias of +1 on key 1 evens query 0's logits: o = mean of the values, lse = 1 + log 2.
  OracleAttentionArgs biased = c.args();
  biased.bias = [](int64_t, int64_t, int64_t j) { return j == 1 ? 1.0 : 0.0; };
  r = attention_oracle(biased);
  EXPECT_NEAR(r.o[0], 0.5, 1e-15);
  EXPECT_NEAR(r.o[1], 1.0, 1e-15);
  EXPECT_NEAR(r.lse[0], 1.0 + std::log(2.0), 1e-15);

  // Masking key 0 from query 0: o = v1 exactly, lse = the one logit.
  OracleAttentionArgs masked = c.args();
  masked.mask = [](int64_t, int64_t i, int64_t j) { return !(i == 0 && j == 0); };
  r = attention_oracle(masked);
  EXPECT_EQ(r.o[0], 0.0);
  EXPECT_EQ(r.o[1], 2.0);
  EXPECT_EQ(r.lse[0], 0.0);
  EXPECT_EQ(r.visible_keys[0], 1);
}

TEST(AttentionOracle, EmptyRowsAreExactZerosWithLseMinusInfinity) {
  const HandCase c;
  OracleAttentionArgs a = c.args();
  a.mask = [](int64_t, int64_t i, int64_t) { return i == 0; };  // query 1 sees no key
  const OracleAttentionResult r = attention_oracle(a);
  EXPECT_EQ(r.empty_rows(), 1);
  EXPECT_TRUE(r.row_empty(0, 1));
  EXPECT_EQ(r.o[2], 0.0);
  EXPECT_EQ(r.o[3], 0.0);
  EXPECT_TRUE(std::isinf(r.lse[1]) && r.lse[1] < 0);
  for (const double x : r.o) EXPECT_TRUE(std::isfinite(x));

  // The comparison checks the empty row against exact zeros: 0 passes, anything else fails even
  // when it is far inside the tolerance.
  std::vector<float> out = {static_cast<float>(r.o[0]), static_cast<float>(r.o[1]), 0.0f, 0.0f};
  EXPECT_LE(attention_scaled_error(out.data(), r, 1e-5, 1e-5), 1.0);
  out[3] = 1e-30f;
  EXPECT_EQ(attention_scaled_error(out.data(), r, 1e-5, 1e-5), INFINITY);
  out[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(attention_scaled_error(out.data(), r, 1e-5, 1e-5), INFINITY);
  out[3] = 0.0f;
  out[0] = std::numeric_limits<float>::quiet_NaN();  // a NaN in a row with keys fails as well
  EXPECT_EQ(attention_scaled_error(out.data(), r, 1e-5, 1e-5), INFINITY);

  // lse: −inf where the row is empty, finite and close elsewhere.
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> lse = {static_cast<float>(r.lse[0]), -inf};
  EXPECT_LE(attention_lse_scaled_error(lse.data(), r, 1e-5, 1e-5), 1.0);
  lse[1] = -1e30f;
  EXPECT_EQ(attention_lse_scaled_error(lse.data(), r, 1e-5, 1e-5), INFINITY);
  lse[1] = -inf;
  lse[0] = -inf;
  EXPECT_EQ(attention_lse_scaled_error(lse.data(), r, 1e-5, 1e-5), INFINITY);
}

TEST(AttentionOracle, BlockSparseSelectionEqualsTheSameMaskAsAPredicate) {
  const int64_t heads = 2, hd = 8, q_len = 37, kv_len = 45, block_q = 16, block_k = 8;
  const std::vector<float> q = testing::random_normal(q_len * heads * hd, 1),
                           k = testing::random_normal(kv_len * heads * hd, 2),
                           v = testing::random_normal(kv_len * heads * hd, 3);
  // Query block 0: key blocks {5, 0}; block 1: none; block 2: {2, 3, 4}.
  const std::vector<int32_t> offsets = {0, 2, 2, 5}, index = {5, 0, 2, 3, 4};
  auto listed = [](int64_t qb, int64_t kb) {
    return qb == 0 ? (kb == 5 || kb == 0) : qb == 2 ? (kb >= 2 && kb <= 4) : false;
  };
  OracleAttentionArgs sparse;
  sparse.q = OracleOperand::packed(q.data(), heads, hd);
  sparse.k = OracleOperand::packed(k.data(), heads, hd);
  sparse.v = OracleOperand::packed(v.data(), heads, hd);
  sparse.heads = heads, sparse.head_dim = hd, sparse.q_len = q_len, sparse.kv_len = kv_len;
  sparse.scale = 1.0 / std::sqrt(double(hd));
  OracleAttentionArgs predicate = sparse;
  sparse.block_sparse = {offsets.data(), index.data(), block_q, block_k};
  predicate.mask = [&](int64_t, int64_t i, int64_t j) { return listed(i / block_q, j / block_k); };
  const OracleAttentionResult a = attention_oracle(sparse), b = attention_oracle(predicate);
  EXPECT_EQ(a.o, b.o);
  EXPECT_EQ(a.lse, b.lse);
  EXPECT_EQ(a.visible_keys, b.visible_keys);
  EXPECT_EQ(a.empty_rows(), heads * block_q);  // query block 1
  // Key block 5 is the partial last block (keys 40..44).
  EXPECT_EQ(a.visible_keys[0], 8 + 5);

  // Selection and mask combine (both must allow a key).
  sparse.mask = [](int64_t h, int64_t, int64_t j) { return h == 0 || j % 2 == 0; };
  const OracleAttentionResult both = attention_oracle(sparse);
  EXPECT_EQ(both.visible_keys[0], 13);
  EXPECT_EQ(both.visible_keys[static_cast<size_t>(q_len)], 4 + 3);  // head 1, query 0: even keys of blocks 0 and 5
}

TEST(AttentionOracle, FloatAndDoubleOperandsAndStridesAgree) {
  const int64_t heads = 3, hd = 4, q_len = 5, kv_len = 6;
  const std::vector<float> q = testing::random_normal(q_len * heads * hd, 7),
                           k = testing::random_normal(kv_len * heads * hd, 8),
                           v = testing::random_normal(kv_len * heads * hd, 9);
  OracleAttentionArgs packed;
  packed.q = OracleOperand::packed(q.data(), heads, hd);
  packed.k = OracleOperand::packed(k.data(), heads, hd);
  packed.v = OracleOperand::packed(v.data(), heads, hd);
  packed.heads = heads, packed.head_dim = hd, packed.q_len = q_len, packed.kv_len = kv_len;
  packed.scale = 0.7;
  // The same q as doubles in a head-major layout [heads, q_len, hd + 1].
  std::vector<double> q_head_major(static_cast<size_t>(heads * q_len * (hd + 1)), std::nan(""));
  for (int64_t i = 0; i < q_len; ++i)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t d = 0; d < hd; ++d)
        q_head_major[static_cast<size_t>(h * q_len * (hd + 1) + i * (hd + 1) + d)] =
            q[static_cast<size_t>((i * heads + h) * hd + d)];
  OracleAttentionArgs strided = packed;
  strided.q = OracleOperand(q_head_major.data(), hd + 1, q_len * (hd + 1));
  const OracleAttentionResult a = attention_oracle(packed), b = attention_oracle(strided);
  EXPECT_EQ(a.o, b.o);
  EXPECT_EQ(a.lse, b.lse);
  // Negative control: another scale gives another result.
  strided.scale = 0.8;
  EXPECT_NE(attention_oracle(strided).o, a.o);
}

TEST(AttentionOracle, InconsistentArgumentsAreErrors) {
  const HandCase c;
  OracleAttentionArgs a = c.args();
  a.scale = 0.0;
  EXPECT_THROW(attention_oracle(a), Error);
  a = c.args();
  a.bias = [](int64_t, int64_t, int64_t j) { return j == 1 ? -INFINITY : 0.0; };  // mask instead
  EXPECT_THROW(attention_oracle(a), Error);
  a = c.args();
  const std::vector<int32_t> offsets = {0, 1}, index = {1};  // key block 1 of one (block_k 2)
  a.block_sparse = {offsets.data(), index.data(), 2, 2};
  EXPECT_THROW(attention_oracle(a), Error);
  a = c.args();
  a.v = OracleOperand();
  EXPECT_THROW(attention_oracle(a), Error);
}

}  // namespace
}  // namespace fastar
