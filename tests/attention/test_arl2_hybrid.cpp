// ARL²'s hybrid layer as a memory policy: the full equation against an independent double loop,
// the closed gate giving chunk-local softmax exactly, the pre-update read, constant state bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "fastar/attention/arl2_hybrid_memory.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"
#include "fastar/kernels/cpu/ops.h"
#include "reference/attention_oracle.h"
#include "test_util.h"

namespace fastar {
namespace {

// The equation against double: fp32 GEMMs/attention of length dim and head_dim, relative to max|out|.
constexpr double kHybridTol = 1e-4;

WanConfig hybrid_config(std::vector<int64_t> hybrid) {
  WanConfig c;
  c.dim = 32;
  c.num_heads = 2;  // head dim 16
  c.num_layers = 2;
  c.ffn_dim = 64;
  c.in_dim = c.out_dim = 4;
  c.text_dim = 8;
  c.text_len = 4;
  c.hybrid_layers = std::move(hybrid);
  c.validate("test");
  return c;
}

// One chunk's inputs for a layer: x, pre-RoPE q/k, RoPE'd q/k, v. Grid 1 frame... of `frames` frames, 2×3 tokens.
struct Chunk {
  int64_t frames = 2, height = 2, width = 3, frame_start = 0;
  std::vector<float> x, q_normed, k_normed, q, k, v;
  int64_t tokens() const { return frames * height * width; }
};

Chunk make_chunk(const WanConfig& c, int64_t frame_start, uint64_t seed) {
  Chunk ch;
  ch.frame_start = frame_start;
  const int64_t n = ch.tokens() * c.dim;
  ch.x = testing::random_normal(n, seed);
  ch.q_normed = testing::random_normal(n, seed + 1);
  ch.k_normed = testing::random_normal(n, seed + 2);
  ch.v = testing::random_normal(n, seed + 3);
  ch.q = ch.q_normed;
  ch.k = ch.k_normed;
  cpu::rope_3d_forward(ch.q.data(), c.dim, ch.frames, ch.height, ch.width, frame_start, c.num_heads, c.head_dim());
  cpu::rope_3d_forward(ch.k.data(), c.dim, ch.frames, ch.height, ch.width, frame_start, c.num_heads, c.head_dim());
  return ch;
}

std::vector<float> attend(Arl2HybridMemory& memory, int64_t layer, const Chunk& ch, bool commit) {
  MemoryCall call{ch.frame_start, ch.frames, ch.height * ch.width, commit};
  call.layer_input = ch.x.data();
  call.q_normed = ch.q_normed.data();
  call.k_normed = ch.k_normed.data();
  call.grid_height = ch.height;
  call.grid_width = ch.width;
  std::vector<float> out(ch.q.size(), NAN);
  memory.attend(layer, call, ch.q.data(), ch.k.data(), ch.v.data(), out.data());
  return out;
}

std::vector<float> local_softmax(const WanConfig& c, const Chunk& ch) {
  std::vector<float> out(ch.q.size());
  AttentionParams p = packed_attention_params(ch.q.data(), ch.k.data(), ch.v.data(), out.data(), ch.tokens(), ch.tokens(),
                                              c.num_heads, c.head_dim());
  cpu::attention_forward(p);
  return out;
}

// The chunk-local softmax attention by the suite's double-precision oracle (tests/reference/).
std::vector<double> local_softmax_oracle(const WanConfig& c, const Chunk& ch) {
  testing::OracleAttentionArgs a;
  a.q = testing::OracleOperand::packed(ch.q.data(), c.num_heads, c.head_dim());
  a.k = testing::OracleOperand::packed(ch.k.data(), c.num_heads, c.head_dim());
  a.v = testing::OracleOperand::packed(ch.v.data(), c.num_heads, c.head_dim());
  a.heads = c.num_heads, a.head_dim = c.head_dim(), a.q_len = ch.tokens(), a.kv_len = ch.tokens();
  a.scale = 1.0 / std::sqrt(double(c.head_dim()));
  return testing::attention_oracle(a).o;
}

// The hybrid layer written out in double from papers.md §2.2 (RoPE reuses the tested CPU kernel;
// the local softmax is the oracle). Returns the output for `ch` given state S (updated in place if
// commit).
std::vector<double> reference_hybrid(const WanConfig& c, const HybridAttentionWeights& hy, const Chunk& ch,
                                     std::vector<double>& S, bool commit) {
  const int64_t n = ch.tokens(), H = c.num_heads, D = c.head_dim(), dim = c.dim;
  auto mapped = [&](const Tensor& phi, const std::vector<float>& in, bool rope_and_norm) {
    std::vector<float> out(in.size());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < D; ++i) {
          double acc = 0;
          for (int64_t j = 0; j < D; ++j) acc += double(phi.data<float>()[(h * D + i) * D + j]) * in[t * dim + h * D + j];
          out[t * dim + h * D + i] = static_cast<float>(acc);
        }
    if (rope_and_norm) cpu::rope_3d_forward(out.data(), dim, ch.frames, ch.height, ch.width, ch.frame_start, H, D);
    std::vector<double> result(out.begin(), out.end());
    if (rope_and_norm)
      for (int64_t r = 0; r < n * H; ++r) {
        double sum = 1e-6;
        for (int64_t i = 0; i < D; ++i) sum += result[r * D + i] * result[r * D + i];
        for (int64_t i = 0; i < D; ++i) result[r * D + i] /= std::sqrt(sum);
      }
    return result;
  };
  auto project = [&](const LinearWeights& w, int64_t t, int64_t h) {
    double acc = 0;
    for (int64_t i = 0; i < dim; ++i) acc += double(w.weight.data<float>()[h * dim + i]) * ch.x[t * dim + i];
    return acc;
  };
  const std::vector<double> qh = mapped(hy.phi_q, ch.q_normed, true);
  std::vector<double> out = local_softmax_oracle(c, ch);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const double gate = 1.0 / (1.0 + std::exp(-project(hy.gate_proj, t, h)));
      for (int64_t c2 = 0; c2 < D; ++c2) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += qh[t * dim + h * D + d] * S[(h * D + d) * D + c2];
        out[t * dim + h * D + c2] += gate * dot / std::sqrt(double(D));
      }
    }
  if (!commit) return out;
  const std::vector<double> kh = mapped(hy.phi_k, ch.k_normed, true), vh = mapped(hy.phi_v, ch.v, false);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t t = 0; t < n; ++t) {
      const double a = project(hy.a_proj, t, h) + hy.dt_bias.data<float>()[h];
      const double alpha = std::exp(-std::exp(double(hy.A_log.data<float>()[h])) * std::log1p(std::exp(a)));
      const double beta = 2.0 / (1.0 + std::exp(-project(hy.b_proj, t, h)));
      const double* k = &kh[t * dim + h * D];
      const double* v = &vh[t * dim + h * D];
      double* s = &S[h * D * D];
      std::vector<double> next(D * D);
      for (int64_t i = 0; i < D; ++i)
        for (int64_t j = 0; j < D; ++j) {
          double value = 0;  // (α (I − βkkᵀ) S)[i][j]
          for (int64_t m = 0; m < D; ++m) value += ((i == m) - beta * k[i] * k[m]) * s[m * D + j];
          next[i * D + j] = alpha * value + beta * k[i] * v[j];
        }
      std::copy(next.begin(), next.end(), s);
    }
  return out;
}

// max |actual − expected| / max |expected| in units of kHybridTol (<= 1: within); fails on NaN/Inf.
double relative_error(const std::vector<float>& actual, const std::vector<double>& expected) {
  EXPECT_EQ(actual.size(), expected.size());
  return testing::peak_relative_error(actual.data(), expected.data(), static_cast<int64_t>(expected.size())) / kHybridTol;
}

std::unique_ptr<Arl2HybridMemory> make_memory(const WanConfig& c, const WanWeights& w) {
  return std::make_unique<Arl2HybridMemory>(c, w, std::make_unique<DenseMemory>(c.num_layers, c.num_heads, c.head_dim()));
}

TEST(Arl2Hybrid, MatchesTheEquationOverSeveralChunks) {
  const WanConfig c = hybrid_config({0});
  const WanWeights w = random_wan_weights(c, 3);
  auto memory = make_memory(c, w);
  std::vector<double> S(static_cast<size_t>(c.num_heads * c.head_dim() * c.head_dim()), 0.0);
  for (int64_t chunk = 0; chunk < 4; ++chunk) {
    const Chunk ch = make_chunk(c, 2 * chunk, 40 + chunk);
    // Two denoising calls (read only), then the commit call.
    for (int pass = 0; pass < 3; ++pass) {
      const bool commit = pass == 2;
      const std::vector<float> out = attend(*memory, 0, ch, commit);
      const std::vector<double> expected = reference_hybrid(c, w.blocks[0].hybrid, ch, S, commit);
      EXPECT_LE(relative_error(out, expected), 1.0) << "chunk " << chunk << " pass " << pass;
    }
    const std::vector<float>& state = memory->state(0);
    EXPECT_LE(relative_error(state, S), 1.0) << "state after chunk " << chunk;
  }
  EXPECT_EQ(memory->committed_chunks(0), 4);
  // The check can fail: a chunk's output with the state of one chunk earlier is far off.
  auto fresh = make_memory(c, w);
  const Chunk ch = make_chunk(c, 0, 40);
  attend(*fresh, 0, ch, true);
  std::vector<double> S1(S.size(), 0.0);
  reference_hybrid(c, w.blocks[0].hybrid, ch, S1, true);
  const Chunk next = make_chunk(c, 2, 41);
  std::vector<double> S0(S.size(), 0.0);
  EXPECT_GT(relative_error(attend(*fresh, 0, next, false), reference_hybrid(c, w.blocks[0].hybrid, next, S0, false)), 10.0);
}

TEST(Arl2Hybrid, ClosedGateGivesChunkLocalSoftmaxExactly) {
  const WanConfig c = hybrid_config({0, 1});
  WanWeights w = random_wan_weights(c, 5);
  auto memory = make_memory(c, w);
  Chunk first = make_chunk(c, 0, 7);
  attend(*memory, 1, first, true);  // a non-trivial state
  double norm = 0;
  for (float s : memory->state(1)) norm += std::fabs(s);
  ASSERT_GT(norm, 0.0);
  // gate logits → −∞: x > 0 everywhere and W_gate = −1000 gives sigmoid = 0 in fp32.
  Chunk second = make_chunk(c, 2, 8);
  for (float& x : second.x) x = std::fabs(x) + 0.1f;
  const std::vector<float> open = attend(*memory, 1, second, false);
  Tensor closed = Tensor::zeros(w.blocks[1].hybrid.gate_proj.weight.shape());
  for (int64_t i = 0; i < closed.numel(); ++i) closed.data<float>()[i] = -1000.0f;
  w.blocks[1].hybrid.gate_proj.weight = closed;
  const std::vector<float> out = attend(*memory, 1, second, false);
  const std::vector<float> local = local_softmax(c, second);
  EXPECT_EQ(0, std::memcmp(out.data(), local.data(), out.size() * sizeof(float)));
  EXPECT_NE(0, std::memcmp(open.data(), local.data(), out.size() * sizeof(float)));  // the open gate adds memory
}

TEST(Arl2Hybrid, CommitCallReadsThePreUpdateStateAndOnlyCommitWrites) {
  const WanConfig c = hybrid_config({0});
  const WanWeights w = random_wan_weights(c, 9);
  auto memory = make_memory(c, w);
  attend(*memory, 0, make_chunk(c, 0, 1), true);
  const std::vector<float> before = memory->state(0);
  const Chunk ch = make_chunk(c, 2, 2);
  const std::vector<float> read = attend(*memory, 0, ch, false);
  EXPECT_EQ(memory->state(0), before) << "a denoising call must not touch the state";
  const std::vector<float> commit = attend(*memory, 0, ch, true);
  EXPECT_EQ(read, commit) << "the commit call's tokens must read the state from before the update";
  EXPECT_NE(memory->state(0), before);
}

TEST(Arl2Hybrid, StateBytesAreConstantOverAThousandChunks) {
  const WanConfig c = hybrid_config({0, 1});
  const WanWeights w = random_wan_weights(c, 11);
  auto memory = make_memory(c, w);
  const int64_t expected = 2 * c.num_heads * c.head_dim() * c.head_dim() * 4;
  EXPECT_EQ(memory->bytes(), expected);
  for (int64_t chunk = 0; chunk < 1000; ++chunk) {
    Chunk ch = make_chunk(c, 2 * chunk, 100 + chunk % 7);
    ch.frames = 1;  // 6 tokens per chunk keeps the test fast
    for (int64_t layer = 0; layer < 2; ++layer) attend(*memory, layer, ch, true);
    ASSERT_EQ(memory->bytes(), expected) << "chunk " << chunk;
  }
  for (float s : memory->state(0)) ASSERT_TRUE(std::isfinite(s));
  EXPECT_EQ(memory->cached_frames(0), 0);
}

TEST(Arl2Hybrid, NonHybridLayersGoToTheInnerPolicy) {
  const WanConfig c = hybrid_config({1});
  const WanWeights w = random_wan_weights(c, 13);
  auto memory = make_memory(c, w);
  EXPECT_FALSE(memory->wants_layer_inputs(0));
  EXPECT_TRUE(memory->wants_layer_inputs(1));
  Chunk ch = make_chunk(c, 0, 3);
  attend(*memory, 0, ch, true);
  EXPECT_EQ(memory->cached_frames(0), 2);  // dense inner policy holds the chunk
  EXPECT_EQ(memory->bytes(), 2 * ch.tokens() * c.dim * 4 + c.num_heads * c.head_dim() * c.head_dim() * 4);
  // A hybrid call without layer inputs is a clear error.
  MemoryCall bare{0, ch.frames, ch.height * ch.width, false};
  std::vector<float> out(ch.q.size());
  EXPECT_THROW(memory->attend(1, bare, ch.q.data(), ch.k.data(), ch.v.data(), out.data()), Error);
  // A model without hybrid layers cannot use the policy.
  const WanConfig plain = hybrid_config({});
  EXPECT_THROW(make_memory(plain, random_wan_weights(plain, 1)), Error);
}

}  // namespace
}  // namespace fastar
