// Standalone GPU check of AnnSA on the GPU (kernels/cuda/ann_bucket_ops.h, attention/cuda/annsa_memory_cuda.h)
// against the CPU reference (not CTest: CI has no GPU). Built by tests/cuda_checks.cmake as cuda_annsa_check.
//
//   cuda_annsa_check          correctness, one PASS/FAIL line each, exit 1 on any FAIL:
//     kernels   each kernel vs its CPU function on seeded data: LSH labels identical to LshHasher::hash
//               (excluded −inf-bias rows get the extra label), permutation + offsets identical to
//               bucket_sort, gathered rows bit-identical, CSR plan identical to bucket_block_plan (and the
//               density counters to its executed_pairs), scatter/merge vs merge_attention_parts, and the
//               whole bucketed pipeline vs bucketed_attention_head per head;
//     single    one bucket for everything (zero projections: every label 2^bits − 1) → dense attention;
//     memory    CudaAnnSaMemory over window and over TempCache vs AnnSaMemory over WindowMemory /
//               TempCacheMemory, several chunks with dense and sparse steps, own keys dense and sparse,
//               and the per-layer density statistics (identical executed / dense products).
//   cuda_annsa_check --bench  per-layer time at Wan2.1-1.3B shapes (4680 queries, 12 heads × 128, 9 or 21
//               cached frames × 1560): dense attention over [cache + chunk] vs CudaAnnSaMemory::attend
//               (everything of a call included) at bits 2, 3 and 4, with the measured density, the sort
//               of the cached keys done once per chunk at commit, and their sum over a chunk; a table.
//
// Inputs are bf16-exact floats, so the CPU and the GPU see the same numbers. Tolerances:
//   labels, permutation, offsets, plan, gathered rows, density products: exact;
//   merge: |Δo| ≤ 2^-8·|o| + 1e-6 (one bf16 rounding of the result), |Δlse| ≤ 1e-5·(1 + |lse|);
//   attention (bf16 P·V and output on the GPU vs fp32 on the CPU): |Δo| ≤ kAttnTol · max|v|,
//   |Δlse| ≤ kLseTol · (1 + |lse|); single bucket vs the GPU dense kernel: |Δo| ≤ kSameKernelTol · max|v|.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fastar/attention/ann_lsh.h"
#include "fastar/attention/ann_self_attention.h"
#include "fastar/attention/bucket_block_plan.h"
#include "fastar/attention/cuda/annsa_memory_cuda.h"
#include "fastar/attention/cuda/kv_cache_cuda.h"
#include "fastar/attention/cuda/tempcache_memory_cuda.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/attention/tempcache_memory.h"
#include "fastar/core/dtype.h"
#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"
#include "fastar/kernels/cuda/ann_bucket_ops.h"
#include "fastar/kernels/cuda/flash_attention.h"
#include "bf16_data.h"
#include "check_util.h"

namespace {

using bf16 = __nv_bfloat16;
constexpr double kAttnTol = 1.5e-2;
constexpr double kLseTol = 5e-3;
constexpr double kSameKernelTol = 8e-3;
constexpr float kNegInf = -INFINITY;

int failures = 0;
void report(bool ok, const std::string& name, const std::string& detail) {
  std::printf("%-4s %-58s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  if (!ok) ++failures;
}


int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// ---- the kernels, one problem: q [n, heads·hd], keys [m, heads·hd] with an optional bias [heads, m] --------

struct Problem {
  int64_t heads, hd, n, m;
  int bits;
  int64_t block_q, block_k;
  bool with_bias;
  bool zero_projections = false;  // single bucket
  uint64_t seed;
};

struct GpuPipeline {  // the device buffers of one run of the bucketed pipeline (no own-keys part)
  int nb, nbt;
  int64_t q_pad, k_pad, q_blocks, k_blocks;
  std::vector<uint32_t> q_labels, k_labels;
  std::vector<int32_t> q_order, k_order, q_offsets, k_offsets, block_offsets, block_index;
  std::vector<float> k_sorted, bias_sorted, o, lse;  // o: [n, heads·hd] scattered; lse: [heads, n]
  unsigned long long counters[2] = {0, 0};
};

GpuPipeline run_gpu(const Problem& P, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                    const std::vector<float>& bias, const std::vector<float>& projections) {
  using namespace fastar::cuda;
  GpuPipeline g;
  const int64_t H = P.heads, hd = P.hd, n = P.n, m = P.m, d = H * hd;
  g.nb = 1 << P.bits;
  g.nbt = g.nb + 1;
  g.q_pad = round_up(n, P.block_q);
  g.k_pad = round_up(m, P.block_k);
  g.q_blocks = g.q_pad / P.block_q;
  g.k_blocks = g.k_pad / P.block_k;
  DeviceBf16 dq(q), dk(k), dv(v);
  DeviceBuffer<float> dbias(bias.empty() ? std::vector<float>(1, 0.0f) : bias), dproj(projections);
  DeviceBuffer<uint32_t> ql(static_cast<size_t>(H * n)), kl(static_cast<size_t>(H * std::max<int64_t>(m, 1)));
  DeviceBuffer<int32_t> qo(static_cast<size_t>(H * n)), ko(static_cast<size_t>(H * std::max<int64_t>(m, 1)));
  DeviceBuffer<int32_t> qoff(static_cast<size_t>(H * (g.nbt + 1))), koff(static_cast<size_t>(H * (g.nbt + 1)));
  DeviceBf16 qs(static_cast<size_t>(H * g.q_pad * hd)), os(static_cast<size_t>(H * g.q_pad * hd));
  DeviceBf16 ks(static_cast<size_t>(std::max<int64_t>(H * g.k_pad * hd, 8))), vs(static_cast<size_t>(std::max<int64_t>(H * g.k_pad * hd, 8)));
  DeviceBuffer<float> bs(static_cast<size_t>(std::max<int64_t>(H * g.k_pad, 1))), lses(static_cast<size_t>(H * g.q_pad));
  DeviceBuffer<int32_t> boff(static_cast<size_t>(H * g.q_blocks + 1)),
      bidx(static_cast<size_t>(std::max<int64_t>(H * g.q_blocks * g.k_blocks, 1)));
  DeviceBuffer<unsigned long long> counters(2);
  CHECK_CUDA(cudaMemset(counters.ptr, 0, 16));
  DeviceBf16 out(static_cast<size_t>(n * d));
  DeviceBuffer<float> lse_out(static_cast<size_t>(H * n));
  const float* bias_ptr = P.with_bias ? dbias.ptr : nullptr;
  cudaStream_t st = nullptr;
  CHECK_CUDA(ann_lsh_labels_bf16(dq.get(), n, H, hd, d, hd, dproj.ptr, 0, P.bits, nullptr, 0, g.nb, ql.ptr, n, st));
  CHECK_CUDA(ann_lsh_labels_bf16(dk.get(), m, H, hd, d, hd, dproj.ptr, 0, P.bits, bias_ptr, m, g.nb, kl.ptr,
                                 std::max<int64_t>(m, 1), st));
  CHECK_CUDA(ann_bucket_sort(ql.ptr, n, n, H, g.nbt, qo.ptr, n, qoff.ptr, st));
  CHECK_CUDA(ann_bucket_sort(kl.ptr, std::max<int64_t>(m, 1), m, H, g.nbt, ko.ptr, std::max<int64_t>(m, 1), koff.ptr, st));
  AnnGatherArgs gq;
  gq.src[0] = dq.get();
  gq.dst[0] = qs.get();
  gq.src_row_stride = d;
  gq.src_head_stride = hd;
  gq.order = qo.ptr;
  gq.order_head_stride = n;
  gq.rows = n;
  gq.rows_pad = g.q_pad;
  gq.heads = H;
  gq.head_dim = hd;
  CHECK_CUDA(ann_gather_rows_bf16(gq, st));
  AnnGatherArgs gk = gq;
  gk.src[0] = dk.get();
  gk.src[1] = dv.get();
  gk.dst[0] = ks.get();
  gk.dst[1] = vs.get();
  gk.order = ko.ptr;
  gk.order_head_stride = std::max<int64_t>(m, 1);
  gk.valid = koff.ptr + g.nb;
  gk.valid_head_stride = g.nbt + 1;
  gk.src_bias = bias_ptr;
  gk.src_bias_head_stride = m;
  gk.dst_bias = bs.ptr;
  gk.rows = m;
  gk.rows_pad = g.k_pad;
  CHECK_CUDA(ann_gather_rows_bf16(gk, st));
  AnnPlanArgs pa;
  pa.q_offsets = qoff.ptr;
  pa.k_offsets = koff.ptr;
  pa.offsets_head_stride = g.nbt + 1;
  pa.num_buckets = g.nb;
  pa.heads = H;
  pa.q_blocks = g.q_blocks;
  pa.k_blocks = g.k_blocks;
  pa.block_q = P.block_q;
  pa.block_k = P.block_k;
  pa.block_offsets = boff.ptr;
  pa.block_index = bidx.ptr;
  pa.counters = counters.ptr;
  CHECK_CUDA(ann_block_plan(pa, st));
  fastar::AttentionParams p;
  p.q = qs.get();
  p.k = ks.get();
  p.v = vs.get();
  p.o = os.get();
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = hd;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = hd;
  p.num_heads = 1;
  p.head_dim = hd;
  p.q_len = H * g.q_pad;
  p.kv_len = H * g.k_pad;
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  p.lse = lses.ptr;
  p.key_bias = bs.ptr;
  p.block_offsets = boff.ptr;
  p.block_index = bidx.ptr;
  p.block_q = P.block_q;
  p.block_k = P.block_k;
  CHECK_CUDA(attention_forward_bf16(p, st));
  AnnScatterArgs sa;
  sa.sorted_o = os.get();
  sa.sorted_lse = lses.ptr;
  sa.order = qo.ptr;
  sa.order_head_stride = n;
  sa.out = out.get();
  sa.out_row_stride = d;
  sa.out_head_stride = hd;
  sa.lse_out = lse_out.ptr;
  sa.lse_head_stride = n;
  sa.rows = n;
  sa.rows_pad = g.q_pad;
  sa.heads = H;
  sa.head_dim = hd;
  CHECK_CUDA(ann_scatter_merge_bf16(sa, st));
  CHECK_CUDA(cudaDeviceSynchronize());
  g.q_labels = ql.download();
  g.k_labels = kl.download();
  g.q_order = qo.download();
  g.k_order = ko.download();
  g.q_offsets = qoff.download();
  g.k_offsets = koff.download();
  g.block_offsets = boff.download();
  g.block_index = bidx.download();
  g.k_sorted = ks.download();
  g.bias_sorted = bs.download();
  g.o = out.download();
  g.lse = lse_out.download();
  CHECK_CUDA(cudaMemcpy(g.counters, counters.ptr, 16, cudaMemcpyDeviceToHost));
  return g;
}

void check_kernels(const Problem& P, const std::string& name) {
  std::mt19937 rng(static_cast<uint32_t>(P.seed));
  const int64_t H = P.heads, hd = P.hd, n = P.n, m = P.m, d = H * hd;
  const std::vector<float> q = random_bf16(static_cast<size_t>(n * d), rng);
  const std::vector<float> k = random_bf16(static_cast<size_t>(m * d), rng);
  const std::vector<float> v = random_bf16(static_cast<size_t>(m * d), rng);
  std::vector<float> bias;
  std::vector<int64_t> valid_rows(static_cast<size_t>(H), m);  // rows with a finite bias: a prefix per head
  if (P.with_bias) {
    bias.assign(static_cast<size_t>(H * m), 0.0f);
    std::uniform_real_distribution<float> u(0.0f, 2.0f);
    for (int64_t h = 0; h < H; ++h) {
      valid_rows[static_cast<size_t>(h)] = m - (h * 37) % std::max<int64_t>(m / 3, 1);
      for (int64_t r = 0; r < m; ++r)
        bias[static_cast<size_t>(h * m + r)] = r < valid_rows[static_cast<size_t>(h)] ? std::log1p(std::floor(u(rng) * 3)) : kNegInf;
    }
  }
  fastar::LshParams lp;
  lp.dim = hd;
  lp.tables = 1;
  lp.bits = P.bits;
  lp.seed = P.seed;
  const fastar::LshHasher hasher(lp);
  std::vector<float> proj(hasher.projections(), hasher.projections() + P.bits * hd);
  if (P.zero_projections) std::fill(proj.begin(), proj.end(), 0.0f);
  const GpuPipeline g = run_gpu(P, q, k, v, bias, proj);
  const int nb = g.nb;
  const int64_t ms = std::max<int64_t>(m, 1);

  bool labels_ok = true, sort_ok = true, gather_ok = true, plan_ok = true;
  int64_t label_diffs = 0;
  double attn_err = 0, lse_err = 0;
  int64_t executed = 0, dense = 0, bucket_pairs = 0;
  const double vmax = max_abs(v);
  fastar::BucketedScratch scratch;
  for (int64_t h = 0; h < H; ++h) {
    const int64_t valid = valid_rows[static_cast<size_t>(h)];
    // (a) labels: the CPU hasher on the same (float) rows; with zero projections every label is nb − 1.
    std::vector<uint32_t> ql(static_cast<size_t>(n)), kl(static_cast<size_t>(ms));
    if (P.zero_projections) {
      std::fill(ql.begin(), ql.end(), static_cast<uint32_t>(nb - 1));
      std::fill(kl.begin(), kl.end(), static_cast<uint32_t>(nb - 1));
    } else {
      hasher.hash(q.data() + h * hd, n, d, ql.data());
      if (m > 0) hasher.hash(k.data() + h * hd, m, d, kl.data());
    }
    for (int64_t r = valid; r < m; ++r) kl[static_cast<size_t>(r)] = static_cast<uint32_t>(nb);  // excluded
    for (int64_t r = 0; r < n; ++r) label_diffs += g.q_labels[static_cast<size_t>(h * n + r)] != ql[static_cast<size_t>(r)];
    for (int64_t r = 0; r < m; ++r) label_diffs += g.k_labels[static_cast<size_t>(h * ms + r)] != kl[static_cast<size_t>(r)];
    // (b) sort: bucket_sort on the same labels (with the excluded bucket).
    fastar::BucketOrder qref, kref;
    fastar::bucket_sort(ql.data(), n, 1, static_cast<uint32_t>(g.nbt), &qref);
    fastar::bucket_sort(kl.data(), m, 1, static_cast<uint32_t>(g.nbt), &kref);
    for (int b = 0; b <= g.nbt; ++b) {
      sort_ok &= g.q_offsets[static_cast<size_t>(h * (g.nbt + 1) + b)] == qref.offsets[static_cast<size_t>(b)];
      sort_ok &= g.k_offsets[static_cast<size_t>(h * (g.nbt + 1) + b)] == kref.offsets[static_cast<size_t>(b)];
    }
    for (int64_t i = 0; i < n; ++i) sort_ok &= g.q_order[static_cast<size_t>(h * n + i)] == qref.order[static_cast<size_t>(i)];
    for (int64_t i = 0; i < m; ++i) sort_ok &= g.k_order[static_cast<size_t>(h * ms + i)] == kref.order[static_cast<size_t>(i)];
    // (c) gather: sorted keys and bias of this head.
    const int64_t real = kref.offsets[static_cast<size_t>(nb)];
    for (int64_t i = 0; i < g.k_pad; ++i) {
      const float* got = g.k_sorted.data() + (h * g.k_pad + i) * hd;
      const float got_bias = g.bias_sorted[static_cast<size_t>(h * g.k_pad + i)];
      if (i < real) {
        const int64_t r = kref.order[static_cast<size_t>(i)];
        gather_ok &= std::memcmp(got, k.data() + r * d + h * hd, static_cast<size_t>(hd) * 4) == 0;
        gather_ok &= got_bias == (P.with_bias ? bias[static_cast<size_t>(h * m + r)] : 0.0f);
      } else {
        for (int64_t c = 0; c < hd; ++c) gather_ok &= got[c] == 0.0f;
        gather_ok &= got_bias == kNegInf;
      }
    }
    // (d) plan: bucket_block_plan over the real buckets, key blocks shifted by the head's base.
    fastar::BucketBlockPlan plan;
    fastar::bucket_block_plan(qref.offsets.data(), kref.offsets.data(), static_cast<uint32_t>(nb), P.block_q, P.block_k, &plan);
    for (int64_t qb = 0; qb < g.q_blocks; ++qb) {
      const int64_t item = h * g.q_blocks + qb;
      const int32_t b0 = g.block_offsets[static_cast<size_t>(item)], b1 = g.block_offsets[static_cast<size_t>(item + 1)];
      const int32_t r0 = plan.block_offsets[static_cast<size_t>(qb)], r1 = plan.block_offsets[static_cast<size_t>(qb + 1)];
      if (b1 - b0 != r1 - r0) {
        plan_ok = false;
        continue;
      }
      for (int32_t e = 0; e < b1 - b0; ++e)
        plan_ok &= g.block_index[static_cast<size_t>(b0 + e)] == plan.block_index[static_cast<size_t>(r0 + e)] + h * g.k_blocks;
    }
    executed += plan.executed_pairs;
    bucket_pairs += plan.bucket_pairs;
    dense += n * real;
    // Whole pipeline vs bucketed_attention_head (the CPU's labels, the head's valid keys only).
    std::vector<float> o_ref(static_cast<size_t>(n * hd)), lse_ref(static_cast<size_t>(n));
    fastar::BucketedHeadArgs a;
    a.q = q.data() + h * hd;
    a.q_stride = d;
    a.q_len = n;
    a.keys[0] = {k.data() + h * hd, v.data() + h * hd, d, d, P.with_bias ? bias.data() + h * m : nullptr, valid};
    a.q_labels = ql.data();
    a.k_labels = kl.data();
    a.num_buckets = static_cast<uint32_t>(nb);
    a.head_dim = hd;
    a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
    a.block_q = P.block_q;
    a.block_k = P.block_k;
    a.o = o_ref.data();
    a.o_stride = hd;
    a.lse = lse_ref.data();
    fastar::bucketed_attention_head(a, &scratch);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t c = 0; c < hd; ++c)
        attn_err = std::max(attn_err, std::fabs(static_cast<double>(g.o[static_cast<size_t>(i * d + h * hd + c)]) -
                                                o_ref[static_cast<size_t>(i * hd + c)]));
      const double lr = lse_ref[static_cast<size_t>(i)], lg = g.lse[static_cast<size_t>(h * n + i)];
      if (std::isinf(lr) || std::isinf(lg)) lse_err = std::max(lse_err, lr == lg ? 0.0 : INFINITY);
      else lse_err = std::max(lse_err, std::fabs(lr - lg) / (1.0 + std::fabs(lr)));
    }
  }
  labels_ok = label_diffs == 0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%lld differing labels of %lld", static_cast<long long>(label_diffs),
                static_cast<long long>(H * (n + m)));
  report(labels_ok, name + ": LSH labels == LshHasher::hash", buf);
  report(sort_ok, name + ": order/offsets == bucket_sort", "");
  report(gather_ok, name + ": gathered k/bias == CPU gather", "");
  std::snprintf(buf, sizeof buf, "executed %llu/%lld dense %llu/%lld (bucket pairs %lld)", g.counters[0],
                static_cast<long long>(executed), g.counters[1], static_cast<long long>(dense),
                static_cast<long long>(bucket_pairs));
  report(plan_ok && g.counters[0] == static_cast<unsigned long long>(executed) &&
             g.counters[1] == static_cast<unsigned long long>(dense),
         name + ": CSR plan == bucket_block_plan", buf);
  std::snprintf(buf, sizeof buf, "|Δo| %.3g (tol %.3g), rel |Δlse| %.3g (tol %.3g)", attn_err, kAttnTol * vmax, lse_err,
                kLseTol);
  report(attn_err <= kAttnTol * vmax && lse_err <= kLseTol, name + ": pipeline == bucketed_attention_head", buf);

  if (P.zero_projections) {  // one bucket: the dense kernel over the valid keys of each head, same bias
    double err = 0;
    for (int64_t h = 0; h < H; ++h) {
      const int64_t valid = valid_rows[static_cast<size_t>(h)];
      std::vector<float> kh(static_cast<size_t>(std::max<int64_t>(valid, 1) * hd)), vh(kh.size()), qh(static_cast<size_t>(n * hd));
      for (int64_t r = 0; r < valid; ++r)
        for (int64_t c = 0; c < hd; ++c) {
          kh[static_cast<size_t>(r * hd + c)] = k[static_cast<size_t>(r * d + h * hd + c)];
          vh[static_cast<size_t>(r * hd + c)] = v[static_cast<size_t>(r * d + h * hd + c)];
        }
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < hd; ++c) qh[static_cast<size_t>(r * hd + c)] = q[static_cast<size_t>(r * d + h * hd + c)];
      DeviceBf16 dq(qh), dk(kh), dv(vh), dout(static_cast<size_t>(n * hd));
      std::vector<float> bh(static_cast<size_t>(std::max<int64_t>(valid, 1)), 0.0f);
      if (P.with_bias) for (int64_t r = 0; r < valid; ++r) bh[static_cast<size_t>(r)] = bias[static_cast<size_t>(h * m + r)];
      DeviceBuffer<float> db(bh);
      fastar::AttentionParams p = fastar::packed_attention_params(dq.get(), dk.get(), dv.get(), dout.get(), n, valid, 1, hd);
      p.key_bias = db.ptr;
      CHECK_CUDA(fastar::cuda::attention_forward_bf16(p, nullptr));
      CHECK_CUDA(cudaDeviceSynchronize());
      const std::vector<float> od = dout.download();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < hd; ++c)
          err = std::max(err, std::fabs(static_cast<double>(od[static_cast<size_t>(i * hd + c)]) -
                                        g.o[static_cast<size_t>(i * d + h * hd + c)]));
    }
    std::snprintf(buf, sizeof buf, "|Δo| vs GPU dense %.3g (tol %.3g)", err, kSameKernelTol * vmax);
    report(err <= kSameKernelTol * vmax, name + ": single bucket == dense attention", buf);
  }
}

// Scatter/merge vs merge_attention_parts on random parts (some lse −inf on either side or both).
void check_merge(int64_t heads, int64_t hd, int64_t n, bool merge) {
  using namespace fastar::cuda;
  std::mt19937 rng(99 + static_cast<uint32_t>(merge));
  const int64_t d = heads * hd, pad = round_up(n, 64);
  std::vector<float> part1 = random_bf16(static_cast<size_t>(n * d), rng), sorted = random_bf16(static_cast<size_t>(heads * pad * hd), rng);
  std::vector<float> lse1(static_cast<size_t>(heads * n)), lse2(static_cast<size_t>(heads * pad));
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (float& l : lse1) l = normal(rng);
  for (float& l : lse2) l = normal(rng);
  for (size_t i = 0; i < lse1.size(); i += 7) lse1[i] = kNegInf;
  for (size_t i = 0; i < lse2.size(); i += 5) lse2[i] = kNegInf;
  std::vector<int32_t> order(static_cast<size_t>(heads * n));
  for (int64_t h = 0; h < heads; ++h) {
    std::vector<int32_t> perm(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::copy(perm.begin(), perm.end(), order.begin() + h * n);
  }
  DeviceBf16 dout(part1), dsorted(sorted);
  DeviceBuffer<float> dl1(lse1), dl2(lse2), dlo(static_cast<size_t>(heads * n));
  DeviceBuffer<int32_t> dorder(order);
  AnnScatterArgs a;
  a.sorted_o = dsorted.get();
  a.sorted_lse = dl2.ptr;
  a.order = dorder.ptr;
  a.order_head_stride = n;
  a.out = dout.get();
  a.out_row_stride = d;
  a.out_head_stride = hd;
  a.own_lse = merge ? dl1.ptr : nullptr;
  a.lse_out = dlo.ptr;
  a.lse_head_stride = n;
  a.rows = n;
  a.rows_pad = pad;
  a.heads = heads;
  a.head_dim = hd;
  CHECK_CUDA(ann_scatter_merge_bf16(a, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());
  const std::vector<float> got = dout.download(), got_lse = dlo.download();
  // Reference: scatter the sorted part to row order, then merge_attention_parts (or plain copy).
  std::vector<float> ref = part1, ref_lse = lse1, o2(static_cast<size_t>(n * d)), l2(static_cast<size_t>(heads * n));
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = order[static_cast<size_t>(h * n + i)];
      std::memcpy(o2.data() + r * d + h * hd, sorted.data() + (h * pad + i) * hd, static_cast<size_t>(hd) * 4);
      l2[static_cast<size_t>(h * n + r)] = lse2[static_cast<size_t>(h * pad + i)];
    }
  if (merge) {
    for (int64_t h = 0; h < heads; ++h)
      fastar::merge_attention_parts(ref.data() + h * hd, ref_lse.data() + h * n, d, 1, o2.data() + h * hd, l2.data() + h * n, d, 1, n, hd);
  } else {
    ref = o2;
    ref_lse = l2;
  }
  double err = 0, lerr = 0;
  bool ok = true;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::fabs(static_cast<double>(got[i]) - ref[i]);
    err = std::max(err, e);
    ok &= e <= std::ldexp(std::fabs(ref[i]), -8) + 1e-6;
  }
  for (size_t i = 0; i < ref_lse.size(); ++i) {
    if (std::isinf(ref_lse[i]) || std::isinf(got_lse[i])) {
      ok &= ref_lse[i] == got_lse[i];
      continue;
    }
    const double e = std::fabs(static_cast<double>(got_lse[i]) - ref_lse[i]) / (1.0 + std::fabs(ref_lse[i]));
    lerr = std::max(lerr, e);
    ok &= e <= 1e-5;
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "max |Δo| %.3g, rel |Δlse| %.3g", err, lerr);
  report(ok, merge ? "scatter+merge == merge_attention_parts" : "scatter == CPU scatter", buf);
}

// ---- CudaAnnSaMemory vs AnnSaMemory -------------------------------------------------------------------------

struct MemoryCase {
  std::string name;
  std::string inner;  // "window" or "tempcache"
  int64_t layers = 2, heads = 2, hd = 64, tpf = 96, chunk_frames = 2, chunks = 4;
  int bits = 2;
  int64_t block_q = 64, block_k = 64;
  fastar::AnnSaOwnKeys own = fastar::AnnSaOwnKeys::dense;
  std::vector<int64_t> sparse_layers;  // empty = all
};

void check_memory(const MemoryCase& mc) {
  using fastar::cuda::CudaAnnSaMemory;
  const int64_t L = mc.layers, H = mc.heads, hd = mc.hd, d = H * hd, tpf = mc.tpf, cf = mc.chunk_frames;
  const int64_t n = cf * tpf;
  fastar::AnnSaOptions options;
  options.bits = mc.bits;
  options.seed = 0x5eed + static_cast<uint64_t>(mc.bits);
  options.block_q = mc.block_q;
  options.block_k = mc.block_k;
  options.own_keys = mc.own;
  options.schedule.dense_above_timestep = 500.0;  // steps at 1000 and 750 dense, 250 and the clean pass sparse
  options.schedule.layers = mc.sparse_layers;
  fastar::TempCacheOptions tc;
  tc.seed = 3;
  std::unique_ptr<fastar::CrossFrameMemory> cpu_inner;
  std::unique_ptr<fastar::cuda::CudaCrossFrameMemory> gpu_inner;
  const int64_t window = 3, sink = 1;
  if (mc.inner == "window") {
    cpu_inner = std::make_unique<fastar::WindowMemory>(L, H, hd, window, sink);
    gpu_inner = std::make_unique<fastar::cuda::CudaKvCache>(L, H, hd, tpf, sink + window + cf, window, sink);
  } else {
    cpu_inner = std::make_unique<fastar::TempCacheMemory>(L, H, hd, tc);
    gpu_inner = std::make_unique<fastar::cuda::CudaTempCacheMemory>(L, H, hd, tpf, cf, mc.chunks * n, tc);
  }
  fastar::AnnSaMemory cpu(std::move(cpu_inner), L, H, hd, options, nullptr);
  CudaAnnSaMemory gpu(std::move(gpu_inner), L, H, hd, n, options);
  std::mt19937 rng(4242);
  // TempCache: the clean pass repeats one base frame per layer (identical keys merge exactly on both sides).
  std::vector<std::vector<float>> base_k, base_v;
  for (int64_t l = 0; l < L; ++l) {
    base_k.push_back(random_bf16(static_cast<size_t>(tpf * d), rng));
    base_v.push_back(random_bf16(static_cast<size_t>(tpf * d), rng));
  }
  const float steps[] = {1000.0f, 750.0f, 250.0f, 0.0f};
  double worst = 0, tol_worst = 0;
  bool ok = true;
  int64_t sparse_seen = 0;
  std::string where;
  DeviceBf16 dq(static_cast<size_t>(n * d)), dout(static_cast<size_t>(n * d));
  for (int64_t chunk = 0; chunk < mc.chunks && ok; ++chunk) {
    for (int s = 0; s < 4 && ok; ++s) {
      const bool commit = s == 3;
      std::vector<float> ts(static_cast<size_t>(cf), steps[s]);
      fastar::MemoryCall call;
      call.frame_start = chunk * cf;
      call.num_frames = cf;
      call.tokens_per_frame = tpf;
      call.commit = commit;
      call.timesteps = ts.data();
      fastar::cuda::CudaMemoryCall gcall{chunk * cf, cf, tpf, commit, ts.data()};
      gpu.begin(gcall);
      sparse_seen += gpu.call_is_sparse();
      for (int64_t l = 0; l < L && ok; ++l) {
        std::vector<float> q = random_bf16(static_cast<size_t>(n * d), rng), k, v;
        if (commit && mc.inner == "tempcache") {
          for (int64_t f = 0; f < cf; ++f) {
            k.insert(k.end(), base_k[static_cast<size_t>(l)].begin(), base_k[static_cast<size_t>(l)].end());
            v.insert(v.end(), base_v[static_cast<size_t>(l)].begin(), base_v[static_cast<size_t>(l)].end());
          }
        } else {
          k = random_bf16(static_cast<size_t>(n * d), rng);
          v = random_bf16(static_cast<size_t>(n * d), rng);
        }
        const std::vector<uint16_t> kb = to_bf16(k), vb = to_bf16(v);
        CHECK_CUDA(cudaMemcpy(gpu.chunk_k(l), kb.data(), kb.size() * 2, cudaMemcpyHostToDevice));
        CHECK_CUDA(cudaMemcpy(gpu.chunk_v(l), vb.data(), vb.size() * 2, cudaMemcpyHostToDevice));
        dq.buf.upload(to_bf16(q));
        gpu.attend(l, dq.get(), dout.get(), nullptr, nullptr);
        CHECK_CUDA(cudaDeviceSynchronize());
        const std::vector<float> got = dout.download();
        std::vector<float> ref(static_cast<size_t>(n * d));
        cpu.attend(l, call, q.data(), k.data(), v.data(), ref.data());
        double err = 0;
        for (size_t i = 0; i < ref.size(); ++i) err = std::max(err, std::fabs(static_cast<double>(got[i]) - ref[i]));
        const double tol = kAttnTol * std::max(max_abs(v), 1.0);
        if (err > tol) {
          ok = false;
          char buf[160];
          std::snprintf(buf, sizeof buf, "chunk %lld step %d layer %lld: |Δ| %.3g > %.3g", static_cast<long long>(chunk), s,
                        static_cast<long long>(l), err, tol);
          where = buf;
        }
        worst = std::max(worst, err);
        tol_worst = std::max(tol_worst, tol);
      }
      if (commit) gpu.commit(nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
    }
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "max |Δ| %.3g (tol %.3g), %lld sparse forwards %s", worst, tol_worst,
                static_cast<long long>(sparse_seen), where.c_str());
  report(ok && sparse_seen > 0, mc.name + ": CudaAnnSaMemory == AnnSaMemory", buf);
  const fastar::SparseStats gs = gpu.stats();
  const fastar::SparseStats& cs = cpu.stats();
  bool stats_ok = true;
  std::string densities;
  for (int64_t l = 0; l < L; ++l) {
    const auto &a = gs.layer(l), &b = cs.layer(l);
    stats_ok &= a.sparse_calls == b.sparse_calls && a.executed == b.executed && a.dense == b.dense;
    std::snprintf(buf, sizeof buf, " L%lld %.4f/%.4f (%lld/%lld calls)", static_cast<long long>(l), a.density(), b.density(),
                  static_cast<long long>(a.sparse_calls), static_cast<long long>(b.sparse_calls));
    densities += buf;
  }
  report(stats_ok, mc.name + ": density stats == CPU", "GPU/CPU" + densities);
}

// ---- bench ----------------------------------------------------------------------------------------------

void bench() {
  const int64_t H = 12, hd = 128, d = H * hd, tpf = 1560, cf = 3, n = cf * tpf;
  cudaStream_t st;
  CHECK_CUDA(cudaStreamCreate(&st));
  std::printf("\nAnnSA per layer, Wan2.1-1.3B shapes (%lld queries, %lld heads x %lld), random bf16 q/k/v\n\n",
              static_cast<long long>(n), static_cast<long long>(H), static_cast<long long>(hd));
  // The cached keys are sorted once per chunk, at commit; a Self-Forcing chunk (4 steps + the clean pass,
  // the first 30% of the steps dense) makes 3 sparse calls per layer on the sorted copy.
  constexpr int kSparseCallsPerChunk = 3;
  std::printf("| cached frames | own keys | bits | blocks | density | dense ms | own-keys dense ms | AnnSA call ms | AnnSA / dense"
              " | sort at commit ms | per chunk: (%d calls + sort) / %d dense |\n", kSparseCallsPerChunk, kSparseCallsPerChunk);
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::mt19937 rng(7);
  const std::vector<float> qh = random_bf16(static_cast<size_t>(n * d), rng);
  DeviceBf16 q(qh), out(static_cast<size_t>(n * d));
  for (int64_t frames : {9, 21}) {
    // Dense baseline: one contiguous [cache + chunk] buffer.
    const int64_t kv = frames * tpf + n;
    const std::vector<float> kh = random_bf16(static_cast<size_t>(kv * d), rng), vh = random_bf16(static_cast<size_t>(kv * d), rng);
    DeviceBf16 k(kh), v(vh);
    fastar::AttentionParams dp = fastar::packed_attention_params(q.get(), k.get(), v.get(), out.get(), n, kv, H, hd);
    const float dense_ms = time_ms(st, 10, [&] { CHECK_CUDA(fastar::cuda::attention_forward_bf16(dp, st)); });
    fastar::AttentionParams op = fastar::packed_attention_params(q.get(), k.get(), v.get(), out.get(), n, n, H, hd);
    const float own_ms = time_ms(st, 10, [&] { CHECK_CUDA(fastar::cuda::attention_forward_bf16(op, st)); });
    for (fastar::AnnSaOwnKeys own : {fastar::AnnSaOwnKeys::dense, fastar::AnnSaOwnKeys::sparse})
    for (int bits : {2, 3, 4}) {
      // 128x128: the Hopper (wgmma) kernel's tiles; 128x64 and 64x64 run on the mma.sync kernel.
      const std::pair<int64_t, int64_t> kBlocks[] = {{128, 128}, {128, 64}, {64, 64}};
      for (const auto& [bq, bk] : kBlocks) {
        fastar::AnnSaOptions options;
        options.bits = bits;
        options.block_q = bq;
        options.block_k = bk;
        options.own_keys = own;
        const bool own_dense = own == fastar::AnnSaOwnKeys::dense;
        auto inner = std::make_unique<fastar::cuda::CudaKvCache>(1, H, hd, tpf, frames + cf);
        fastar::cuda::CudaAnnSaMemory mem(std::move(inner), 1, H, hd, n, options);
        for (int64_t f = 0; f < frames; f += cf) {  // fill the cache with the baseline's keys, chunk by chunk
          const int64_t take = std::min(cf, frames - f);
          mem.begin(fastar::cuda::CudaMemoryCall{f, take, tpf, true, nullptr});
          CHECK_CUDA(cudaMemcpy(mem.chunk_k(0), k.get() + f * tpf * d, static_cast<size_t>(take * tpf * d * 2), cudaMemcpyDeviceToDevice));
          CHECK_CUDA(cudaMemcpy(mem.chunk_v(0), v.get() + f * tpf * d, static_cast<size_t>(take * tpf * d * 2), cudaMemcpyDeviceToDevice));
          mem.commit(st);
        }
        mem.begin(fastar::cuda::CudaMemoryCall{frames, cf, tpf, false, nullptr});
        CHECK_CUDA(cudaMemcpy(mem.chunk_k(0), k.get() + frames * tpf * d, static_cast<size_t>(n * d * 2), cudaMemcpyDeviceToDevice));
        CHECK_CUDA(cudaMemcpy(mem.chunk_v(0), v.get() + frames * tpf * d, static_cast<size_t>(n * d * 2), cudaMemcpyDeviceToDevice));
        const float ann_ms = time_ms(st, 10, [&] { mem.attend(0, q.get(), out.get(), st, nullptr); });
        const fastar::SparseStats s = mem.stats();
        const float sort_ms = time_ms(st, 10, [&] { mem.sort_cached_keys(st); });
        const float chunk_ratio = (kSparseCallsPerChunk * ann_ms + sort_ms) / (kSparseCallsPerChunk * dense_ms);
        char own_col[32] = "-";  // bucketed own keys have no dense part
        if (own_dense) std::snprintf(own_col, sizeof own_col, "%.3f", own_ms);
        std::printf("| %lld | %s | %d | %lldx%lld | %.3f | %.3f | %s | %.3f | %.2fx | %.3f | %.2fx |\n",
                    static_cast<long long>(frames), own_dense ? "dense" : "bucketed", bits, static_cast<long long>(bq),
                    static_cast<long long>(bk),
                    s.layer(0).density(), dense_ms, own_col, ann_ms, ann_ms / dense_ms, sort_ms, chunk_ratio);
      }
    }
  }
  std::printf("\n(issue target: at density ~0.3, AnnSA with every overhead <= 0.45x dense: the last column)\n");
  CHECK_CUDA(cudaStreamDestroy(st));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc > 1 && std::string(argv[1]) == "--bench") {
      bench();
      return 0;
    }
    // Kernels: several shapes, both block sizes, bias with excluded rows, sizes off the block grid.
    check_kernels({3, 64, 300, 700, 3, 64, 64, true, false, 11}, "h3 hd64 n300 m700 bits3 64x64 bias");
    check_kernels({2, 128, 517, 1333, 2, 128, 64, false, false, 12}, "h2 hd128 n517 m1333 bits2 128x64");
    check_kernels({4, 128, 1024, 2100, 8, 128, 128, true, false, 13}, "h4 hd128 n1024 m2100 bits8 128x128 bias");
    check_kernels({2, 64, 5000, 4500, 4, 64, 64, false, false, 14}, "h2 hd64 n5000 m4500 bits4 (multi-segment sort)");
    check_kernels({2, 128, 200, 0, 2, 128, 64, false, false, 15}, "h2 hd128 n200 m0 (no cached keys)");
    check_kernels({3, 128, 400, 900, 2, 128, 64, true, true, 16}, "single bucket 128x64 bias");
    check_kernels({2, 64, 333, 777, 3, 64, 64, false, true, 17}, "single bucket 64x64");
    check_merge(3, 64, 300, true);
    check_merge(2, 128, 517, true);
    check_merge(2, 128, 517, false);
    // Memory: window and TempCache, own keys dense and sparse, both block sizes, a layer subset.
    check_memory({"window bits2 own-dense 64x64", "window"});
    check_memory({"window bits3 own-dense 128x64 hd128 layer 1", "window", 2, 2, 128, 96, 2, 4, 3, 128, 64,
                  fastar::AnnSaOwnKeys::dense, {1}});
    check_memory({"window bits2 own-sparse 64x64", "window", 2, 2, 64, 96, 2, 4, 2, 64, 64, fastar::AnnSaOwnKeys::sparse, {}});
    // Own keys bucketed, cached rows off the block grid (100 tokens per frame): padding between the segments.
    check_memory({"window bits3 own-sparse 128x64 hd128 tpf100 layer 0", "window", 2, 3, 128, 100, 3, 5, 3, 128, 64,
                  fastar::AnnSaOwnKeys::sparse, {0}});
    check_memory({"tempcache bits2 own-dense 64x64", "tempcache"});
    check_memory({"tempcache bits2 own-sparse 128x128 hd128", "tempcache", 2, 2, 128, 96, 2, 3, 2, 128, 128,
                  fastar::AnnSaOwnKeys::sparse, {}});
    // Bad input: options the GPU path lacks must be a fastar::Error.
    {
      bool threw = false;
      std::string message;
      try {
        fastar::AnnSaOptions o;
        o.bits = 9;
        fastar::cuda::CudaAnnSaMemory m(std::make_unique<fastar::cuda::CudaKvCache>(1, 2, 64, 16, 4), 1, 2, 64, 32, o);
      } catch (const fastar::Error& e) {
        threw = true;
        message = e.what();
      }
      report(threw, "bits 9 -> fastar::Error", message.substr(0, 80));
    }
  } catch (const std::exception& e) {
    std::printf("FAIL exception: %s\n", e.what());
    ++failures;
  }
  std::printf("%s: %d failed\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
