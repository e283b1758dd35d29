// The gated delta rule kernels (ARL²'s linear memory) against a double-precision token-by-token loop:
// the recurrent and the chunked (WY/UT) update, and the read against the pre-update state.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/gated_delta_rule.h"
#include "test_util.h"

namespace fastar {
namespace {

// fp32 state after T tokens against the double loop: |S − S_ref| <= kStateTol · max|S_ref| per entry.
// Each token adds O(key_dim) rounding steps to a contraction (β ∈ (0,2), ‖k‖ = 1), so the error
// stays near a few hundred ulps of the state's scale, for any T.
constexpr double kStateTol = 2e-5;
// The read is one dot of length key_dim per output: fp32 against double, relative to max|o_ref|.
constexpr double kReadTol = 1e-5;

struct Inputs {
  int64_t tokens, heads, dk, dv;
  std::vector<float> q, k, v, g, beta, state;
};

// L2-normalised q/k rows (as ARL² feeds them), β ∈ (0, 2), g = log α with α ∈ [alpha_min, 1).
Inputs make_inputs(int64_t tokens, int64_t heads, int64_t dk, int64_t dv, uint64_t seed, float alpha_min = 0.9f) {
  Inputs in{tokens, heads, dk, dv, {}, {}, {}, {}, {}, {}};
  in.q = testing::random_normal(tokens * heads * dk, seed);
  in.k = testing::random_normal(tokens * heads * dk, seed + 1);
  in.v = testing::random_normal(tokens * heads * dv, seed + 2);
  in.state = testing::random_normal(heads * dk * dv, seed + 3, 0.5f);
  for (std::vector<float>* x : {&in.q, &in.k})
    for (int64_t r = 0; r < tokens * heads; ++r) {
      double norm = 0;
      for (int64_t d = 0; d < dk; ++d) norm += double((*x)[r * dk + d]) * (*x)[r * dk + d];
      for (int64_t d = 0; d < dk; ++d) (*x)[r * dk + d] = static_cast<float>((*x)[r * dk + d] / std::sqrt(norm));
    }
  std::mt19937_64 rng(seed + 4);
  std::uniform_real_distribution<float> alpha(alpha_min, 1.0f), beta(0.0f, 2.0f);
  for (int64_t i = 0; i < tokens * heads; ++i) {
    in.g.push_back(std::log(alpha(rng)));
    in.beta.push_back(beta(rng));
  }
  return in;
}

GatedDeltaRuleParams params_for(Inputs& in, float* state, float* o) {
  GatedDeltaRuleParams p;
  p.q = in.q.data();
  p.k = in.k.data();
  p.v = in.v.data();
  p.o = o;
  p.q_row_stride = p.k_row_stride = in.heads * in.dk;
  p.q_head_stride = p.k_head_stride = in.dk;
  p.v_row_stride = p.o_row_stride = in.heads * in.dv;
  p.v_head_stride = p.o_head_stride = in.dv;
  p.log_alpha = in.g.data();
  p.beta = in.beta.data();
  p.gate_row_stride = in.heads;
  p.state = state;
  p.state_head_stride = in.dk * in.dv;
  p.tokens = in.tokens;
  p.heads = in.heads;
  p.key_dim = in.dk;
  p.value_dim = in.dv;
  p.scale = static_cast<float>(1.0 / std::sqrt(double(in.dk)));
  return p;
}

// The specification, in double: S ← α(I − βkkᵀ)S + βkvᵀ, written literally (matrix form).
std::vector<double> reference_update(const Inputs& in) {
  const int64_t dk = in.dk, dv = in.dv;
  std::vector<double> s(in.state.begin(), in.state.end());
  std::vector<double> next(static_cast<size_t>(dk * dv));
  for (int64_t h = 0; h < in.heads; ++h) {
    double* sh = &s[static_cast<size_t>(h * dk * dv)];
    for (int64_t t = 0; t < in.tokens; ++t) {
      const float* k = &in.k[static_cast<size_t>((t * in.heads + h) * dk)];
      const float* v = &in.v[static_cast<size_t>((t * in.heads + h) * dv)];
      const double alpha = std::exp(double(in.g[static_cast<size_t>(t * in.heads + h)]));
      const double beta = in.beta[static_cast<size_t>(t * in.heads + h)];
      for (int64_t i = 0; i < dk; ++i)
        for (int64_t c = 0; c < dv; ++c) {
          double value = 0;  // ((I − βkkᵀ) S)[i][c]
          for (int64_t j = 0; j < dk; ++j) value += ((i == j ? 1.0 : 0.0) - beta * k[i] * k[j]) * sh[j * dv + c];
          next[static_cast<size_t>(i * dv + c)] = alpha * value + beta * k[i] * v[c];
        }
      std::copy(next.begin(), next.end(), sh);
    }
  }
  return s;
}

double state_error(const std::vector<float>& actual, const std::vector<double>& expected) {
  double scale = 0, worst = 0;
  for (double x : expected) scale = std::max(scale, std::fabs(x));
  for (size_t i = 0; i < actual.size(); ++i) {
    if (!std::isfinite(actual[i])) return INFINITY;
    worst = std::max(worst, std::fabs(actual[i] - expected[i]));
  }
  return worst / (kStateTol * std::max(scale, 1e-30));
}

TEST(GatedDeltaRule, RecurrentUpdateMatchesDoubleLoop) {
  for (int64_t tokens : {1, 5, 97}) {
    Inputs in = make_inputs(tokens, 3, 16, 12, 100 + tokens);
    std::vector<float> state = in.state;
    cpu::gated_delta_rule_update_recurrent(params_for(in, state.data(), nullptr));
    EXPECT_LE(state_error(state, reference_update(in)), 1.0) << "tokens " << tokens;
  }
}

TEST(GatedDeltaRule, ChunkedUpdateMatchesDoubleLoop) {
  // Tiles that divide the length, do not divide it, exceed it, and of length 1.
  struct Case {
    int64_t tokens, chunk, dk, dv;
    float alpha_min;
  };
  const Case cases[] = {{64, 16, 16, 16, 0.9f}, {100, 16, 16, 8, 0.9f}, {7, 64, 8, 8, 0.5f},
                        {130, 64, 32, 24, 0.95f}, {33, 1, 8, 8, 0.9f},   {200, 64, 64, 64, 0.99f},
                        {150, 32, 16, 16, 0.05f}};  // strong decay: γ underflows within a tile
  for (const Case& cs : cases) {
    Inputs in = make_inputs(cs.tokens, 2, cs.dk, cs.dv, 7 * cs.tokens + cs.chunk, cs.alpha_min);
    std::vector<float> state = in.state;
    GatedDeltaRuleParams p = params_for(in, state.data(), nullptr);
    p.chunk_size = cs.chunk;
    cpu::gated_delta_rule_update_chunked(p);
    const std::vector<double> expected = reference_update(in);
    EXPECT_LE(state_error(state, expected), 1.0) << "tokens " << cs.tokens << " chunk " << cs.chunk;
    // The test can fail: dropping the last token is far off.
    Inputs shorter = in;
    shorter.tokens -= 1;
    if (shorter.tokens > 0) EXPECT_GT(state_error(state, reference_update(shorter)), 10.0);
  }
}

TEST(GatedDeltaRule, ChunkedEqualsRecurrentOnLongChunkedStream) {
  // 20 chunks of 45 tokens each, state carried: both algorithms stay within tolerance of the loop.
  Inputs all = make_inputs(20 * 45, 2, 16, 16, 5);
  std::vector<float> s_chunked = all.state, s_recurrent = all.state;
  for (int64_t c = 0; c < 20; ++c) {
    Inputs part = all;
    part.tokens = 45;
    const size_t off = static_cast<size_t>(c * 45);
    part.k.assign(all.k.begin() + off * 2 * 16, all.k.begin() + (off + 45) * 2 * 16);
    part.v.assign(all.v.begin() + off * 2 * 16, all.v.begin() + (off + 45) * 2 * 16);
    part.g.assign(all.g.begin() + off * 2, all.g.begin() + (off + 45) * 2);
    part.beta.assign(all.beta.begin() + off * 2, all.beta.begin() + (off + 45) * 2);
    GatedDeltaRuleParams p = params_for(part, s_chunked.data(), nullptr);
    p.chunk_size = 16;
    cpu::gated_delta_rule_update_chunked(p);
    cpu::gated_delta_rule_update_recurrent(params_for(part, s_recurrent.data(), nullptr));
  }
  const std::vector<double> expected = reference_update(all);
  EXPECT_LE(state_error(s_chunked, expected), 1.0);
  EXPECT_LE(state_error(s_recurrent, expected), 1.0);
}

TEST(GatedDeltaRule, ReadUsesTheGivenStateWithGateScaleAndAccumulate) {
  const int64_t tokens = 9, heads = 3, dk = 8, dv = 6;
  Inputs in = make_inputs(tokens, heads, dk, dv, 11);
  std::vector<float> gate(static_cast<size_t>(tokens * heads));
  for (size_t i = 0; i < gate.size(); ++i) gate[i] = 0.1f * static_cast<float>(i % 7);
  const std::vector<float> base = testing::random_normal(tokens * heads * dv, 12);
  for (bool accumulate : {false, true})
    for (bool gated : {false, true}) {
      std::vector<float> o = base, state = in.state;
      GatedDeltaRuleParams p = params_for(in, state.data(), o.data());
      p.accumulate = accumulate;
      p.read_gate = gated ? gate.data() : nullptr;
      cpu::gated_delta_rule_read(p);
      std::vector<double> expected(o.size());
      double scale = 0;
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t c = 0; c < dv; ++c) {
            double dot = 0;
            for (int64_t d = 0; d < dk; ++d)
              dot += double(in.q[static_cast<size_t>((t * heads + h) * dk + d)]) *
                     in.state[static_cast<size_t>((h * dk + d) * dv + c)];
            const double g = gated ? gate[static_cast<size_t>(t * heads + h)] : 1.0;
            const size_t idx = static_cast<size_t>((t * heads + h) * dv + c);
            expected[idx] = (accumulate ? base[idx] : 0.0) + g * dot / std::sqrt(double(dk));
            scale = std::max(scale, std::fabs(expected[idx]));
          }
      EXPECT_LE(testing::max_scaled_error(o.data(), expected.data(), static_cast<int64_t>(o.size()), 0.0, kReadTol * scale),
                1.0)
          << "accumulate " << accumulate << " gated " << gated;
      EXPECT_EQ(state, in.state) << "the read must not change the state";
    }
}

TEST(GatedDeltaRule, StridedHeadsAndStateLayout) {
  // q/k/v with padded rows and a state with padded heads give the packed result.
  const int64_t tokens = 40, heads = 2, dk = 8, dv = 8, pad = 3;
  Inputs in = make_inputs(tokens, heads, dk, dv, 21);
  std::vector<float> kp(static_cast<size_t>(tokens * (heads * dk + pad)), NAN), vp(kp.size(), NAN);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < heads * dk; ++i) {
      kp[static_cast<size_t>(t * (heads * dk + pad) + i)] = in.k[static_cast<size_t>(t * heads * dk + i)];
      vp[static_cast<size_t>(t * (heads * dk + pad) + i)] = in.v[static_cast<size_t>(t * heads * dv + i)];
    }
  std::vector<float> padded_state(static_cast<size_t>(heads * (dk * dv + 5)), NAN);
  for (int64_t h = 0; h < heads; ++h)
    std::copy_n(&in.state[static_cast<size_t>(h * dk * dv)], dk * dv, &padded_state[static_cast<size_t>(h * (dk * dv + 5))]);
  GatedDeltaRuleParams p = params_for(in, padded_state.data(), nullptr);
  p.k = kp.data();
  p.v = vp.data();
  p.k_row_stride = p.v_row_stride = heads * dk + pad;
  p.state_head_stride = dk * dv + 5;
  p.chunk_size = 16;
  cpu::gated_delta_rule_update_chunked(p);
  std::vector<float> packed(static_cast<size_t>(heads * dk * dv));
  for (int64_t h = 0; h < heads; ++h)
    std::copy_n(&padded_state[static_cast<size_t>(h * (dk * dv + 5))], dk * dv, &packed[static_cast<size_t>(h * dk * dv)]);
  EXPECT_LE(state_error(packed, reference_update(in)), 1.0);
}

TEST(GatedDeltaRule, BadParamsAreClearErrors) {
  Inputs in = make_inputs(4, 1, 4, 4, 1);
  std::vector<float> state = in.state;
  GatedDeltaRuleParams p = params_for(in, state.data(), nullptr);
  p.chunk_size = 0;
  EXPECT_THROW(cpu::gated_delta_rule_update_chunked(p), Error);
  p = params_for(in, state.data(), nullptr);
  p.state_head_stride = 3;
  EXPECT_THROW(cpu::gated_delta_rule_update_recurrent(p), Error);
  p = params_for(in, state.data(), nullptr);  // read without o
  EXPECT_THROW(cpu::gated_delta_rule_read(p), Error);
  p = params_for(in, state.data(), nullptr);
  p.io_dtype = DType::BF16;  // CUDA only
  EXPECT_THROW(cpu::gated_delta_rule_update_chunked(p), Error);
}

}  // namespace
}  // namespace fastar
