// Standalone GPU check of TempCache's GPU commit (CudaTempCacheLayer, kernels/cuda/tempcache_merge.h)
// against the CPU reference TempCacheMemory (not CTest: CI has no GPU). Built by tests/cuda_checks.cmake
// as cuda_tempcache_check.
//
//   cuda_tempcache_check           correctness: per case and chunk, the GPU groups (slots, keys, counts,
//                                  representative frames, bias row) against TempCacheMemory's, the mean
//                                  values within tolerance, the biased attention over the GPU cache
//                                  against TempCacheMemory::attend, invariants; one PASS/FAIL line per
//                                  case, exit 1 on any FAIL
//   cuda_tempcache_check --bench   commit time per layer at Wan2.1-1.3B shapes (12 heads × 128, 1560
//                                  tokens per frame, 3 frames per chunk), cache of ~20k representatives
//                                  per head, LSH and int8, 0% and 100% merges; random keys and crowded keys
//                                  (a shared direction + noise, like random-weight Wan keys), LSH with and
//                                  without the per-bucket candidate cap
//
// Keys, values and queries are bf16-exact floats, so the CPU reference and the GPU see the same numbers.
// Cases are built with similarity margins far from the threshold (and from ties), so every merge decision
// must be identical; what remains different is the fp32 vs double similarity (irrelevant at these
// margins), the bf16 rounding of the mean values and of the attention.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fastar/attention/cuda/tempcache_cuda.h"
#include "fastar/attention/tempcache_memory.h"
#include "fastar/core/dtype.h"
#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"
#include "fastar/kernels/cuda/flash_attention.h"
#include "bf16_data.h"
#include "check_util.h"

namespace {

using fastar::AnnBackend;
using fastar::TempCacheOptions;
using fastar::cuda::CudaTempCacheLayer;

// Mean values: the GPU keeps float(v) + float(v_lo) (~16 significant bits) against the CPU's fp32 running
// mean: |Δ| <= kMeanTol · max|v|. The bf16 copy attention reads adds bf16's half ulp (2^-9 relative).
constexpr double kMeanTol = 1e-4;
constexpr double kMeanBf16Tol = 4e-3;
// Attention output: bf16 K/V/P/O on the GPU vs fp32 on the CPU, |Δ| <= kAttnTol · max|v|.
constexpr double kAttnTol = 1e-2;

float bf(float x) { return fastar::round_to_bf16(x); }

// Unit vector with a given cosine to the unit vector c: c·cosθ + u·sinθ with u ⊥ c random.
void rotate_from(const float* c, double cos_theta, int64_t d, std::mt19937& rng, float* out) {
  std::normal_distribution<double> normal;
  std::vector<double> u(static_cast<size_t>(d));
  double dot = 0.0, nn = 0.0;
  for (int64_t j = 0; j < d; ++j) dot += (u[static_cast<size_t>(j)] = normal(rng)) * c[j];
  for (int64_t j = 0; j < d; ++j) nn += std::pow(u[static_cast<size_t>(j)] -= dot * c[j], 2);
  const double s = std::sqrt(std::max(0.0, 1.0 - cos_theta * cos_theta)) / std::sqrt(nn);
  for (int64_t j = 0; j < d; ++j) out[j] = static_cast<float>(c[j] * cos_theta + u[static_cast<size_t>(j)] * s);
}

void random_unit(int64_t d, std::mt19937& rng, float* out) {
  std::normal_distribution<double> normal;
  std::vector<double> x(static_cast<size_t>(d));
  double nn = 0.0;
  for (double& e : x) nn += (e = normal(rng)) * e;
  for (int64_t j = 0; j < d; ++j) out[j] = static_cast<float>(x[static_cast<size_t>(j)] / std::sqrt(nn));
}

enum class Data {
  duplicates,  // every frame repeats frame 0's keys exactly: one group per token, m = frames
  random,      // independent random keys: no merges
  clustered,   // per token a cluster centre; keys at cosine 0.995 to it (merge), ~13% of tokens a fresh
               // random key (no merge), and every 8th token a second, noisier key (cosine 0.955) of the
               // previous token's centre (collision: it loses and starts a group); 10% of centres are
               // replaced each frame (their groups age out of a window)
  crowded,     // clustered keys sharing one strong direction per head (key = √0.8·u + √0.2·clustered unit,
               // unrelated keys at cosine ≈ 0.8, like random-weight Wan keys): LSH buckets overflow a small
               // cap; members at cosine ≈ 0.999, rivals ≈ 0.99, unrelated ≈ 0.8 (far from 0.9)
};

struct Case {
  std::string name;
  Data data;
  int64_t heads, head_dim, tokens_per_frame, chunk_frames, chunks;
  AnnBackend ann;
  int64_t window = -1, sink = 0;
  float threshold = 0.9f;
  int64_t lsh_cap = -1;  // TempCacheOptions::lsh_bucket_cap; -1 = the default
};

// keys/values/queries of `frames` frames: [frames · tokens, heads · head_dim], bf16-exact.
struct Stream {
  std::vector<float> k, v, q;
};

Stream make_stream(const Case& c, uint64_t seed) {
  const int64_t frames = c.chunk_frames * c.chunks, n = c.tokens_per_frame, h = c.heads, d = c.head_dim;
  const int64_t row = h * d;
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  Stream s;
  s.k.resize(static_cast<size_t>(frames * n * row));
  s.v.resize(s.k.size());
  s.q.resize(s.k.size());
  for (float& x : s.v) x = bf(normal(rng));
  for (float& x : s.q) x = bf(normal(rng) * 0.5f);
  std::vector<float> centre(static_cast<size_t>(n * row)), unit(static_cast<size_t>(d));
  for (int64_t t = 0; t < n * h; ++t) random_unit(d, rng, centre.data() + t * d);
  std::vector<float> shared(static_cast<size_t>(row));  // crowded: one direction per head
  for (int64_t hh = 0; hh < h; ++hh) random_unit(d, rng, shared.data() + hh * d);
  const bool clustered = c.data == Data::clustered || c.data == Data::crowded;
  for (int64_t f = 0; f < frames; ++f) {
    if (clustered && f > 0)
      for (int64_t t = 0; t < n * h; ++t)
        if (uni(rng) < 0.10f) random_unit(d, rng, centre.data() + t * d);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t hh = 0; hh < h; ++hh) {
        float* out = s.k.data() + ((f * n + t) * h + hh) * d;
        const float* ct = centre.data() + (t * h + hh) * d;
        const float scale = 1.0f + 0.5f * static_cast<float>(hh);  // heads of different key norms
        switch (c.data) {
          case Data::duplicates:
            if (f == 0) {
              random_unit(d, rng, unit.data());
              for (int64_t j = 0; j < d; ++j) out[j] = bf(unit[static_cast<size_t>(j)] * 3.0f * scale);
            } else {
              std::memcpy(out, s.k.data() + (t * h + hh) * d, static_cast<size_t>(d) * sizeof(float));
            }
            break;
          case Data::random:
            random_unit(d, rng, unit.data());
            for (int64_t j = 0; j < d; ++j) out[j] = bf(unit[static_cast<size_t>(j)] * 3.0f * scale);
            break;
          case Data::clustered:
          case Data::crowded: {
            const bool rival = t % 8 == 7;  // rivals token t − 1's centre
            // Token t − 1 of a rival is never fresh: the rival always meets the clearly closer member and
            // loses the collision (else it would join the group and leave near-ties behind).
            const bool fresh = !rival && t % 8 != 6 && uni(rng) < 0.15f;
            if (fresh) {
              random_unit(d, rng, unit.data());
            } else if (rival) {
              rotate_from(centre.data() + ((t - 1) * h + hh) * d, 0.955, d, rng, unit.data());
            } else {
              rotate_from(ct, 0.995, d, rng, unit.data());
            }
            if (c.data == Data::crowded) {
              const float* u = shared.data() + hh * d;
              double nn = 0.0;
              for (int64_t j = 0; j < d; ++j) {
                unit[static_cast<size_t>(j)] = std::sqrt(0.8f) * u[j] + std::sqrt(0.2f) * unit[static_cast<size_t>(j)];
                nn += double(unit[static_cast<size_t>(j)]) * unit[static_cast<size_t>(j)];
              }
              for (float& x : unit) x = static_cast<float>(x / std::sqrt(nn));
            }
            for (int64_t j = 0; j < d; ++j) out[j] = bf(unit[static_cast<size_t>(j)] * 3.0f * scale);
            break;
          }
        }
      }
    }
  }
  return s;
}

struct Result {
  bool ok = true;
  std::string why;
  void fail(const std::string& message) {
    if (ok) why = message;
    ok = false;
  }
};

// GPU biased attention of the chunk's queries over [cache + staged chunk] (bf16 out, as float).
std::vector<float> gpu_attention(const CudaTempCacheLayer& layer, const std::vector<float>& q_chunk, int64_t tokens,
                                 int64_t heads, int64_t d, cudaStream_t stream) {
  const std::vector<uint16_t> qb = to_bf16(q_chunk);
  uint16_t *q = nullptr, *o = nullptr;
  CHECK_CUDA(cudaMalloc(&q, qb.size() * 2));
  CHECK_CUDA(cudaMalloc(&o, qb.size() * 2));
  CHECK_CUDA(cudaMemcpy(q, qb.data(), qb.size() * 2, cudaMemcpyHostToDevice));
  fastar::AttentionParams p =
      fastar::packed_attention_params(q, layer.k(), layer.v(), o, tokens, layer.kv_len(tokens), heads, d);
  p.key_bias = layer.key_bias();
  p.key_bias_head_stride = layer.key_bias_head_stride();
  CHECK_CUDA(fastar::cuda::attention_forward_bf16(p, stream));
  CHECK_CUDA(cudaStreamSynchronize(stream));
  std::vector<uint16_t> ob(qb.size());
  CHECK_CUDA(cudaMemcpy(ob.data(), o, ob.size() * 2, cudaMemcpyDeviceToHost));
  cudaFree(q);
  cudaFree(o);
  std::vector<float> out(ob.size());
  for (size_t i = 0; i < ob.size(); ++i) out[i] = fastar::bf16_to_f32(ob[i]);
  return out;
}

Result run_case(const Case& c) {
  Result r;
  const int64_t n = c.tokens_per_frame, h = c.heads, d = c.head_dim, row = h * d;
  const int64_t chunk_tokens = c.chunk_frames * n;
  const int64_t total_frames = c.chunk_frames * c.chunks;
  TempCacheOptions options;
  options.threshold = c.threshold;
  options.ann = c.ann;
  options.window = c.window;
  if (c.lsh_cap >= 0) options.lsh_bucket_cap = c.lsh_cap;
  options.sink = c.sink;
  options.seed = 7;
  fastar::TempCacheMemory cpu(1, h, d, options);
  CudaTempCacheLayer gpu(h, d, n, /*capacity_tokens=*/total_frames * n, chunk_tokens, options);
  const Stream s = make_stream(c, 1234 + static_cast<uint64_t>(c.data));
  double vmax = 0.0;
  for (float x : s.v) vmax = std::max(vmax, static_cast<double>(std::fabs(x)));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  char buf[512];
  for (int64_t chunk = 0; chunk < c.chunks && r.ok; ++chunk) {
    const int64_t first = chunk * c.chunk_frames;
    const size_t off = static_cast<size_t>(first * n * row), len = static_cast<size_t>(chunk_tokens * row);
    const std::vector<float> kc(s.k.begin() + off, s.k.begin() + off + len);
    const std::vector<float> vc(s.v.begin() + off, s.v.begin() + off + len);
    const std::vector<float> qc(s.q.begin() + off, s.q.begin() + off + len);
    // GPU: stage, attend, commit. CPU: attend (+ commit) in one call.
    const std::vector<uint16_t> kb = to_bf16(kc), vb = to_bf16(vc);
    CHECK_CUDA(cudaMemcpy(gpu.stage_k(), kb.data(), kb.size() * 2, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(gpu.stage_v(), vb.data(), vb.size() * 2, cudaMemcpyHostToDevice));
    const std::vector<float> out_gpu = gpu_attention(gpu, qc, chunk_tokens, h, d, stream);
    std::vector<float> out_cpu(len);
    fastar::MemoryCall call;
    call.frame_start = first;
    call.num_frames = c.chunk_frames;
    call.tokens_per_frame = n;
    call.commit = true;
    cpu.attend(0, call, qc.data(), kc.data(), vc.data(), out_cpu.data());
    gpu.commit(c.chunk_frames, first, stream);

    double attn_err = 0.0;
    for (size_t i = 0; i < len; ++i) attn_err = std::max(attn_err, std::fabs(static_cast<double>(out_gpu[i]) - out_cpu[i]));
    if (attn_err > kAttnTol * vmax) {
      std::snprintf(buf, sizeof buf, "chunk %lld: attention |Δ| %.3g > %.3g", static_cast<long long>(chunk), attn_err,
                    kAttnTol * vmax);
      r.fail(buf);
    }
    // Groups, head by head.
    const int64_t newest = first + c.chunk_frames - 1;
    const int64_t max_count = gpu.cached_rows();
    for (int64_t hh = 0; hh < h && r.ok; ++hh) {
      const fastar::TempCacheHead& ref = cpu.head(0, hh);
      const fastar::cuda::TempCacheHeadSnapshot got = gpu.download_head(hh);
      const int64_t size = static_cast<int64_t>(got.counts.size());
      if (size != ref.size()) {
        std::snprintf(buf, sizeof buf, "chunk %lld head %lld: %lld groups, CPU %lld", static_cast<long long>(chunk),
                      static_cast<long long>(hh), static_cast<long long>(size), static_cast<long long>(ref.size()));
        r.fail(buf);
        break;
      }
      double mean_err = 0.0, bf16_err = 0.0;
      for (int64_t g = 0; g < size; ++g) {
        if (got.counts[g] != ref.counts()[g] || got.rep_frames[g] != ref.rep_frames()[g] ||
            std::memcmp(got.keys.data() + g * d, ref.keys() + g * d, static_cast<size_t>(d) * sizeof(float)) != 0) {
          std::snprintf(buf, sizeof buf, "chunk %lld head %lld slot %lld: count %d/%lld, frame %d/%lld or key differ",
                        static_cast<long long>(chunk), static_cast<long long>(hh), static_cast<long long>(g),
                        got.counts[g], static_cast<long long>(ref.counts()[g]), got.rep_frames[g],
                        static_cast<long long>(ref.rep_frames()[g]));
          r.fail(buf);
          break;
        }
        for (int64_t j = 0; j < d; ++j) {
          const double want = ref.values()[g * d + j];
          mean_err = std::max(mean_err, std::fabs(got.values_fp[g * d + j] - want));
          bf16_err = std::max(bf16_err, std::fabs(got.values[g * d + j] - want));
        }
        const double log_m = std::log(static_cast<double>(got.counts[g]));
        if (std::fabs(got.bias[g] - log_m) > 1e-6) r.fail("bias row: log m wrong");
        // Bound: every representative is inside the window or pinned.
        if (c.window >= 0 && !got.pinned[g] && got.rep_frames[g] < newest - c.window + 1) r.fail("window bound violated");
      }
      for (int64_t j = size; j < max_count + chunk_tokens; ++j) {
        const float want = j < max_count ? -INFINITY : 0.0f;
        if (got.bias[j] != want) {
          r.fail("bias row: padding/staged rows wrong");
          break;
        }
      }
      if (mean_err > kMeanTol * vmax || bf16_err > kMeanBf16Tol * vmax) {
        std::snprintf(buf, sizeof buf, "head %lld: mean values |Δ| %.3g (bf16 copy %.3g), max|v| %.3g",
                      static_cast<long long>(hh), mean_err, bf16_err, vmax);
        r.fail(buf);
      }
    }
    // Invariants: counts + evicted members = tokens seen, for all heads together.
    int64_t members = gpu.tokens_evicted();
    for (int64_t hh = 0; hh < h; ++hh) {
      const fastar::cuda::TempCacheHeadSnapshot got = gpu.download_head(hh);
      for (int32_t m : got.counts) members += m;
    }
    if (members != h * (newest + 1) * n) r.fail("counts + evicted members != tokens seen");
    if (gpu.tokens_seen() != (newest + 1) * n) r.fail("tokens_seen wrong");
    const fastar::TempCacheStats cs = cpu.stats();
    if (gpu.merges() != cs.total.merges) {
      std::snprintf(buf, sizeof buf, "merges %lld, CPU %lld", static_cast<long long>(gpu.merges()),
                    static_cast<long long>(cs.total.merges));
      r.fail(buf);
    }
  }
  // Expected outcomes of the data kinds, beyond agreement with the CPU.
  if (r.ok && c.window < 0) {
    const int64_t frames = total_frames;
    for (int64_t hh = 0; hh < h; ++hh) {
      const int32_t size = gpu.counts()[static_cast<size_t>(hh)];
      if (c.data == Data::duplicates && size != n) r.fail("duplicates: groups != tokens per frame");
      if (c.data == Data::random && size != frames * n) r.fail("random keys merged");
    }
    if ((c.data == Data::clustered || c.data == Data::crowded) && gpu.merges() == 0)
      r.fail("clustered: nothing merged (the case tests nothing)");
  }
  CHECK_CUDA(cudaStreamDestroy(stream));
  std::printf("%-4s %-44s merges %7lld  reps/head %8.1f  %s\n", r.ok ? "PASS" : "FAIL", c.name.c_str(),
              static_cast<long long>(gpu.merges()), gpu.cached_tokens(), r.why.c_str());
  return r;
}

bool check_capacity_error() {
  TempCacheOptions options;
  options.ann = AnnBackend::lsh;
  CudaTempCacheLayer layer(2, 64, 64, /*capacity_tokens=*/100, /*chunk_tokens=*/128, options);
  std::vector<float> k(128 * 2 * 64);
  std::mt19937 rng(5);
  for (int64_t t = 0; t < 128 * 2; ++t) random_unit(64, rng, k.data() + t * 64);
  for (float& x : k) x = bf(x);
  const std::vector<uint16_t> kb = to_bf16(k);
  CHECK_CUDA(cudaMemcpy(layer.stage_k(), kb.data(), kb.size() * 2, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(layer.stage_v(), kb.data(), kb.size() * 2, cudaMemcpyHostToDevice));
  bool thrown = false;
  std::string message;
  try {
    layer.commit(2, 0, nullptr);
  } catch (const fastar::Error& e) {
    thrown = true;
    message = e.what();
  }
  const bool ok = thrown && message.find("capacity") != std::string::npos;
  std::printf("%-4s %-44s %s\n", ok ? "PASS" : "FAIL", "capacity overflow -> fastar::Error", message.c_str());
  return ok;
}

int run_checks() {
  std::vector<Case> cases;
  for (AnnBackend ann : {AnnBackend::lsh, AnnBackend::quant}) {
    const std::string a = ann == AnnBackend::lsh ? "lsh" : "int8";
    cases.push_back({"duplicates " + a + " 4x128", Data::duplicates, 4, 128, 96, 3, 3, ann});
    cases.push_back({"random " + a + " 4x128", Data::random, 4, 128, 96, 3, 3, ann});
    cases.push_back({"clustered " + a + " 4x128", Data::clustered, 4, 128, 96, 3, 4, ann});
    cases.push_back({"clustered " + a + " 3x64", Data::clustered, 3, 64, 80, 2, 4, ann});
    cases.push_back({"clustered " + a + " window 2 + sink 1", Data::clustered, 4, 128, 96, 3, 4, ann, 2, 1});
    cases.push_back({"random " + a + " window 4", Data::random, 2, 128, 64, 2, 5, ann, 4, 0});
  }
  // The LSH bucket cap: CPU and GPU must keep the same (newest) entries of overflowing buckets.
  for (int64_t cap : {0, 2, 8, 64}) {
    const std::string name = " lsh cap " + std::to_string(cap);
    cases.push_back({"crowded" + name, Data::crowded, 4, 128, 96, 3, 4, AnnBackend::lsh, -1, 0, 0.9f, cap});
    cases.push_back({"crowded" + name + " window 2 + sink 1", Data::crowded, 3, 64, 80, 2, 4, AnnBackend::lsh, 2, 1,
                     0.9f, cap});
    if (cap > 0 && cap <= 2)  // spread keys overflow only a tiny cap
      cases.push_back({"clustered" + name, Data::clustered, 4, 128, 96, 3, 4, AnnBackend::lsh, -1, 0, 0.9f, cap});
  }
  int failures = 0;
  for (const Case& c : cases) {
    try {
      failures += run_case(c).ok ? 0 : 1;
    } catch (const std::exception& e) {
      std::printf("FAIL %-44s exception: %s\n", c.name.c_str(), e.what());
      ++failures;
    }
  }
  failures += check_capacity_error() ? 0 : 1;
  std::printf("%s: %d failed\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}

// ---- bench -------------------------------------------------------------------------------------------

int run_bench() {
  const int64_t heads = 12, d = 128, n = 1560, frames = 3, chunk = frames * n, row = heads * d;
  // Room for the prefill (4 chunks), 4 merge chunks that may all append (a capped search can miss the
  // exact copy in a crowded bucket) and 2 fresh chunks.
  const int64_t capacity = 10 * chunk;
  std::printf("TempCache GPU commit per layer, %lld heads x %lld, %lld tokens/frame, %lld frames/chunk\n",
              static_cast<long long>(heads), static_cast<long long>(d), static_cast<long long>(n),
              static_cast<long long>(frames));
  // A pool of random bf16 keys/values for 6 chunks (the prefill) plus one more.
  const int64_t pool_chunks = 7;
  std::vector<float> host(static_cast<size_t>(pool_chunks * chunk * row));
  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  for (float& x : host) x = bf(normal(rng));
  const std::vector<uint16_t> pool_b = to_bf16(host);
  uint16_t* random_pool = nullptr;
  CHECK_CUDA(cudaMalloc(&random_pool, pool_b.size() * 2));
  CHECK_CUDA(cudaMemcpy(random_pool, pool_b.data(), pool_b.size() * 2, cudaMemcpyHostToDevice));
  // Crowded keys, modelled on random-weight Wan keys (RMSNorm + RoPE leave a strong common direction):
  // the same noise plus 2·√d·u_h, one unit direction u_h per head, so unrelated keys have cosine ≈ 0.8 and
  // crowd into a few LSH buckets.
  std::vector<float> shared(static_cast<size_t>(row));
  for (int64_t h = 0; h < heads; ++h) random_unit(d, rng, shared.data() + h * d);
  const float strength = 2.0f * std::sqrt(static_cast<float>(d));
  for (size_t i = 0; i < host.size(); ++i) host[i] = bf(host[i] + strength * shared[i % static_cast<size_t>(row)]);
  const std::vector<uint16_t> crowded_b = to_bf16(host);
  uint16_t* crowded_pool = nullptr;
  CHECK_CUDA(cudaMalloc(&crowded_pool, crowded_b.size() * 2));
  CHECK_CUDA(cudaMemcpy(crowded_pool, crowded_b.data(), crowded_b.size() * 2, cudaMemcpyHostToDevice));
  struct BenchCase {
    const char* keys;
    AnnBackend ann;
    int64_t cap;
  };
  const BenchCase bench_cases[] = {{"random", AnnBackend::lsh, 0},   {"random", AnnBackend::lsh, 64},
                                   {"random", AnnBackend::quant, 0}, {"crowded", AnnBackend::lsh, 0},
                                   {"crowded", AnnBackend::lsh, 64}, {"crowded", AnnBackend::lsh, 128}};
  const size_t chunk_bytes = static_cast<size_t>(chunk * row) * 2;
  for (const BenchCase& bc : bench_cases) {
    const AnnBackend ann = bc.ann;
    const uint16_t* pool = std::strcmp(bc.keys, "crowded") == 0 ? crowded_pool : random_pool;
    TempCacheOptions options;
    options.ann = ann;
    options.lsh_bucket_cap = bc.cap;
    CudaTempCacheLayer layer(heads, d, n, capacity, chunk, options);
    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreate(&stream));
    int64_t frame = 0;
    auto commit_from = [&](int64_t pool_chunk) {
      CHECK_CUDA(cudaMemcpyAsync(layer.stage_k(), pool + pool_chunk * chunk * row, chunk_bytes, cudaMemcpyDeviceToDevice, stream));
      CHECK_CUDA(cudaMemcpyAsync(layer.stage_v(), pool + pool_chunk * chunk * row, chunk_bytes, cudaMemcpyDeviceToDevice, stream));
      CHECK_CUDA(cudaStreamSynchronize(stream));
      const auto t0 = std::chrono::steady_clock::now();
      layer.commit(frames, frame, stream);  // synchronizes
      const auto t1 = std::chrono::steady_clock::now();
      frame += frames;
      return std::chrono::duration<double, std::milli>(t1 - t0).count();
    };
    for (int64_t c = 0; c < 4; ++c) commit_from(c);  // prefill: 4 chunks, 18.7k groups per head if nothing merges
    // 100% merges: chunks whose keys are exact copies of cached ones (the prefill's chunks again).
    double merge_ms = 0.0;
    const int reps = 4;
    const int64_t before = layer.merges();
    for (int i = 0; i < reps; ++i) merge_ms += commit_from(i % 4);
    const double merged = static_cast<double>(layer.merges() - before) / (reps * chunk * heads);
    const double size_merge = layer.cached_tokens();
    // 0% merges: fresh random chunks (the cache grows by one chunk each time).
    const double append_ms = commit_from(4) + commit_from(5);
    char name[64];
    std::snprintf(name, sizeof name, "%s %s cap %lld", bc.keys, ann == AnnBackend::lsh ? "lsh" : "int8",
                  static_cast<long long>(bc.cap));
    std::printf("%-20s cache %.0f reps/head: commit %.2f ms/layer (%.0f%% merged), %.2f ms/layer (fresh keys, cache "
                "%.0f reps/head after); layer holds %.1f MiB, %.1f MiB in use\n",
                name, size_merge, merge_ms / reps, 100.0 * merged, append_ms / 2,
                layer.cached_tokens(), layer.bytes() / 1048576.0, layer.used_bytes() / 1048576.0);
    CHECK_CUDA(cudaStreamDestroy(stream));
  }
  cudaFree(random_pool);
  cudaFree(crowded_pool);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "cuda_tempcache_check: no CUDA device\n");
    return 2;
  }
  try {
    if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) return run_bench();
    if (argc > 1) {
      std::fprintf(stderr, "usage: cuda_tempcache_check [--bench]\n");
      return 2;
    }
    return run_checks();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAILED: %s\n", e.what());
    return 1;
  }
}
