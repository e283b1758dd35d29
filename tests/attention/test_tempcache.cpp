// TempCache against exact identities: the merge lemma, dense attention when nothing merges, the
// window policy when nothing merges, its invariants, collision resolution and the recall metric.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>

#include "fastar/attention/kv_policies.h"
#include "fastar/attention/tempcache_memory.h"
#include "fastar/core/error.h"
#include "reference/attention_oracle.h"
#include "test_util.h"

namespace fastar {
namespace {

using testing::kF32AbsTol;
using testing::kF32RelTol;

// A stream of calls for a memory policy: per chunk, q/k/v of [frames · tpf, heads · d].
struct Chunk {
  MemoryCall call;
  std::vector<float> q, k, v;
};

// Dense attention by the suite's oracle (tests/reference/): q [q_len, heads·d] over `keys`/`values`
// ([n, heads·d] each), per head.
testing::OracleAttentionResult dense_attention(const float* q, int64_t q_len, const std::vector<float>& keys,
                                               const std::vector<float>& values, int64_t heads, int64_t d) {
  testing::OracleAttentionArgs a;
  a.q = testing::OracleOperand::packed(q, heads, d);
  a.k = testing::OracleOperand::packed(keys.data(), heads, d);
  a.v = testing::OracleOperand::packed(values.data(), heads, d);
  a.heads = heads, a.head_dim = d, a.q_len = q_len, a.kv_len = static_cast<int64_t>(keys.size()) / (heads * d);
  a.scale = 1.0 / std::sqrt(double(d));
  return testing::attention_oracle(a);
}

TempCacheOptions options_with(AnnBackend ann, TempCacheMatch match, float threshold) {
  TempCacheOptions o;
  o.ann = ann;
  o.match = match;
  o.threshold = threshold;
  return o;
}

// Lemma 5.1: every frame repeats the same keys (values differ), so each token's keys form one group
// of identical keys, and attention over representatives + log m equals dense attention.
TEST(TempCache, IdenticalKeysAcrossFramesEqualDenseAttention) {
  const int64_t heads = 2, d = 16, tpf = 6, frames_per_chunk = 2, chunks = 4, row = heads * d;
  const std::vector<float> frame_keys = testing::random_normal(tpf * row, 1);
  for (AnnBackend ann : {AnnBackend::lsh, AnnBackend::quant}) {
    for (TempCacheMatch match : {TempCacheMatch::key, TempCacheMatch::query}) {
      TempCacheMemory memory(1, heads, d, options_with(ann, match, 0.9f));
      std::vector<float> all_k, all_v;
      for (int64_t c = 0; c <= chunks; ++c) {
        const int64_t tokens = frames_per_chunk * tpf;
        MemoryCall call{c * frames_per_chunk, frames_per_chunk, tpf, /*commit=*/c < chunks};
        std::vector<float> k;
        for (int64_t f = 0; f < frames_per_chunk; ++f) k.insert(k.end(), frame_keys.begin(), frame_keys.end());
        const std::vector<float> q = testing::random_normal(tokens * row, 100 + c, 0.7f);
        const std::vector<float> v = testing::random_normal(tokens * row, 200 + c);
        std::vector<float> out(static_cast<size_t>(tokens * row));
        memory.attend(0, call, q.data(), k.data(), v.data(), out.data());
        std::vector<float> keys = all_k, values = all_v;
        keys.insert(keys.end(), k.begin(), k.end());
        values.insert(values.end(), v.begin(), v.end());
        const testing::OracleAttentionResult want = dense_attention(q.data(), tokens, keys, values, heads, d);
        EXPECT_LE(testing::attention_scaled_error(out.data(), want, kF32RelTol, kF32AbsTol), 1.0)
            << ann_backend_name(ann) << " " << tempcache_match_name(match) << " chunk " << c;
        all_k = keys;
        all_v = values;
      }
      const TempCacheStats stats = memory.stats();
      EXPECT_EQ(stats.layers[0].dense_tokens, chunks * frames_per_chunk * tpf);
      if (match == TempCacheMatch::key) {  // the key search always finds the identical key
        EXPECT_DOUBLE_EQ(stats.layers[0].cached_tokens, double(tpf)) << ann_backend_name(ann);
        EXPECT_DOUBLE_EQ(stats.total.density, 1.0 / (chunks * frames_per_chunk));
        EXPECT_EQ(stats.total.merges, (chunks * frames_per_chunk - 1) * tpf * heads);
      }
    }
  }
}

// Nothing merges above threshold 1: TempCache is dense attention, and with a window it is the
// window policy, bit for bit.
TEST(TempCache, ThresholdAboveOneIsDenseAndComposesWithTheWindowPolicy) {
  const int64_t layers = 2, heads = 2, d = 16, tpf = 5, fpc = 2, row = heads * d;
  for (AnnBackend ann : {AnnBackend::lsh, AnnBackend::quant}) {
    TempCacheOptions o = options_with(ann, TempCacheMatch::key, 1.0001f);
    TempCacheMemory tc(layers, heads, d, o);
    o.window = 3;
    o.sink = 1;
    TempCacheMemory tc_window(layers, heads, d, o);
    DenseMemory dense(layers, heads, d);
    WindowMemory window(layers, heads, d, 3, 1);
    for (int64_t c = 0; c < 6; ++c) {
      const int64_t tokens = fpc * tpf;
      for (int pass = 0; pass < 2; ++pass) {  // a read-only pass, then the commit
        MemoryCall call{c * fpc, fpc, tpf, pass == 1};
        for (int64_t l = 0; l < layers; ++l) {
          const uint64_t seed = 1000 * c + 10 * l + pass;
          const auto q = testing::random_normal(tokens * row, seed), k = testing::random_normal(tokens * row, seed + 1),
                     v = testing::random_normal(tokens * row, seed + 2);
          std::vector<float> a(tokens * row), b(tokens * row), e(tokens * row), f(tokens * row);
          dense.attend(l, call, q.data(), k.data(), v.data(), a.data());
          tc.attend(l, call, q.data(), k.data(), v.data(), b.data());
          window.attend(l, call, q.data(), k.data(), v.data(), e.data());
          tc_window.attend(l, call, q.data(), k.data(), v.data(), f.data());
          ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "chunk " << c << " layer " << l;
          ASSERT_EQ(0, std::memcmp(e.data(), f.data(), e.size() * sizeof(float))) << "chunk " << c << " layer " << l;
        }
      }
      EXPECT_EQ(tc_window.cached_frames(0), window.cached_frames(0));
    }
    EXPECT_EQ(tc.stats().total.merges, 0);
    EXPECT_DOUBLE_EQ(tc.stats().total.density, 1.0);
    EXPECT_DOUBLE_EQ(tc_window.stats().layers[1].cached_tokens, 4.0 * tpf);  // 3 window frames + 1 sink frame
  }
}

// Tokens whose keys drift slowly across frames, with some replaced by new content each frame.
struct DriftingStream {
  int64_t tpf, d;
  std::vector<float> base;  // [tpf, d]
  std::mt19937_64 rng;
  DriftingStream(int64_t tokens, int64_t dim, uint64_t seed)
      : tpf(tokens), d(dim), base(testing::random_normal(tokens * dim, seed)), rng(seed) {}
  // Next frame's keys [tpf, d].
  std::vector<float> next(uint64_t frame_seed) {
    std::vector<float> noise = testing::random_normal(tpf * d, frame_seed, 0.12f);
    std::vector<float> fresh = testing::random_normal(tpf * d, frame_seed + 7);
    std::vector<float> k(static_cast<size_t>(tpf * d));
    for (int64_t t = 0; t < tpf; ++t) {
      const bool replace = rng() % 10 == 0;
      for (int64_t j = 0; j < d; ++j) {
        float& b = base[t * d + j];
        if (replace) b = fresh[t * d + j];
        k[t * d + j] = b + noise[t * d + j];
      }
    }
    return k;
  }
};

// Invariants over a long stream with both bounds on: counts add up, representatives are the newest
// member keys, values are member means, bounds hold, one token per group per frame.
TEST(TempCache, InvariantsHoldUnderMergingAndBothBounds) {
  const int64_t d = 16, tpf = 20, frames = 30, window = 6, sink = 1, max_tokens = 70;
  for (AnnBackend ann : {AnnBackend::lsh, AnnBackend::quant}) {
    for (TempCacheMatch match : {TempCacheMatch::key, TempCacheMatch::query}) {
      TempCacheOptions o = options_with(ann, match, 0.9f);
      o.window = window;
      o.sink = sink;
      o.max_tokens = max_tokens;
      LshParams lp;
      lp.dim = d;
      lp.tables = o.lsh_tables;
      lp.bits = o.lsh_bits;
      LshHasher hasher(lp);
      TempCacheHead head(d, o, &hasher);
      DriftingStream stream(tpf, d, 3);
      std::map<int64_t, std::vector<std::pair<std::vector<float>, std::vector<float>>>> members;  // id -> (k, v)
      std::map<int64_t, int64_t> first_frame;
      int64_t appended = 0;
      for (int64_t f = 0; f < frames; ++f) {
        const std::vector<float> k = stream.next(500 + f);
        const std::vector<float> v = testing::random_normal(tpf * d, 900 + f);
        const std::vector<float>& q = k;  // query matching: a token's query is most similar to its own key
        std::vector<int64_t> groups;
        const int64_t before = head.size();
        head.commit_frame(k.data(), v.data(), q.data(), d, tpf, f, f < sink, &groups);
        appended += head.size() - before;
        ASSERT_EQ(std::set<int64_t>(groups.begin(), groups.end()).size(), size_t(tpf)) << "two tokens joined one group";
        for (int64_t t = 0; t < tpf; ++t) {
          members[groups[t]].push_back({{k.begin() + t * d, k.begin() + (t + 1) * d}, {v.begin() + t * d, v.begin() + (t + 1) * d}});
          first_frame.emplace(groups[t], f);
        }
        if (f % 2 == 1) {  // chunks of two frames: bound after each commit
          head.evict(f);
          ASSERT_LE(head.size(), max_tokens);
        }
        // Invariants.
        int64_t total = 0;
        std::set<int64_t> ids;
        for (int64_t s = 0; s < head.size(); ++s) {
          const int64_t id = head.group_ids()[s];
          ASSERT_TRUE(ids.insert(id).second);
          const auto& m = members.at(id);
          ASSERT_EQ(head.counts()[s], int64_t(m.size()));
          total += head.counts()[s];
          EXPECT_EQ(0, std::memcmp(head.keys() + s * d, m.back().first.data(), d * sizeof(float))) << "not the newest key";
          EXPECT_FLOAT_EQ(head.log_counts()[s], float(std::log(double(m.size()))));
          for (int64_t j = 0; j < d; ++j) {
            double mean = 0;
            for (const auto& kv : m) mean += kv.second[j];
            mean /= double(m.size());
            EXPECT_NEAR(head.values()[s * d + j], mean, 1e-5 * (1 + std::fabs(mean)));
          }
          if (f % 2 == 1 && first_frame.at(id) >= sink) EXPECT_GT(head.rep_frames()[s], f - window) << "outside the window";
        }
        ASSERT_EQ(total + head.tokens_evicted(), head.tokens_seen());
        ASSERT_EQ(head.tokens_seen(), (f + 1) * tpf);
      }
      // Not vacuous: the stream both merged and appended, and the bounds evicted.
      EXPECT_GT(head.merges(), frames * tpf / 2) << ann_backend_name(ann) << " " << tempcache_match_name(match);
      EXPECT_GT(appended, 2 * tpf);
      EXPECT_GT(head.tokens_evicted(), 0);
    }
  }
}

// Several keys of one frame matching one representative: the most similar merges (ties: the lowest
// token index), the others start their own groups.
TEST(TempCache, CollisionsResolveDeterministically) {
  const int64_t d = 4;
  for (AnnBackend ann : {AnnBackend::lsh, AnnBackend::quant}) {
    TempCacheOptions o = options_with(ann, TempCacheMatch::key, 0.5f);
    o.lsh_tables = 1;
    o.lsh_bits = 1;  // with multi-probe every representative is a candidate
    LshParams lp;
    lp.dim = d;
    lp.tables = 1;
    lp.bits = 1;
    LshHasher hasher(lp);
    TempCacheHead head(d, o, &hasher);
    const std::vector<float> a = {1, 0, 0, 0}, va = {1, 1, 1, 1};
    head.commit_frame(a.data(), va.data(), nullptr, d, 1, 0, false, nullptr);
    // b1 less similar to a than b2; b3 orthogonal.
    const std::vector<float> b = {1, 0.2f, 0, 0, 1, 0.05f, 0, 0, 0, 0, 1, 0}, vb = {3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7};
    std::vector<int64_t> groups;
    head.commit_frame(b.data(), vb.data(), nullptr, d, 3, 1, false, &groups);
    EXPECT_EQ(groups, (std::vector<int64_t>{1, 0, 2})) << ann_backend_name(ann);
    ASSERT_EQ(head.size(), 3);
    EXPECT_EQ(head.counts(), (std::vector<int64_t>{2, 1, 1}));
    EXPECT_EQ(head.keys()[1], 0.05f);    // slot 0's representative is b2
    EXPECT_EQ(head.values()[0], 3.0f);   // mean of 1 and 5
    // Equal similarity (mirror images): the lower token index wins.
    const std::vector<float> c = {0, 0, 1, 0.3f, 0, 0, 1, -0.3f}, vc(8, 0.0f);
    head.commit_frame(c.data(), vc.data(), nullptr, d, 2, 2, false, &groups);
    EXPECT_EQ(groups, (std::vector<int64_t>{2, 3})) << ann_backend_name(ann);
  }
}

// The recall metric by hand: two keys merge into one group, then one query with one key of its own.
TEST(TempCache, RecallDiagnosticMatchesAHandComputation) {
  const int64_t d = 4;
  TempCacheOptions o = options_with(AnnBackend::quant, TempCacheMatch::key, 0.9f);
  o.recall = true;
  TempCacheMemory memory(1, 1, d, o);
  const std::vector<float> k1 = {1, 0.1f, 0, 0}, k2 = {1, 0, 0.1f, 0}, v1 = {1, 0, 0, 0}, v2 = {0, 1, 0, 0};
  std::vector<float> out(d);
  memory.attend(0, MemoryCall{0, 1, 1, true}, k1.data(), k1.data(), v1.data(), out.data());
  memory.attend(0, MemoryCall{1, 1, 1, true}, k2.data(), k2.data(), v2.data(), out.data());
  ASSERT_EQ(memory.head(0, 0).size(), 1);  // cos(k1, k2) = 1/1.01 ≥ 0.9: merged
  const std::vector<float> q = {2, 3, -1, 0.5f}, kc = {0, 0, 0, 1}, vc = {0, 0, 1, 0};
  memory.attend(0, MemoryCall{2, 1, 1, false}, q.data(), kc.data(), vc.data(), out.data());

  auto logit = [&](const std::vector<float>& k) {
    double s = 0;
    for (int j = 0; j < d; ++j) s += double(q[j]) * k[j];
    return s / 2.0;  // 1/√4
  };
  const double e1 = std::exp(logit(k1)), e2 = std::exp(logit(k2)), ec = std::exp(logit(kc));
  const double dense_group = (e1 + e2) / (e1 + e2 + ec), dense_c = ec / (e1 + e2 + ec);
  const double eg = 2.0 * std::exp(logit(k2));  // representative k2 with +log 2
  const double cache_group = eg / (eg + ec), cache_c = ec / (eg + ec);
  const double third = std::min(dense_group, cache_group) + std::min(dense_c, cache_c);
  ASSERT_LT(third, 0.999);  // the example is not trivial
  const TempCacheStats stats = memory.stats();
  EXPECT_EQ(stats.layers[0].recall_samples, 3);
  // Calls 1 and 2 see a cache that equals the dense one (recall 1).
  EXPECT_NEAR(stats.layers[0].recall, (2.0 + third) / 3.0, 1e-9);
  EXPECT_NEAR(stats.total.recall, stats.layers[0].recall, 1e-15);
}

TEST(TempCache, RecallIsOneWithoutMergesAndDropsWithEviction) {
  const int64_t heads = 2, d = 8, tpf = 4, row = heads * d;
  for (int64_t window : {int64_t{-1}, int64_t{1}}) {
    TempCacheOptions o = options_with(AnnBackend::lsh, TempCacheMatch::key, 2.0f);
    o.recall = true;
    o.window = window;
    TempCacheMemory memory(1, heads, d, o);
    for (int64_t f = 0; f < 5; ++f) {
      const auto q = testing::random_normal(tpf * row, f), k = testing::random_normal(tpf * row, f + 50),
                 v = testing::random_normal(tpf * row, f + 99);
      std::vector<float> out(tpf * row);
      memory.attend(0, MemoryCall{f, 1, tpf, true}, q.data(), k.data(), v.data(), out.data());
    }
    const TempCacheStats s = memory.stats();
    EXPECT_EQ(s.total.recall_samples, 5 * heads * tpf);
    if (window < 0) {
      EXPECT_NEAR(s.total.recall, 1.0, 1e-12);
    } else {
      EXPECT_LT(s.total.recall, 0.95);
      EXPECT_GT(s.total.recall, 0.0);
    }
  }
}

TEST(TempCache, BadOptionsAreErrors) {
  TempCacheOptions o;
  o.threshold = NAN;
  EXPECT_THROW(o.validate(), Error);
  o = TempCacheOptions{};
  o.threshold = -1.5f;
  EXPECT_THROW(o.validate(), Error);
  o = TempCacheOptions{};
  o.window = -2;
  EXPECT_THROW(o.validate(), Error);
  o = TempCacheOptions{};
  o.sink = 2;  // no bound to pin against
  EXPECT_THROW(o.validate(), Error);
  o = TempCacheOptions{};
  o.max_tokens = -1;
  EXPECT_THROW(o.validate(), Error);
  o = TempCacheOptions{};
  o.lsh_multi_probe = 2;
  EXPECT_THROW(TempCacheMemory(1, 1, 8, o), Error);
}

TEST(TempCache, StatisticsJsonIsWrittenAtomically) {
  TempCacheMemory memory(2, 1, 8, TempCacheOptions{});
  const auto x = testing::random_normal(3 * 8, 1);
  std::vector<float> out(3 * 8);
  for (int64_t l = 0; l < 2; ++l) memory.attend(l, MemoryCall{0, 1, 3, true}, x.data(), x.data(), x.data(), out.data());
  const std::string dir = testing::make_temp_dir("tempcache_json");
  write_tempcache_stats_json(dir + "/stats.json", memory.stats(), memory.options());
  std::ifstream file(dir + "/stats.json");
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"layers\""), std::string::npos);
  EXPECT_NE(text.find("\"density\": 1.0"), std::string::npos);
  const auto files = std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator());
  EXPECT_EQ(files, 1);  // no temp file left
  EXPECT_THROW(write_tempcache_stats_json(dir + "/missing/stats.json", memory.stats(), memory.options()), Error);
  EXPECT_NE(format_tempcache_summary(memory.stats()).find("KV density 100.0%"), std::string::npos);
}

}  // namespace
}  // namespace fastar
