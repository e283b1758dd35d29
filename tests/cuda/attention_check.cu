// Standalone GPU check of fastar::cuda::attention_forward_bf16 against the fp32 CPU reference
// (not part of CTest: CI has no GPU). Built by tests/cuda_checks.cmake as cuda_attention_check.
//
//   cuda_attention_check           correctness sweep; one PASS/FAIL line per case, exit 1 on any FAIL
//   cuda_attention_check --bench   timing table (12 heads x 128, q_len 4680), TFLOP/s
// Both run twice: with the default dispatch (the Hopper wgmma/TMA kernel where it applies; each case
// line says which kernel ran it) and with FASTAR_ATTENTION=fa2 (the portable mma.sync kernel).
//
// Inputs are rounded to bf16 and the reference runs on the rounded values, so the only differences
// are the kernel's bf16 P and output rounding and the summation order.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fastar/kernels/cpu/attention.h"
#include "fastar/kernels/cuda/flash_attention.h"
#include "fastar/kernels/cuda/flash_attention_sm90.h"
#include "check_util.h"

namespace {

// Per element: |o - ref| <= kOutTolRel * max|ref| + kOutTolAbs (bf16 has an 8-bit mantissa).
constexpr float kOutTolRel = 2e-2f;
constexpr float kOutTolAbs = 1e-2f;
// lse (natural log), absolute.
constexpr float kLseTol = 1e-3f;

enum class BiasKind { None, PerHead, Shared };

struct Case {
  int head_dim = 64;
  int heads = 1;
  int q_len = 1, kv_len = 1;
  BiasKind bias = BiasKind::None;
  bool bias_neg_inf = false;  // some bias entries -inf (masked keys)
  int block_q = 0, block_k = 0;  // > 0: block-sparse
  double density = 0.5;
  int causal_block = 0;
  bool head_major = false;  // q/k/v/o as [heads, len, head_dim] instead of [len, heads, head_dim]
};

// The kernel attention_forward_bf16 picks for p (mirrors its dispatch; FASTAR_ATTENTION=fa2 forces fa2).
const char* kernel_for(const fastar::AttentionParams& p) {
  const char* forced = std::getenv("FASTAR_ATTENTION");
  if (forced != nullptr && std::strcmp(forced, "fa2") == 0) return "fa2";
  return fastar::cuda::attention_sm90_accepts(p) ? "sm90" : "fa2";
}

std::string describe(const Case& c) {
  char text[256];
  std::snprintf(text, sizeof text, "d=%-3d h=%-2d q=%-4d kv=%-4d bias=%-7s sparse=%-8s causal=%d", c.head_dim, c.heads,
                c.q_len, c.kv_len,
                c.bias == BiasKind::None ? "none" : c.bias == BiasKind::PerHead ? (c.bias_neg_inf ? "head-inf" : "head")
                                                                                 : "shared",
                c.block_q ? (std::to_string(c.block_q) + "x" + std::to_string(c.block_k)).c_str() : "dense",
                c.causal_block);
  return c.head_major ? std::string(text) + " head-major" : std::string(text);
}

float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// Random CSR: each query block lists each key block with probability `density` (shuffled order);
// query block 1 (when there is one) always gets an empty list.
void random_csr(int num_qb, int num_kb, double density, std::mt19937& rng, std::vector<int32_t>* offsets,
                std::vector<int32_t>* index) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  offsets->assign(1, 0);
  index->clear();
  for (int qb = 0; qb < num_qb; ++qb) {
    std::vector<int32_t> list;
    if (qb != 1)
      for (int kb = 0; kb < num_kb; ++kb)
        if (u(rng) < density) list.push_back(kb);
    std::shuffle(list.begin(), list.end(), rng);
    index->insert(index->end(), list.begin(), list.end());
    offsets->push_back(static_cast<int32_t>(index->size()));
  }
}

bool run_case(const Case& c, uint32_t seed, int* sm90_cases) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t hd = c.head_dim, H = c.heads;
  const int64_t q_elems = c.q_len * H * hd, kv_elems = c.kv_len * H * hd;
  std::vector<float> q(q_elems), k(kv_elems), v(kv_elems);
  for (auto& x : q) x = round_bf16(normal(rng));
  for (auto& x : k) x = round_bf16(normal(rng));
  for (auto& x : v) x = round_bf16(normal(rng));
  auto to_bf16 = [](const std::vector<float>& f) {
    std::vector<__nv_bfloat16> b(f.size());
    for (size_t i = 0; i < f.size(); ++i) b[i] = __float2bfloat16_rn(f[i]);
    return b;
  };

  fastar::AttentionParams p;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = H * hd;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = hd;
  if (c.head_major) {
    p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = hd;
    p.q_head_stride = p.o_head_stride = c.q_len * hd;
    p.k_head_stride = p.v_head_stride = c.kv_len * hd;
  }
  p.num_heads = H;
  p.head_dim = hd;
  p.q_len = c.q_len;
  p.kv_len = c.kv_len;
  p.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  p.causal_block = c.causal_block;

  std::vector<float> bias;
  if (c.bias != BiasKind::None) {
    const int64_t rows = c.bias == BiasKind::PerHead ? H : 1;
    std::uniform_real_distribution<float> u(-1.0f, 2.0f);
    std::uniform_real_distribution<float> u01(0.0f, 1.0f);
    bias.resize(static_cast<size_t>(rows * c.kv_len));
    for (auto& x : bias) x = (c.bias_neg_inf && u01(rng) < 0.1f) ? -std::numeric_limits<float>::infinity() : u(rng);
    p.key_bias_head_stride = c.bias == BiasKind::PerHead ? c.kv_len : 0;
  }
  std::vector<int32_t> offsets, index;
  if (c.block_q > 0) {
    const int num_qb = (c.q_len + c.block_q - 1) / c.block_q, num_kb = (c.kv_len + c.block_k - 1) / c.block_k;
    random_csr(num_qb, num_kb, c.density, rng, &offsets, &index);
    p.block_q = c.block_q;
    p.block_k = c.block_k;
  }

  // CPU reference on the rounded values.
  std::vector<float> ref_o(q_elems), ref_lse(static_cast<size_t>(H * c.q_len));
  fastar::AttentionParams pc = p;
  pc.q = q.data();
  pc.k = k.data();
  pc.v = v.data();
  pc.o = ref_o.data();
  pc.lse = ref_lse.data();
  pc.key_bias = bias.empty() ? nullptr : bias.data();
  pc.block_offsets = offsets.empty() ? nullptr : offsets.data();
  static const int32_t no_entries = 0;  // the reference wants a non-null index even when every list is empty
  pc.block_index = offsets.empty() ? nullptr : index.empty() ? &no_entries : index.data();
  fastar::cpu::attention_forward(pc);

  // GPU; o and lse start as NaN so that an unwritten element fails.
  DeviceBuffer<__nv_bfloat16> dq(q_elems), dk(kv_elems), dv(kv_elems), dout(q_elems);
  DeviceBuffer<float> dlse(ref_lse.size()), dbias(bias.size());
  DeviceBuffer<int32_t> doff(offsets.size()), didx(std::max<size_t>(index.size(), 1));
  dq.upload(to_bf16(q));
  dk.upload(to_bf16(k));
  dv.upload(to_bf16(v));
  dbias.upload(bias);
  doff.upload(offsets);
  didx.upload(index);
  CHECK_CUDA(cudaMemset(dout.ptr, 0xFF, q_elems * sizeof(__nv_bfloat16)));
  CHECK_CUDA(cudaMemset(dlse.ptr, 0xFF, ref_lse.size() * sizeof(float)));
  fastar::AttentionParams pg = p;
  pg.q = dq.ptr;
  pg.k = dk.ptr;
  pg.v = dv.ptr;
  pg.o = dout.ptr;
  pg.lse = dlse.ptr;
  pg.key_bias = bias.empty() ? nullptr : dbias.ptr;
  pg.block_offsets = offsets.empty() ? nullptr : doff.ptr;
  pg.block_index = offsets.empty() ? nullptr : didx.ptr;
  const char* kernel = kernel_for(pg);
  if (std::strcmp(kernel, "sm90") == 0) ++*sm90_cases;
  const cudaError_t status = fastar::cuda::attention_forward_bf16(pg, nullptr);
  if (status != cudaSuccess) {
    std::printf("FAIL [%s] %s  launch: %s\n", kernel, describe(c).c_str(), cudaGetErrorString(status));
    return false;
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  const std::vector<__nv_bfloat16> out = dout.download();
  const std::vector<float> lse = dlse.download();

  float max_ref = 0.0f;
  for (float x : ref_o) max_ref = std::max(max_ref, std::fabs(x));
  const float tol = kOutTolRel * max_ref + kOutTolAbs;
  float max_err = 0.0f, max_lse_err = 0.0f;
  int64_t bad = 0, bad_lse = 0;
  for (int64_t i = 0; i < q_elems; ++i) {
    const float err = std::fabs(__bfloat162float(out[i]) - ref_o[i]);
    if (!(err <= tol)) ++bad;  // NaN counts as bad
    if (std::isnan(err)) max_err = err;
    else if (!std::isnan(max_err)) max_err = std::max(max_err, err);
  }
  for (size_t i = 0; i < lse.size(); ++i) {
    const bool ref_inf = std::isinf(ref_lse[i]) && ref_lse[i] < 0, got_inf = std::isinf(lse[i]) && lse[i] < 0;
    float err = 0.0f;
    if (ref_inf != got_inf) err = std::numeric_limits<float>::infinity();
    else if (!ref_inf) err = std::fabs(lse[i] - ref_lse[i]);
    if (!(err <= kLseTol)) ++bad_lse;
    if (!(err <= max_lse_err)) max_lse_err = std::isnan(err) ? NAN : err;
  }
  const bool ok = bad == 0 && bad_lse == 0;
  std::printf("%s [%-4s] %s  max_err=%.3e (tol %.3e, %lld bad)  lse_err=%.3e (%lld bad)\n", ok ? "PASS" : "FAIL",
              kernel, describe(c).c_str(), max_err, tol, static_cast<long long>(bad), max_lse_err,
              static_cast<long long>(bad_lse));
  return ok;
}

// Parameters the kernel must refuse with cudaErrorInvalidValue.
bool check_rejections() {
  DeviceBuffer<__nv_bfloat16> buf(64 * 128 * 4);
  DeviceBuffer<int32_t> csr(4);
  CHECK_CUDA(cudaMemset(csr.ptr, 0, 4 * sizeof(int32_t)));
  auto base = [&](int hd) {
    fastar::AttentionParams p;
    p.q = p.k = p.v = buf.ptr;
    p.o = buf.ptr;
    p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = hd;
    p.num_heads = 1;
    p.head_dim = hd;
    p.q_len = p.kv_len = 64;
    p.scale = 0.125f;
    return p;
  };
  struct Reject {
    const char* what;
    fastar::AttentionParams p;
  };
  std::vector<Reject> rejects;
  rejects.push_back({"head_dim 96", base(96)});
  {
    auto p = base(64);
    p.block_offsets = csr.ptr, p.block_index = csr.ptr, p.block_q = 32, p.block_k = 64;
    rejects.push_back({"block_q 32", p});
  }
  {
    auto p = base(64);
    p.block_offsets = csr.ptr, p.block_index = csr.ptr, p.block_q = 64, p.block_k = 96;
    rejects.push_back({"block_k 96", p});
  }
  {
    auto p = base(64);
    p.q_row_stride = 68;
    rejects.push_back({"row stride 68 (not a multiple of 8)", p});
  }
  {
    auto p = base(64);
    p.causal_block = 16, p.q_len = 65, p.kv_len = 64;
    rejects.push_back({"causal with q_len > kv_len", p});
  }
  bool ok = true;
  for (const Reject& r : rejects) {
    const cudaError_t status = fastar::cuda::attention_forward_bf16(r.p, nullptr);
    const bool pass = status == cudaErrorInvalidValue;
    std::printf("%s reject %s -> %s\n", pass ? "PASS" : "FAIL", r.what, cudaGetErrorString(status));
    ok = ok && pass;
  }
  return ok;
}

int run_checks(const char* pass_name) {
  const int shapes[][2] = {{1, 1}, {17, 200}, {64, 64}, {65, 130}, {200, 17}, {4680, 4680}};
  const int head_choices[] = {1, 3, 12, 5, 2, 7, 8, 4};
  std::vector<Case> cases;
  int pick = 0;
  for (int hd : {64, 128}) {
    for (const auto& shape : shapes) {
      const int q_len = shape[0], kv_len = shape[1];
      const bool big = q_len > 1000;
      auto make = [&]() {
        Case c;
        c.head_dim = hd;
        c.heads = big ? 2 : head_choices[pick++ % 8];
        c.q_len = q_len;
        c.kv_len = kv_len;
        return c;
      };
      cases.push_back(make());  // dense
      { Case c = make(); c.bias = BiasKind::PerHead; cases.push_back(c); }
      { Case c = make(); c.bias = BiasKind::Shared; cases.push_back(c); }
      { Case c = make(); c.block_q = 64; c.block_k = 64; c.density = 0.5; cases.push_back(c); }
      { Case c = make(); c.block_q = 128; c.block_k = 128; c.density = 0.3; c.bias = BiasKind::PerHead; c.bias_neg_inf = true; cases.push_back(c); }
      { Case c = make(); c.block_q = 64; c.block_k = 192; c.density = 0.6; c.bias = BiasKind::Shared; cases.push_back(c); }
      if (q_len <= kv_len) {
        { Case c = make(); c.causal_block = 37; cases.push_back(c); }
        { Case c = make(); c.causal_block = 64; c.bias = BiasKind::PerHead; cases.push_back(c); }
        { Case c = make(); c.causal_block = 1; cases.push_back(c); }
        { Case c = make(); c.causal_block = 80; c.block_q = 128; c.block_k = 64; c.density = 0.7; cases.push_back(c); }
      }
    }
  }
  // Shapes for the Hopper kernel's pipeline (many 128-key tiles, ring wrap-around, partial tiles),
  // block_k a multiple of 128 > 128, and the head-major layout (different TMA strides).
  for (int hd : {64, 128}) {
    auto make = [&](int heads, int q_len, int kv_len) {
      Case c;
      c.head_dim = hd, c.heads = heads, c.q_len = q_len, c.kv_len = kv_len;
      return c;
    };
    cases.push_back(make(3, 333, 1000));
    { Case c = make(3, 333, 1000); c.bias = BiasKind::PerHead; c.bias_neg_inf = true; cases.push_back(c); }
    { Case c = make(2, 700, 2000); c.block_q = 128; c.block_k = 384; c.density = 0.4; c.bias = BiasKind::Shared; cases.push_back(c); }
    { Case c = make(4, 300, 1000); c.head_major = true; cases.push_back(c); }
    { Case c = make(2, 257, 900); c.head_major = true; c.block_q = 128; c.block_k = 256; c.density = 0.5; c.bias = BiasKind::PerHead; cases.push_back(c); }
    cases.push_back(make(5, 129, 2));
    cases.push_back(make(12, 1, 4680));
  }
  int failures = 0, sm90_cases = 0;
  uint32_t seed = 1234;
  for (const Case& c : cases) failures += run_case(c, seed++, &sm90_cases) ? 0 : 1;
  failures += check_rejections() ? 0 : 1;
  std::printf("%s: %s: %d failure(s) in %zu cases (%d ran on the sm90 kernel)\n", pass_name,
              failures ? "FAILED" : "ALL PASSED", failures, cases.size() + 1, sm90_cases);
  return failures ? 1 : 0;
}

// ---- benchmark -------------------------------------------------------------------------------------

__global__ void fill_random_bf16(__nv_bfloat16* out, int64_t count, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    uint32_t x = static_cast<uint32_t>(i) * 2654435761u ^ seed ^ static_cast<uint32_t>(i >> 32) * 40503u;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    out[i] = __float2bfloat16_rn((x >> 8) * (2.0f / 16777216.0f) - 1.0f);  // uniform [-1, 1)
  }
}

int run_bench() {
  constexpr int kHeads = 12, kHd = 128, kQ = 4680;
  constexpr int kBlockQ = 128, kBlockK = 128;
  struct Bench {
    const char* name;
    int kv_len;
    double density;  // < 0: dense
  };
  const Bench benches[] = {{"dense", 4680, -1},           {"dense", 37440, -1},          {"dense", 191880, -1},
                           {"sparse 30%", 37440, 0.3},     {"sparse 50%", 37440, 0.5},    {"sparse 100%", 37440, 1.0}};
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s\n", prop.name);
  std::printf("heads=%d head_dim=%d q_len=%d bf16; sparse: block_q=%d block_k=%d; median of 10 after warm-up\n", kHeads,
              kHd, kQ, kBlockQ, kBlockK);
  std::printf("%-12s %8s %-6s %10s %12s %10s\n", "variant", "kv_len", "kernel", "time_ms", "visited_keys", "TFLOP/s");
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  for (const Bench& b : benches) {
    const int64_t q_elems = int64_t{kQ} * kHeads * kHd, kv_elems = int64_t{b.kv_len} * kHeads * kHd;
    DeviceBuffer<__nv_bfloat16> q(q_elems), k(kv_elems), v(kv_elems), o(q_elems);
    fill_random_bf16<<<1024, 256>>>(q.ptr, q_elems, 1);
    fill_random_bf16<<<1024, 256>>>(k.ptr, kv_elems, 2);
    fill_random_bf16<<<1024, 256>>>(v.ptr, kv_elems, 3);
    CHECK_CUDA(cudaGetLastError());
    fastar::AttentionParams p;
    p.q = q.ptr, p.k = k.ptr, p.v = v.ptr, p.o = o.ptr;
    p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = kHeads * kHd;
    p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = kHd;
    p.num_heads = kHeads, p.head_dim = kHd, p.q_len = kQ, p.kv_len = b.kv_len;
    p.scale = 1.0f / std::sqrt(static_cast<float>(kHd));
    // Visited (query, key) pairs, for the FLOP count.
    double pairs = static_cast<double>(kQ) * b.kv_len;
    std::vector<int32_t> offsets, index;
    if (b.density >= 0) {
      std::mt19937 rng(7);
      const int num_qb = (kQ + kBlockQ - 1) / kBlockQ, num_kb = (b.kv_len + kBlockK - 1) / kBlockK;
      std::uniform_real_distribution<double> u(0.0, 1.0);
      offsets.assign(1, 0);
      pairs = 0;
      for (int qb = 0; qb < num_qb; ++qb) {
        const int rows = std::min(kBlockQ, kQ - qb * kBlockQ);
        for (int kb = 0; kb < num_kb; ++kb) {
          if (b.density < 1.0 && u(rng) >= b.density) continue;
          index.push_back(kb);
          pairs += static_cast<double>(rows) * std::min(kBlockK, b.kv_len - kb * kBlockK);
        }
        offsets.push_back(static_cast<int32_t>(index.size()));
      }
    }
    DeviceBuffer<int32_t> doff(offsets.size()), didx(index.size());
    if (!offsets.empty()) {
      doff.upload(offsets);
      didx.upload(index);
      p.block_offsets = doff.ptr, p.block_index = didx.ptr, p.block_q = kBlockQ, p.block_k = kBlockK;
    }
    // Each case twice: the default dispatch (sm90 where it applies), then FASTAR_ATTENTION=fa2.
    for (const bool force_fa2 : {false, true}) {
      if (force_fa2) setenv("FASTAR_ATTENTION", "fa2", 1);
      const char* kernel = kernel_for(p);
      for (int i = 0; i < 3; ++i) CHECK_CUDA(fastar::cuda::attention_forward_bf16(p, nullptr));
      CHECK_CUDA(cudaDeviceSynchronize());
      std::vector<float> times;
      for (int i = 0; i < 10; ++i) {
        CHECK_CUDA(cudaEventRecord(start));
        CHECK_CUDA(fastar::cuda::attention_forward_bf16(p, nullptr));
        CHECK_CUDA(cudaEventRecord(stop));
        CHECK_CUDA(cudaEventSynchronize(stop));
        float ms = 0;
        CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
        times.push_back(ms);
      }
      if (force_fa2) unsetenv("FASTAR_ATTENTION");
      std::sort(times.begin(), times.end());
      const double ms = 0.5 * (times[4] + times[5]);
      const double flops = 4.0 * pairs * kHd * kHeads;
      std::printf("%-12s %8d %-6s %10.3f %12.0f %10.1f\n", b.name, b.kv_len, kernel, ms, pairs / kQ,
                  flops / (ms * 1e-3) / 1e12);
    }
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "cuda_attention_check: no CUDA device\n");
    return 2;
  }
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) return run_bench();
  // Pass 1: default dispatch (sm90 where it applies); pass 2: FASTAR_ATTENTION=fa2 (mma.sync only).
  const int default_status = run_checks("default dispatch");
  setenv("FASTAR_ATTENTION", "fa2", 1);
  const int fa2_status = run_checks("FASTAR_ATTENTION=fa2");
  unsetenv("FASTAR_ATTENTION");
  std::printf("default dispatch: %s; FASTAR_ATTENTION=fa2: %s\n", default_status ? "FAILED" : "passed",
              fa2_status ? "FAILED" : "passed");
  return default_status || fa2_status ? 1 : 0;
}
