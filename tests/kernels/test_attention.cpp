// cpu::attention_forward (kernels/cpu/attention.h) against the suite's double-precision attention
// oracle (tests/reference/attention_oracle.h), for the dense kernel and every variant (key_bias,
// block-sparse CSR masks, block-causal as the oracle's mask), with arbitrary strides and the lse
// output; rows a mask leaves empty must be exactly 0 (lse −inf). Each comparison is paired with a
// check that a perturbed input moves the reference beyond tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastar/kernels/cpu/attention.h"
#include "reference/attention_oracle.h"
#include "test_util.h"

namespace fastar {
namespace {

using testing::attention_lse_scaled_error;
using testing::attention_oracle;
using testing::attention_scaled_error;
using testing::kF32AbsTol;
using testing::kF32RelTol;
using testing::max_scaled_error;
using testing::OracleAttentionArgs;
using testing::OracleAttentionResult;
using testing::OracleOperand;
using testing::OracleVisibility;
using testing::random_normal;

// fp32 attention against a double loop: o is a convex combination of values of size ~1, so an
// absolute + relative fp32 tolerance applies; lse is a log of a sum (magnitude up to ~10).
constexpr double kAttnRelTol = kF32RelTol;
constexpr double kAttnAbsTol = kF32AbsTol;
constexpr double kLseRelTol = kF32RelTol;
constexpr double kLseAbsTol = kF32AbsTol;
// Kernel against kernel (two fp32 computations of the same quantity): twice the budget.
constexpr double kKernelPairRelTol = 2 * kF32RelTol;
constexpr double kKernelPairAbsTol = 2 * kF32AbsTol;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- problem setup ------------------------------------------------------------------------------

enum class Layout {
  kContiguous,  // q/k/v/o each [len, heads, head_dim]
  kPacked,      // q/k/v interleaved in one [len, 3, heads, head_dim] buffer; o head-major [heads, q_len, head_dim + 5]
  kHeadMajor,   // each tensor [heads, len, head_dim + pad] with a different pad each (head stride != head_dim)
};

struct Problem {
  int64_t heads = 0, head_dim = 0, q_len = 0, kv_len = 0;
  float scale = 0.0f;
  // Storage and element offsets / strides of each tensor in it.
  std::vector<float> qs, ks, vs;
  int64_t q_off = 0, k_off = 0, v_off = 0;
  int64_t q_row = 0, q_head = 0, k_row = 0, k_head = 0, v_row = 0, v_head = 0;
  std::vector<float> os;  // output storage, pre-filled with a sentinel
  int64_t o_row = 0, o_head = 0;
  std::vector<float> lse;  // [heads, q_len]

  float q_at(int64_t i, int64_t h, int64_t d) const { return qs[static_cast<size_t>(q_off + i * q_row + h * q_head + d)]; }
  float k_at(int64_t j, int64_t h, int64_t d) const { return ks[static_cast<size_t>(k_off + j * k_row + h * k_head + d)]; }
  float v_at(int64_t j, int64_t h, int64_t d) const { return vs[static_cast<size_t>(v_off + j * v_row + h * v_head + d)]; }
  float& k_ref(int64_t j, int64_t h, int64_t d) { return ks[static_cast<size_t>(k_off + j * k_row + h * k_head + d)]; }
  float& v_ref(int64_t j, int64_t h, int64_t d) { return vs[static_cast<size_t>(v_off + j * v_row + h * v_head + d)]; }
};

constexpr float kOutputSentinel = 12345.0f;

Problem make_problem(int64_t heads, int64_t head_dim, int64_t q_len, int64_t kv_len, Layout layout, uint64_t seed) {
  Problem p;
  p.heads = heads, p.head_dim = head_dim, p.q_len = q_len, p.kv_len = kv_len;
  p.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const int64_t hd = heads * head_dim;
  if (layout == Layout::kContiguous) {
    p.qs = random_normal(q_len * hd, seed, 1.5f);  // a little sharper than unit logits
    p.ks = random_normal(kv_len * hd, seed + 1);
    p.vs = random_normal(kv_len * hd, seed + 2);
    p.q_row = p.k_row = p.v_row = hd;
    p.q_head = p.k_head = p.v_head = head_dim;
    p.os.assign(static_cast<size_t>(q_len * hd), kOutputSentinel);
    p.o_row = hd, p.o_head = head_dim;
  } else if (layout == Layout::kHeadMajor) {
    const int64_t qp = head_dim + 3, kp = head_dim + 1, vp = head_dim + 6, op = head_dim + 2;
    p.qs = random_normal(heads * q_len * qp, seed, 1.5f);
    p.ks = random_normal(heads * kv_len * kp, seed + 1);
    p.vs = random_normal(heads * kv_len * vp, seed + 2);
    p.q_row = qp, p.q_head = q_len * qp;
    p.k_row = kp, p.k_head = kv_len * kp;
    p.v_row = vp, p.v_head = kv_len * vp;
    p.o_row = op, p.o_head = q_len * op;
    p.os.assign(static_cast<size_t>(heads * p.o_head), kOutputSentinel);
  } else {
    const int64_t len = std::max(q_len, kv_len);
    auto packed = random_normal(len * 3 * hd, seed, 1.0f);
    for (int64_t t = 0; t < len; ++t)  // sharpen the q part
      for (int64_t e = 0; e < hd; ++e) packed[static_cast<size_t>(t * 3 * hd + e)] *= 1.5f;
    p.qs = p.ks = p.vs = packed;
    p.q_off = 0, p.k_off = hd, p.v_off = 2 * hd;
    p.q_row = p.k_row = p.v_row = 3 * hd;
    p.q_head = p.k_head = p.v_head = head_dim;
    p.o_row = head_dim + 5, p.o_head = q_len * (head_dim + 5);
    p.os.assign(static_cast<size_t>(heads * p.o_head), kOutputSentinel);
  }
  p.lse.assign(static_cast<size_t>(heads * q_len), kOutputSentinel);
  return p;
}

// Optional variants, mirrored into AttentionParams for the kernel and into the mask of the reference.
struct Variant {
  const float* key_bias = nullptr;
  int64_t key_bias_head_stride = 0;
  const std::vector<int32_t>* block_offsets = nullptr;
  const std::vector<int32_t>* block_index = nullptr;
  int64_t block_q = 0, block_k = 0;
  int64_t causal_block = 0;
};

void run_kernel(Problem& p, const Variant& var, bool with_lse = true) {
  AttentionParams a;
  a.q = p.qs.data() + p.q_off;
  a.k = p.ks.data() + p.k_off;
  a.v = p.vs.data() + p.v_off;
  a.o = p.os.data();
  a.q_row_stride = p.q_row, a.q_head_stride = p.q_head;
  a.k_row_stride = p.k_row, a.k_head_stride = p.k_head;
  a.v_row_stride = p.v_row, a.v_head_stride = p.v_head;
  a.o_row_stride = p.o_row, a.o_head_stride = p.o_head;
  a.num_heads = p.heads;
  a.head_dim = p.head_dim;
  a.q_len = p.q_len;
  a.kv_len = p.kv_len;
  a.scale = p.scale;
  a.lse = with_lse ? p.lse.data() : nullptr;
  a.key_bias = var.key_bias;
  a.key_bias_head_stride = var.key_bias_head_stride;
  if (var.block_offsets) {
    a.block_offsets = var.block_offsets->data();
    a.block_index = var.block_index->data();
    a.block_q = var.block_q;
    a.block_k = var.block_k;
  }
  a.causal_block = var.causal_block;
  cpu::attention_forward(a);
}

// The kernel's output gathered to [q_len, heads, head_dim].
std::vector<float> gather_output(const Problem& p) {
  std::vector<float> out(static_cast<size_t>(p.q_len * p.heads * p.head_dim));
  for (int64_t i = 0; i < p.q_len; ++i)
    for (int64_t h = 0; h < p.heads; ++h)
      for (int64_t d = 0; d < p.head_dim; ++d)
        out[static_cast<size_t>((i * p.heads + h) * p.head_dim + d)] =
            p.os[static_cast<size_t>(i * p.o_row + h * p.o_head + d)];
  return out;
}

// Every element of the output storage outside the o view still holds the sentinel.
int64_t count_writes_outside_view(const Problem& p) {
  std::vector<char> in_view(p.os.size(), 0);
  for (int64_t i = 0; i < p.q_len; ++i)
    for (int64_t h = 0; h < p.heads; ++h)
      for (int64_t d = 0; d < p.head_dim; ++d) in_view[static_cast<size_t>(i * p.o_row + h * p.o_head + d)] = 1;
  int64_t written = 0;
  for (size_t e = 0; e < p.os.size(); ++e) written += !in_view[e] && p.os[e] != kOutputSentinel;
  return written;
}

// ---- the double reference: the suite's attention oracle (tests/reference/attention_oracle.h) ------

// The oracle's view of `p` under `var`: the problem's strides, the key bias, the CSR selection, and
// block-causal as a mask written from the header's definition.
OracleAttentionArgs oracle_args(const Problem& p, const Variant& var) {
  OracleAttentionArgs a;
  a.q = OracleOperand(p.qs.data() + p.q_off, p.q_row, p.q_head);
  a.k = OracleOperand(p.ks.data() + p.k_off, p.k_row, p.k_head);
  a.v = OracleOperand(p.vs.data() + p.v_off, p.v_row, p.v_head);
  a.heads = p.heads, a.head_dim = p.head_dim, a.q_len = p.q_len, a.kv_len = p.kv_len;
  a.scale = p.scale;
  if (var.key_bias) {
    const float* bias = var.key_bias;
    const int64_t stride = var.key_bias_head_stride;
    a.bias = [bias, stride](int64_t h, int64_t, int64_t j) { return static_cast<double>(bias[h * stride + j]); };
  }
  if (var.block_offsets)
    a.block_sparse = {var.block_offsets->data(), var.block_index->data(), var.block_q, var.block_k};
  if (var.causal_block > 0) {
    const int64_t block = var.causal_block, shift = p.kv_len - p.q_len;  // queries are the last q_len positions
    a.mask = [block, shift](int64_t, int64_t i, int64_t j) { return j / block <= (i + shift) / block; };
  }
  return a;
}

OracleAttentionResult reference_attention(const Problem& p, const Variant& var) {
  return attention_oracle(oracle_args(p, var));
}

// The reference with key `key`'s k and v raised by 1 at d = 0 in every head: the sensitivity check.
OracleAttentionResult perturbed_reference(Problem p, const Variant& var, int64_t key) {
  for (int64_t h = 0; h < p.heads; ++h) {
    p.k_ref(key, h, 0) += 1.0f;
    p.v_ref(key, h, 0) += 1.0f;
  }
  return reference_attention(p, var);
}

// Whether query i (head 0; the variants here are shared by all heads) sees key j under `var`.
bool key_visible(const Problem& p, const Variant& var, int64_t i, int64_t j) {
  const OracleAttentionArgs args = oracle_args(p, var);
  return OracleVisibility(args)(0, i, j);
}

// A key that some query sees (the last such query's first visible key), or -1 when the mask is empty.
int64_t some_visible_key(const Problem& p, const Variant& var) {
  const OracleAttentionArgs args = oracle_args(p, var);
  const OracleVisibility visible(args);
  for (int64_t i = p.q_len - 1; i >= 0; --i)
    for (int64_t j = 0; j < p.kv_len; ++j)
      if (visible(0, i, j)) return j;
  return -1;
}

// Runs the kernel on `p` with `var` and checks o and lse (empty rows: o exactly 0, lse −inf),
// untouched padding, and that the comparison is sensitive to a perturbed visible key.
void check_against_reference(Problem& p, const Variant& var, bool with_lse = true) {
  run_kernel(p, var, with_lse);
  const auto out = gather_output(p);
  const OracleAttentionResult ref = reference_attention(p, var);
  const double err = attention_scaled_error(out.data(), ref, kAttnRelTol, kAttnAbsTol);
  EXPECT_LE(err, 1.0) << "o differs from the oracle (scaled error " << err << "; "
                      << ref.empty_rows() << " empty rows must be exactly 0)";
  if (with_lse) {
    const double lse_err = attention_lse_scaled_error(p.lse.data(), ref, kLseRelTol, kLseAbsTol);
    EXPECT_LE(lse_err, 1.0) << "lse differs from the oracle (scaled error " << lse_err << ")";
  } else {
    for (const float v : p.lse) ASSERT_EQ(v, kOutputSentinel) << "lse written although lse == nullptr";
  }
  EXPECT_EQ(count_writes_outside_view(p), 0) << "o written outside its strided view";
  // Sensitivity of the comparison.
  const int64_t key = some_visible_key(p, var);
  if (key >= 0) {
    const OracleAttentionResult perturbed = perturbed_reference(p, var, key);
    EXPECT_GT(attention_scaled_error(out.data(), perturbed, kAttnRelTol, kAttnAbsTol), 1.0)
        << "sanity: perturbing key " << key << " should move the reference beyond tolerance";
  } else {
    EXPECT_EQ(ref.empty_rows(), p.heads * p.q_len);
  }
}

std::string describe(const Problem& p, Layout layout) {
  std::ostringstream s;
  s << "heads=" << p.heads << " head_dim=" << p.head_dim << " q_len=" << p.q_len << " kv_len=" << p.kv_len
    << " layout="
    << (layout == Layout::kContiguous ? "contiguous" : layout == Layout::kPacked ? "packed-qkv/head-major-o" : "head-major-padded");
  return s.str();
}

struct Lens {
  int64_t q, kv;
};
const std::vector<Lens>& dense_lengths() {
  static const std::vector<Lens> lens = {{1, 1},   {1, 200}, {17, 1},  {17, 17},  {63, 65},  {64, 64},
                                         {65, 63}, {65, 65}, {200, 17}, {200, 200}, {63, 64}};
  return lens;
}

// ---- dense ------------------------------------------------------------------------------------

TEST(CpuAttention, DenseMatchesDoubleSoftmax) {
  uint64_t seed = 1000;
  for (const int64_t head_dim : {64, 128})
    for (const int64_t heads : {1, 2, 3})
      for (const Lens& len : dense_lengths()) {
        Problem p = make_problem(heads, head_dim, len.q, len.kv, Layout::kContiguous, seed++);
        SCOPED_TRACE(describe(p, Layout::kContiguous));
        check_against_reference(p, Variant{});
      }
}

TEST(CpuAttention, NonContiguousStrides) {
  uint64_t seed = 2000;
  for (const int64_t head_dim : {64, 128})
    for (const int64_t heads : {1, 3})
      for (const Lens& len : {Lens{1, 1}, Lens{17, 17}, Lens{65, 65}, Lens{200, 200}, Lens{63, 200}, Lens{64, 17}})
        for (const Layout layout : {Layout::kPacked, Layout::kHeadMajor}) {
          Problem p = make_problem(heads, head_dim, len.q, len.kv, layout, seed++);
          SCOPED_TRACE(describe(p, layout));
          check_against_reference(p, Variant{});
        }
}

TEST(CpuAttention, WithoutLseOutput) {
  Problem p = make_problem(2, 64, 65, 63, Layout::kContiguous, 2500);
  SCOPED_TRACE(describe(p, Layout::kContiguous));
  check_against_reference(p, Variant{}, /*with_lse=*/false);
}

// ---- key bias --------------------------------------------------------------------------------------

TEST(CpuAttention, KeyBiasPerHeadAndShared) {
  uint64_t seed = 3000;
  for (const int64_t head_dim : {64, 128})
    for (const Lens& len : {Lens{1, 17}, Lens{17, 65}, Lens{64, 64}, Lens{200, 63}})
      for (const bool shared : {false, true}) {
        const int64_t heads = 3;
        Problem p = make_problem(heads, head_dim, len.q, len.kv, Layout::kContiguous, seed++);
        // Per head: rows of kv_len + 7 with NaN padding (never to be read); shared: one row, stride 0.
        const int64_t stride = shared ? 0 : len.kv + 7;
        std::vector<float> bias(static_cast<size_t>(shared ? len.kv : heads * stride),
                                std::numeric_limits<float>::quiet_NaN());
        const auto values = random_normal(heads * len.kv, seed + 500, 2.0f);
        for (int64_t h = 0; h < (shared ? 1 : heads); ++h)
          for (int64_t j = 0; j < len.kv; ++j)
            bias[static_cast<size_t>(h * stride + j)] = values[static_cast<size_t>(h * len.kv + j)];
        Variant var;
        var.key_bias = bias.data();
        var.key_bias_head_stride = stride;
        SCOPED_TRACE(describe(p, Layout::kContiguous) + (shared ? " bias=shared(stride 0)" : " bias=per-head"));
        check_against_reference(p, var);
        // The bias must matter: the unbiased reference is far from the result.
        const auto out = gather_output(p);
        const OracleAttentionResult unbiased = reference_attention(p, Variant{});
        if (len.kv > 1) {
          EXPECT_GT(max_scaled_error(out.data(), unbiased.o.data(), static_cast<int64_t>(out.size()), kAttnRelTol,
                                     kAttnAbsTol),
                    1.0);
        }
      }
}

// TempCache's exactness identity: replacing each group of m identical keys by one key with logit bias
// log(m) and the mean of the group's values leaves attention (and lse) unchanged.
TEST(CpuAttention, KeyBiasLogMultiplicityEqualsDuplicatedKeys) {
  std::mt19937_64 rng(4000);
  for (const int64_t head_dim : {64, 128})
    for (const bool per_head : {false, true}) {
      const int64_t heads = per_head ? 3 : 2, groups = 23, q_len = 19;
      // Multiplicities 1..5; with per-head groups each head uses a permutation of the same multiset, so
      // every head has the same number of duplicated keys.
      std::vector<int64_t> base_mult(static_cast<size_t>(groups));
      for (auto& m : base_mult) m = 1 + static_cast<int64_t>(rng() % 5);
      const int64_t dense_len = std::accumulate(base_mult.begin(), base_mult.end(), int64_t{0});
      std::vector<std::vector<int64_t>> mult(static_cast<size_t>(heads), base_mult);
      if (per_head)
        for (auto& m : mult) std::shuffle(m.begin(), m.end(), rng);
      // Dense position -> group, per head, interleaved at random.
      std::vector<std::vector<int64_t>> group_of(static_cast<size_t>(heads));
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t g = 0; g < groups; ++g)
          for (int64_t c = 0; c < mult[static_cast<size_t>(h)][static_cast<size_t>(g)]; ++c)
            group_of[static_cast<size_t>(h)].push_back(g);
        std::shuffle(group_of[static_cast<size_t>(h)].begin(), group_of[static_cast<size_t>(h)].end(), rng);
      }

      Problem dense = make_problem(heads, head_dim, q_len, dense_len, Layout::kContiguous, 4100 + head_dim + per_head);
      Problem comp = make_problem(heads, head_dim, q_len, groups, Layout::kContiguous, 4200 + head_dim + per_head);
      comp.qs = dense.qs;
      // Unique keys live in comp; dense keys are copies of their group's key; dense values are free.
      std::vector<double> value_sum(static_cast<size_t>(groups * heads * head_dim), 0.0);
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t j = 0; j < dense_len; ++j) {
          const int64_t g = group_of[static_cast<size_t>(h)][static_cast<size_t>(j)];
          for (int64_t d = 0; d < head_dim; ++d) {
            dense.k_ref(j, h, d) = comp.k_at(g, h, d);
            value_sum[static_cast<size_t>((g * heads + h) * head_dim + d)] += dense.v_at(j, h, d);
          }
        }
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t d = 0; d < head_dim; ++d)
            comp.v_ref(g, h, d) = static_cast<float>(value_sum[static_cast<size_t>((g * heads + h) * head_dim + d)] /
                                                     static_cast<double>(mult[static_cast<size_t>(h)][static_cast<size_t>(g)]));
      const int64_t stride = per_head ? groups + 2 : 0;
      std::vector<float> bias(static_cast<size_t>(per_head ? heads * stride : groups), std::numeric_limits<float>::quiet_NaN());
      for (int64_t h = 0; h < (per_head ? heads : 1); ++h)
        for (int64_t g = 0; g < groups; ++g)
          bias[static_cast<size_t>(h * stride + g)] =
              std::log(static_cast<float>(mult[static_cast<size_t>(h)][static_cast<size_t>(g)]));
      Variant var;
      var.key_bias = bias.data();
      var.key_bias_head_stride = stride;

      SCOPED_TRACE(::testing::Message() << "head_dim=" << head_dim << " heads=" << heads << " groups=" << groups
                                        << " dense_len=" << dense_len << " q_len=" << q_len
                                        << (per_head ? " per-head groups" : " shared bias (stride 0)"));
      check_against_reference(dense, Variant{});
      check_against_reference(comp, var);
      const auto o_dense = gather_output(dense), o_comp = gather_output(comp);
      const std::vector<double> o_dense_d(o_dense.begin(), o_dense.end());
      EXPECT_LE(max_scaled_error(o_comp.data(), o_dense_d.data(), static_cast<int64_t>(o_comp.size()), kKernelPairRelTol,
                                 kKernelPairAbsTol),
                1.0)
          << "compressed keys with log-multiplicity bias differ from the duplicated keys";
      const std::vector<double> lse_dense_d(dense.lse.begin(), dense.lse.end());
      EXPECT_LE(max_scaled_error(comp.lse.data(), lse_dense_d.data(), static_cast<int64_t>(comp.lse.size()),
                                 kKernelPairRelTol, kKernelPairAbsTol),
                1.0)
          << "lse of the compressed keys differs from the duplicated keys";
      // Without the bias the identity fails.
      Problem unbiased = comp;
      run_kernel(unbiased, Variant{});
      const auto o_unbiased = gather_output(unbiased);
      EXPECT_GT(max_scaled_error(o_unbiased.data(), o_dense_d.data(), static_cast<int64_t>(o_unbiased.size()),
                                 kKernelPairRelTol, kKernelPairAbsTol),
                1.0)
          << "sanity: dropping the log-multiplicity bias must break the identity";
    }
}

// ---- block-sparse ----------------------------------------------------------------------------------

struct Csr {
  std::vector<int32_t> offsets, index;
};

// Random CSR mask: each query block keeps each key block with probability `density`; about a quarter
// of the blocks (and block 1 always) get an empty list; block 0 always includes the last, partial key
// block. shuffle = unsorted lists.
Csr random_csr(int64_t q_blocks, int64_t k_blocks, std::mt19937_64& rng, bool shuffle) {
  Csr csr;
  csr.offsets.push_back(0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int64_t b = 0; b < q_blocks; ++b) {
    std::vector<int32_t> list;
    const bool empty = (b == 1) || (b > 1 && u(rng) < 0.25);
    if (!empty) {
      for (int64_t kb = 0; kb < k_blocks; ++kb)
        if (u(rng) < 0.5 || (b == 0 && kb == k_blocks - 1)) list.push_back(static_cast<int32_t>(kb));
      if (list.empty()) list.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(k_blocks)));
      if (shuffle) std::shuffle(list.begin(), list.end(), rng);
    }
    csr.index.insert(csr.index.end(), list.begin(), list.end());
    csr.offsets.push_back(static_cast<int32_t>(csr.index.size()));
  }
  return csr;
}

Csr full_csr(int64_t q_blocks, int64_t k_blocks) {
  Csr csr;
  csr.offsets.push_back(0);
  for (int64_t b = 0; b < q_blocks; ++b) {
    for (int64_t kb = 0; kb < k_blocks; ++kb) csr.index.push_back(static_cast<int32_t>(kb));
    csr.offsets.push_back(static_cast<int32_t>(csr.index.size()));
  }
  return csr;
}

void run_block_sparse_cases(bool shuffle, uint64_t seed_base) {
  std::mt19937_64 rng(seed_base);
  uint64_t seed = seed_base;
  int64_t cases_with_empty_block = 0;
  for (const Lens& len : {Lens{1, 65}, Lens{17, 65}, Lens{64, 200}, Lens{100, 37}, Lens{65, 63}, Lens{200, 200}})
    for (const int64_t block_q : {16, 64})
      for (const int64_t block_k : {16, 32}) {
        const int64_t head_dim = (seed % 2) ? 128 : 64, heads = (seed % 3) + 1;
        const int64_t q_blocks = (len.q + block_q - 1) / block_q, k_blocks = (len.kv + block_k - 1) / block_k;
        const Csr csr = random_csr(q_blocks, k_blocks, rng, shuffle);
        Problem p = make_problem(heads, head_dim, len.q, len.kv, Layout::kContiguous, seed++);
        Variant var;
        var.block_offsets = &csr.offsets;
        var.block_index = &csr.index;
        var.block_q = block_q;
        var.block_k = block_k;
        std::ostringstream lists;
        for (int64_t b = 0; b < q_blocks; ++b) {
          lists << " [";
          for (int32_t e = csr.offsets[static_cast<size_t>(b)]; e < csr.offsets[static_cast<size_t>(b + 1)]; ++e)
            lists << csr.index[static_cast<size_t>(e)] << (e + 1 < csr.offsets[static_cast<size_t>(b + 1)] ? "," : "");
          lists << "]";
        }
        SCOPED_TRACE(describe(p, Layout::kContiguous) + " block_q=" + std::to_string(block_q) +
                     " block_k=" + std::to_string(block_k) + " csr:" + lists.str());
        cases_with_empty_block += q_blocks > 1;
        check_against_reference(p, var);
        // The mask must matter whenever it drops some visible key: dense attention then differs.
        const bool drops = reference_attention(p, var).visible_pairs() < p.heads * p.q_len * p.kv_len;
        if (drops) {
          const auto out = gather_output(p);
          const OracleAttentionResult dense = reference_attention(p, Variant{});
          EXPECT_GT(max_scaled_error(out.data(), dense.o.data(), static_cast<int64_t>(out.size()), kAttnRelTol,
                                     kAttnAbsTol),
                    1.0);
        }
      }
  EXPECT_GT(cases_with_empty_block, 0);
}

TEST(CpuAttention, BlockSparseRandomSortedMasks) { run_block_sparse_cases(/*shuffle=*/false, 5000); }

TEST(CpuAttention, BlockSparseRandomUnsortedMasks) { run_block_sparse_cases(/*shuffle=*/true, 5500); }

TEST(CpuAttention, BlockSparseAllBlocksEqualsDense) {
  uint64_t seed = 6000;
  for (const Lens& len : {Lens{17, 65}, Lens{64, 64}, Lens{200, 63}, Lens{1, 200}})
    for (const int64_t block_q : {16, 64})
      for (const int64_t block_k : {16, 32}) {
        const int64_t head_dim = (seed % 2) ? 64 : 128, heads = 2;
        const Csr csr = full_csr((len.q + block_q - 1) / block_q, (len.kv + block_k - 1) / block_k);
        Problem sparse = make_problem(heads, head_dim, len.q, len.kv, Layout::kContiguous, seed++);
        Problem dense = sparse;
        Variant var;
        var.block_offsets = &csr.offsets;
        var.block_index = &csr.index;
        var.block_q = block_q;
        var.block_k = block_k;
        SCOPED_TRACE(describe(sparse, Layout::kContiguous) + " block_q=" + std::to_string(block_q) +
                     " block_k=" + std::to_string(block_k) + " all blocks");
        check_against_reference(sparse, var);
        run_kernel(dense, Variant{});
        const auto o_sparse = gather_output(sparse), o_dense = gather_output(dense);
        const std::vector<double> o_dense_d(o_dense.begin(), o_dense.end());
        EXPECT_LE(max_scaled_error(o_sparse.data(), o_dense_d.data(), static_cast<int64_t>(o_sparse.size()),
                                   kKernelPairRelTol, kKernelPairAbsTol),
                  1.0);
        const std::vector<double> lse_dense_d(dense.lse.begin(), dense.lse.end());
        EXPECT_LE(max_scaled_error(sparse.lse.data(), lse_dense_d.data(), static_cast<int64_t>(sparse.lse.size()),
                                   kKernelPairRelTol, kKernelPairAbsTol),
                  1.0);
      }
}

TEST(CpuAttention, BlockSparseAllEmpty) {
  // Every query block with an empty list: o = 0 and lse = -inf everywhere.
  const int64_t block_q = 16, block_k = 32;
  Problem p = make_problem(2, 64, 40, 50, Layout::kContiguous, 6500);
  Csr csr;
  csr.offsets.assign(static_cast<size_t>((p.q_len + block_q - 1) / block_q + 1), 0);
  csr.index.push_back(0);  // never referenced; keeps data() non-null
  Variant var;
  var.block_offsets = &csr.offsets;
  var.block_index = &csr.index;
  var.block_q = block_q;
  var.block_k = block_k;
  SCOPED_TRACE(describe(p, Layout::kContiguous) + " all query blocks empty");
  check_against_reference(p, var);
  for (const float v : p.lse) EXPECT_TRUE(std::isinf(v) && v < 0);
}

// ---- block-causal ---------------------------------------------------------------------------------

TEST(CpuAttention, BlockCausalMatchesMaskedLoop) {
  uint64_t seed = 7000;
  for (const int64_t head_dim : {64, 128})
    for (const Lens& len : {Lens{1, 1}, Lens{17, 17}, Lens{64, 64}, Lens{65, 65}, Lens{200, 200}, Lens{1, 17},
                            Lens{5, 23}, Lens{17, 65}, Lens{63, 200}, Lens{64, 65}})
      for (const int64_t causal_block : {5, 16}) {
        const int64_t heads = 2;
        Problem p = make_problem(heads, head_dim, len.q, len.kv, Layout::kContiguous, seed++);
        Variant var;
        var.causal_block = causal_block;
        SCOPED_TRACE(describe(p, Layout::kContiguous) + " causal_block=" + std::to_string(causal_block));
        check_against_reference(p, var);
        // Where the mask hides keys, plain causal (per token) and dense attention both differ from it.
        const auto out = gather_output(p);
        bool hides = false;
        for (int64_t i = 0; i < p.q_len && !hides; ++i) hides = !key_visible(p, var, i, p.kv_len - 1);
        if (hides) {
          const OracleAttentionResult dense = reference_attention(p, Variant{});
          EXPECT_GT(max_scaled_error(out.data(), dense.o.data(), static_cast<int64_t>(out.size()), kAttnRelTol,
                                     kAttnAbsTol),
                    1.0);
        }
        Variant token_causal;
        token_causal.causal_block = 1;
        const OracleAttentionResult per_token = reference_attention(p, token_causal);
        bool masks_differ = false;
        for (int64_t i = 0; i < p.q_len && !masks_differ; ++i)
          for (int64_t j = 0; j < p.kv_len && !masks_differ; ++j)
            masks_differ = key_visible(p, var, i, j) != key_visible(p, token_causal, i, j);
        if (masks_differ) {
          EXPECT_GT(max_scaled_error(out.data(), per_token.o.data(), static_cast<int64_t>(out.size()), kAttnRelTol,
                                     kAttnAbsTol),
                    1.0)
              << "block-causal should differ from token-causal";
        }
      }
}

TEST(CpuAttention, BlockCausalPackedStridesWithKeyBias) {
  // The variants are options of one kernel: block-causal with a per-head key bias and strided tensors.
  uint64_t seed = 7500;
  for (const Lens& len : {Lens{65, 65}, Lens{17, 63}})
    for (const int64_t head_dim : {64, 128}) {
      const int64_t heads = 3;
      Problem p = make_problem(heads, head_dim, len.q, len.kv, Layout::kPacked, seed++);
      const auto bias = random_normal(heads * len.kv, seed + 100);
      Variant var;
      var.causal_block = 5;
      var.key_bias = bias.data();
      var.key_bias_head_stride = len.kv;
      SCOPED_TRACE(describe(p, Layout::kPacked) + " causal_block=5 + per-head key_bias");
      check_against_reference(p, var);
    }
}

TEST(CpuAttention, BlockSparseWithSharedKeyBias) {
  std::mt19937_64 rng(7700);
  const int64_t block_q = 16, block_k = 16;
  Problem p = make_problem(2, 64, 50, 70, Layout::kHeadMajor, 7701);
  const Csr csr = random_csr((p.q_len + block_q - 1) / block_q, (p.kv_len + block_k - 1) / block_k, rng, false);
  const auto bias = random_normal(p.kv_len, 7702);
  Variant var;
  var.block_offsets = &csr.offsets;
  var.block_index = &csr.index;
  var.block_q = block_q;
  var.block_k = block_k;
  var.key_bias = bias.data();
  var.key_bias_head_stride = 0;
  SCOPED_TRACE(describe(p, Layout::kHeadMajor) + " block-sparse 16x16 + shared key_bias");
  check_against_reference(p, var);
}

// ---- threading -------------------------------------------------------------------------------------

#ifdef _OPENMP
TEST(CpuAttention, ResultIndependentOfThreadCount) {
  const int saved = omp_get_max_threads();
  std::mt19937_64 rng(8000);
  const Csr csr = random_csr(4, 7, rng, false);
  for (const int mode : {0, 1, 2}) {
    Problem p1 = make_problem(3, 64, 200, 200, Layout::kContiguous, 8001);
    Variant var;
    if (mode == 1) {
      var.block_offsets = &csr.offsets;
      var.block_index = &csr.index;
      var.block_q = 64;
      var.block_k = 32;
    }
    if (mode == 2) var.causal_block = 5;
    SCOPED_TRACE(::testing::Message() << "mode=" << (mode == 0 ? "dense" : mode == 1 ? "block-sparse" : "block-causal"));
    Problem p4 = p1;
    omp_set_num_threads(1);
    run_kernel(p1, var);
    omp_set_num_threads(4);
    run_kernel(p4, var);
    omp_set_num_threads(saved);
    ASSERT_EQ(p1.os.size(), p4.os.size());
    for (size_t e = 0; e < p1.os.size(); ++e) ASSERT_EQ(p1.os[e], p4.os[e]) << "o element " << e;
    for (size_t e = 0; e < p1.lse.size(); ++e) ASSERT_EQ(p1.lse[e], p4.lse[e]) << "lse element " << e;
  }
}
#endif

}  // namespace
}  // namespace fastar
