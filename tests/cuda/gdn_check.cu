// Standalone GPU check of the gated delta rule kernels (ARL²'s linear memory) against the CPU
// reference (not CTest: CI has no GPU). Built by tests/cuda_checks.cmake as cuda_gdn_check.
//
//   cuda_gdn_check           correctness sweep: CUDA update and read vs cpu::gated_delta_rule_update_recurrent
//                            and cpu::gated_delta_rule_read on fresh random inputs; one PASS/FAIL line per
//                            case, exit 1 on any FAIL
//   cuda_gdn_check --bench   update and read timings at Wan2.1-1.3B shapes (12 heads × 128, 4680 tokens)
//
// bf16 cases round q/k/v to bf16 first and the reference runs on the rounded values, so the only
// differences are the fp32 summation order, the WY form's algebra and the bf16 output rounding.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fastar/core/dtype.h"
#include "fastar/kernels/cpu/gated_delta_rule.h"
#include "fastar/kernels/cuda/gated_delta_rule.h"
#include "check_util.h"

namespace {

// State after the update, per entry: |S − S_ref| <= kStateTol · max|S_ref| (fp32 in both; the WY
// form and the token loop differ only by fp32 rounding, which the contraction keeps bounded).
constexpr double kStateTol = 1e-4;
// Read, fp32 out: |o − o_ref| <= kReadTolF32 · max|o_ref|; bf16 out adds bf16's half-ulp (2^-8 relative).
constexpr double kReadTolF32 = 1e-5;
constexpr double kReadTolBf16 = 8e-3;

struct Case {
  int64_t tokens, heads, dk, dv;
  bool bf16;
  float alpha_min;  // α ∈ [alpha_min, 1)
};

std::string describe(const Case& c) {
  char text[160];
  std::snprintf(text, sizeof text, "tokens=%lld heads=%lld dk=%lld dv=%lld %s alpha>=%.2f", static_cast<long long>(c.tokens),
                static_cast<long long>(c.heads), static_cast<long long>(c.dk), static_cast<long long>(c.dv),
                c.bf16 ? "bf16" : "f32", c.alpha_min);
  return text;
}

std::vector<float> normal(int64_t count, std::mt19937_64& rng, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> out(static_cast<size_t>(count));
  for (float& x : out) x = dist(rng);
  return out;
}

void l2_normalise_rows(std::vector<float>& x, int64_t dim) {
  for (size_t r = 0; r < x.size() / static_cast<size_t>(dim); ++r) {
    double norm = 1e-6;
    for (int64_t d = 0; d < dim; ++d) norm += double(x[r * dim + d]) * x[r * dim + d];
    for (int64_t d = 0; d < dim; ++d) x[r * dim + d] = static_cast<float>(x[r * dim + d] / std::sqrt(norm));
  }
}

double scaled_error(const std::vector<float>& actual, const std::vector<float>& expected, double tol) {
  double scale = 0, worst = 0;
  for (float x : expected) scale = std::max(scale, double(std::fabs(x)));
  for (size_t i = 0; i < actual.size(); ++i) {
    if (!std::isfinite(actual[i])) return INFINITY;
    worst = std::max(worst, double(std::fabs(actual[i] - expected[i])));
  }
  return worst / (tol * std::max(scale, 1e-30));
}

// Device copy of fp32 host values as the case's io type.
struct IoBuffer {
  DeviceBuffer<float> f32;
  DeviceBuffer<__nv_bfloat16> bf16;
  bool is_bf16;
  IoBuffer(const std::vector<float>& host, bool use_bf16)
      : f32(use_bf16 ? 0 : host.size()), bf16(use_bf16 ? host.size() : 0), is_bf16(use_bf16) {
    if (use_bf16) {
      std::vector<__nv_bfloat16> b(host.size());
      for (size_t i = 0; i < host.size(); ++i) b[i] = __float2bfloat16_rn(host[i]);
      bf16.upload(b);
    } else {
      f32.upload(host);
    }
  }
  void* ptr() { return is_bf16 ? static_cast<void*>(bf16.ptr) : static_cast<void*>(f32.ptr); }
  std::vector<float> download() const {
    if (!is_bf16) return f32.download();
    std::vector<__nv_bfloat16> b = bf16.download();
    std::vector<float> out(b.size());
    for (size_t i = 0; i < b.size(); ++i) out[i] = __bfloat162float(b[i]);
    return out;
  }
};

bool run_case(const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t T = c.tokens, H = c.heads;
  std::vector<float> q = normal(T * H * c.dk, rng, 1.0f), k = normal(T * H * c.dk, rng, 1.0f),
                     v = normal(T * H * c.dv, rng, 1.0f), s0 = normal(H * c.dk * c.dv, rng, 0.3f),
                     o0 = normal(T * H * c.dv, rng, 1.0f);
  l2_normalise_rows(q, c.dk);
  l2_normalise_rows(k, c.dk);
  if (c.bf16)
    for (std::vector<float>* x : {&q, &k, &v, &o0})
      for (float& e : *x) e = fastar::round_to_bf16(e);
  std::uniform_real_distribution<float> alpha(c.alpha_min, 1.0f), beta(0.0f, 2.0f), gate(0.0f, 1.0f);
  std::vector<float> g(static_cast<size_t>(T * H)), b(g.size()), gt(g.size());
  for (size_t i = 0; i < g.size(); ++i) {
    g[i] = std::log(alpha(rng));
    b[i] = beta(rng);
    gt[i] = gate(rng);
  }

  // CPU reference: read (accumulate, gated) against s0, then the token-by-token update.
  std::vector<float> ref_o = o0, ref_s = s0;
  fastar::GatedDeltaRuleParams cp =
      fastar::packed_gated_delta_rule_params(q.data(), k.data(), v.data(), ref_o.data(), g.data(), b.data(), ref_s.data(), T, H, c.dk);
  cp.value_dim = c.dv;
  cp.v_row_stride = cp.o_row_stride = H * c.dv;
  cp.v_head_stride = cp.o_head_stride = c.dv;
  cp.state_head_stride = c.dk * c.dv;
  cp.read_gate = gt.data();
  cp.accumulate = true;
  fastar::cpu::gated_delta_rule_read(cp);
  fastar::cpu::gated_delta_rule_update_recurrent(cp);

  // GPU, same order in one stream.
  IoBuffer dq(q, c.bf16), dk(k, c.bf16), dv(v, c.bf16), dout(o0, c.bf16);
  DeviceBuffer<float> dg(g.size()), db(b.size()), dgate(gt.size()), ds(s0.size());
  dg.upload(g);
  db.upload(b);
  dgate.upload(gt);
  ds.upload(s0);
  fastar::GatedDeltaRuleParams gp = cp;
  gp.q = dq.ptr();
  gp.k = dk.ptr();
  gp.v = dv.ptr();
  gp.o = dout.ptr();
  gp.log_alpha = dg.ptr;
  gp.beta = db.ptr;
  gp.read_gate = dgate.ptr;
  gp.state = ds.ptr;
  gp.io_dtype = c.bf16 ? fastar::DType::BF16 : fastar::DType::F32;
  DeviceBuffer<unsigned char> workspace(fastar::cuda::gated_delta_rule_workspace_bytes(gp));
  CHECK_CUDA(fastar::cuda::gated_delta_rule_read(gp, nullptr));
  CHECK_CUDA(fastar::cuda::gated_delta_rule_update(gp, workspace.ptr, workspace.count, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());

  const double state_err = scaled_error(ds.download(), ref_s, kStateTol);
  const double read_err = scaled_error(dout.download(), ref_o, c.bf16 ? kReadTolBf16 : kReadTolF32);
  const bool ok = state_err <= 1.0 && read_err <= 1.0;
  std::printf("%s %s: state err %.3f, read err %.3f (of tolerance)\n", ok ? "PASS" : "FAIL", describe(c).c_str(), state_err,
              read_err);
  return ok;
}

bool run_rejections() {
  // Unsupported shapes are refused without a launch.
  fastar::GatedDeltaRuleParams p;
  p.tokens = 4;
  p.heads = 1;
  p.key_dim = 256;  // > 128
  p.value_dim = 32;
  float* dummy = nullptr;
  CHECK_CUDA(cudaMalloc(&dummy, 1 << 20));
  p.state = dummy;
  p.state_head_stride = 256 * 32;
  p.q = p.k = p.v = p.o = dummy;
  p.log_alpha = p.beta = dummy;
  p.gate_row_stride = 1;
  bool ok = fastar::cuda::gated_delta_rule_read(p, nullptr) == cudaErrorInvalidValue;
  p.key_dim = 64;
  p.value_dim = 48;  // not a multiple of 32
  ok = ok && fastar::cuda::gated_delta_rule_update(p, dummy, 1 << 20, nullptr) == cudaErrorInvalidValue;
  p.value_dim = 64;
  ok = ok && fastar::cuda::gated_delta_rule_update(p, dummy, 16, nullptr) == cudaErrorInvalidValue;  // workspace too small
  cudaGetLastError();
  cudaFree(dummy);
  std::printf("%s unsupported parameters are refused with cudaErrorInvalidValue\n", ok ? "PASS" : "FAIL");
  return ok;
}

int run_checks() {
  // Lengths: shorter than a tile, exact tiles, non-multiples of the 64-token tile, a Wan frame.
  const Case cases[] = {
      {1, 1, 128, 128, false, 0.9f},   {37, 2, 128, 128, false, 0.9f}, {64, 3, 128, 128, false, 0.9f},
      {65, 2, 128, 128, false, 0.9f},  {200, 2, 64, 64, false, 0.5f},  {777, 2, 128, 128, false, 0.99f},
      {1560, 12, 128, 128, false, 0.999f}, {300, 2, 96, 32, false, 0.9f}, {129, 2, 128, 128, false, 0.05f},
      {37, 2, 128, 128, true, 0.9f},   {1000, 4, 128, 128, true, 0.99f}, {4680, 2, 128, 128, true, 0.999f},
  };
  int failures = 0;
  uint64_t seed = 1;
  for (const Case& c : cases) failures += run_case(c, seed++) ? 0 : 1;
  failures += run_rejections() ? 0 : 1;
  std::printf(failures ? "%d case(s) FAILED\n" : "all gated delta rule checks passed\n", failures);
  return failures ? 1 : 0;
}

// ---- benchmark -----------------------------------------------------------------------------------

float median_ms(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run_bench() {
  constexpr int64_t kHeads = 12, kDim = 128, kTokens = 4680;
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s\n", prop.name);
  std::printf("gated delta rule at Wan2.1-1.3B shapes: heads=%lld dim=%lld tokens=%lld; median of 20 after warm-up, cold L2\n",
              static_cast<long long>(kHeads), static_cast<long long>(kDim), static_cast<long long>(kTokens));
  std::mt19937_64 rng(7);
  std::vector<float> q = normal(kTokens * kHeads * kDim, rng, 1.0f), k = q, v = normal(kTokens * kHeads * kDim, rng, 1.0f);
  l2_normalise_rows(q, kDim);
  k = q;
  std::vector<float> g(static_cast<size_t>(kTokens * kHeads), std::log(0.999f)), b(g.size(), 0.5f), gate(g.size(), 0.5f);
  DeviceBuffer<float> dg(g.size()), db(b.size()), dgate(g.size()), ds(static_cast<size_t>(kHeads * kDim * kDim));
  dg.upload(g);
  db.upload(b);
  dgate.upload(gate);
  CHECK_CUDA(cudaMemset(ds.ptr, 0, ds.count * sizeof(float)));
  DeviceBuffer<unsigned char> flush(static_cast<size_t>(prop.l2CacheSize) * 2);
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  std::printf("%-6s %-8s %10s %10s\n", "io", "kernel", "ms", "GB/s");
  for (bool bf16 : {true, false}) {
    IoBuffer dq(q, bf16), dk(k, bf16), dv(v, bf16), dout(v, bf16);
    fastar::GatedDeltaRuleParams p = fastar::packed_gated_delta_rule_params(nullptr, nullptr, nullptr, nullptr, dg.ptr, db.ptr,
                                                                            ds.ptr, kTokens, kHeads, kDim);
    p.q = dq.ptr();
    p.k = dk.ptr();
    p.v = dv.ptr();
    p.o = dout.ptr();
    p.read_gate = dgate.ptr;
    p.accumulate = true;
    p.io_dtype = bf16 ? fastar::DType::BF16 : fastar::DType::F32;
    DeviceBuffer<unsigned char> workspace(fastar::cuda::gated_delta_rule_workspace_bytes(p));
    const double io_bytes = bf16 ? 2.0 : 4.0;
    for (int which = 0; which < 2; ++which) {
      std::vector<float> times;
      for (int rep = 0; rep < 23; ++rep) {
        CHECK_CUDA(cudaMemsetAsync(flush.ptr, rep, flush.count));
        CHECK_CUDA(cudaEventRecord(start));
        if (which == 0) CHECK_CUDA(fastar::cuda::gated_delta_rule_update(p, workspace.ptr, workspace.count, nullptr));
        else CHECK_CUDA(fastar::cuda::gated_delta_rule_read(p, nullptr));
        CHECK_CUDA(cudaEventRecord(stop));
        CHECK_CUDA(cudaEventSynchronize(stop));
        float ms = 0;
        CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
        if (rep >= 3) times.push_back(ms);
      }
      const float ms = median_ms(times);
      // Compulsory traffic: update reads k, v (+ gates) and the state twice; read reads q and o, writes o.
      const double bytes = which == 0 ? (2.0 * kTokens * kHeads * kDim * io_bytes + 2.0 * kHeads * kDim * kDim * 4)
                                      : (3.0 * kTokens * kHeads * kDim * io_bytes + kHeads * kDim * kDim * 4);
      std::printf("%-6s %-8s %10.3f %10.1f\n", bf16 ? "bf16" : "f32", which == 0 ? "update" : "read", ms, bytes / (ms * 1e6));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) return run_bench();
  if (argc > 1) {
    std::fprintf(stderr, "usage: cuda_gdn_check [--bench]\n");
    return 2;
  }
  return run_checks();
}
