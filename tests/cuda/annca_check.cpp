// Standalone GPU check of AnnCA on the GPU (kernels/cuda/annca_ops.h, attention/cuda/annca_cuda.h) against
// the CPU reference (not CTest: CI has no GPU). Built by tests/cuda_checks.cmake as cuda_annca_check.
//
//   cuda_annca_check          correctness, one PASS/FAIL line each, exit 1 on any FAIL:
//     codes     ann_lsh_labels_bf16 once per table (projections + t·bits·head_dim) identical to
//               LshHasher::hash with AnnCA's tables (annca_lsh_params);
//     keep      annca_occupancy's bitmaps identical to annca_keep_lsh's occupied buckets, annca_key_bias's
//               kept mask identical to annca_keep_lsh per (frame, head), padding rows (sink log(count) or
//               −inf), and its density counters identical to the CPU's sums;
//     policy    CudaAnnCrossAttention::attend vs AnnCrossAttention::attend on one hand-built WanPrompt
//               (identical padding rows): several layers and frames, dense and sparse steps and a mixed
//               (Rolling Forcing) call via timesteps, a layer subset, padding sink on/off, valid == rows,
//               valid == 0 (dense); then stats() == the CPU's stats (identical products and frame counts);
//     errors    quant search, diagnostics, bits > 8 → fastar::Error.
//   cuda_annca_check --bench  per-layer cross-attention at Wan2.1-1.3B shapes (4680 queries = 3 frames × 1560,
//               12 heads × 128, 512 prompt rows of which 60 valid): dense vs CudaAnnCrossAttention::attend
//               (everything of a call included), with the measured density; a table.
//
// Inputs are bf16-exact floats, so the CPU and the GPU see the same numbers. Tolerances:
//   codes, bitmaps, kept masks, bias values, density products: exact;
//   attention (bf16 P·V and output on the GPU vs fp32 on the CPU): |Δo| ≤ kAttnTol · max(max|v|, 1).
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
#include <vector>

#include "fastar/attention/ann_cross_attention.h"
#include "fastar/attention/ann_lsh.h"
#include "fastar/attention/cuda/annca_cuda.h"
#include "fastar/core/dtype.h"
#include "fastar/core/error.h"
#include "fastar/core/tensor.h"
#include "fastar/kernels/cpu/attention.h"
#include "fastar/kernels/cuda/ann_bucket_ops.h"
#include "fastar/kernels/cuda/annca_ops.h"
#include "fastar/kernels/cuda/flash_attention.h"
#include "bf16_data.h"
#include "check_util.h"

namespace {

using bf16 = __nv_bfloat16;
constexpr double kAttnTol = 1.5e-2;

int failures = 0;
void report(bool ok, const std::string& name, const std::string& detail) {
  std::printf("%-4s %-62s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  if (!ok) ++failures;
}


std::string fmt(const char* format, double a, double b = 0, double c = 0, double d = 0) {
  char buf[200];
  std::snprintf(buf, sizeof buf, format, a, b, c, d);
  return buf;
}

// GPU query codes of q [rows, heads·hd], per table: [tables, heads, rows].
std::vector<uint32_t> gpu_query_codes(const fastar::LshHasher& hasher, const DeviceBf16& q, int64_t rows, int64_t heads,
                                      int64_t hd) {
  const int tables = hasher.tables(), bits = hasher.bits();
  const std::vector<float> proj(hasher.projections(), hasher.projections() + static_cast<size_t>(tables) * bits * hd);
  DeviceBuffer<float> dproj(proj);
  DeviceBuffer<uint32_t> codes(static_cast<size_t>(tables * heads * rows));
  for (int t = 0; t < tables; ++t)
    CHECK_CUDA(fastar::cuda::ann_lsh_labels_bf16(q.get(), rows, heads, hd, heads * hd, hd, dproj.ptr + t * bits * hd, 0, bits,
                                                 nullptr, 0, 0, codes.ptr + t * heads * rows, rows, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());
  return codes.download();
}

// AnnCrossAttention's hasher (annca_lsh_params) for these LSH settings.
fastar::LshHasher annca_hasher(int tables, int bits, uint64_t seed, int64_t hd) {
  fastar::AnnCaOptions o;
  o.tables = tables;
  o.bits = bits;
  o.label_bits = 1;
  o.seed = seed;
  return fastar::LshHasher(fastar::annca_lsh_params(o, hd));
}

// ---- (a) query codes ---------------------------------------------------------------------------------------

void check_codes(int64_t heads, int64_t hd, int64_t rows, int tables, int bits, uint64_t seed) {
  const fastar::LshHasher hasher = annca_hasher(tables, bits, seed, hd);
  std::mt19937 rng(static_cast<unsigned>(seed));
  const int64_t d = heads * hd;
  const std::vector<float> q = random_bf16(static_cast<size_t>(rows * d), rng);
  const DeviceBf16 dq(q);
  const std::vector<uint32_t> got = gpu_query_codes(hasher, dq, rows, heads, hd);
  int64_t mismatches = 0;
  std::vector<uint32_t> ref(static_cast<size_t>(rows * tables));
  for (int64_t h = 0; h < heads; ++h) {
    hasher.hash(q.data() + h * hd, rows, d, ref.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int t = 0; t < tables; ++t)
        mismatches += got[static_cast<size_t>((t * heads + h) * rows + r)] != ref[static_cast<size_t>(r * tables + t)];
  }
  report(mismatches == 0,
         "codes h" + std::to_string(heads) + " hd" + std::to_string(hd) + " n" + std::to_string(rows) + " " +
             std::to_string(tables) + "x" + std::to_string(bits) + " == LshHasher::hash",
         std::to_string(mismatches) + " mismatches of " + std::to_string(rows * heads * tables));
}

// ---- (b) occupancy + key bias vs annca_keep_lsh ------------------------------------------------------------

void check_keep(int64_t heads, int64_t hd, int64_t frames, int64_t tpf, int64_t rows, int64_t valid, int tables, int bits,
                bool sink, uint64_t seed) {
  using namespace fastar::cuda;
  const fastar::LshHasher hasher = annca_hasher(tables, bits, seed, hd);
  std::mt19937 rng(static_cast<unsigned>(seed) + 1);
  const int64_t d = heads * hd, n = frames * tpf;
  const std::vector<float> q = random_bf16(static_cast<size_t>(n * d), rng);
  const std::vector<float> k = random_bf16(static_cast<size_t>(std::max<int64_t>(valid, 1) * d), rng);
  const DeviceBf16 dq(q);
  const std::vector<uint32_t> qc = gpu_query_codes(hasher, dq, n, heads, hd);  // [tables, heads, n]
  // Prompt key codes on the host, AnnCrossAttention's layout [heads, valid, tables].
  std::vector<uint32_t> kc(static_cast<size_t>(std::max<int64_t>(heads * valid * tables, 1)), 0u);
  for (int64_t h = 0; h < heads; ++h) hasher.hash(k.data() + h * hd, valid, d, kc.data() + h * valid * tables);
  DeviceBuffer<uint32_t> dqc(qc), dkc(kc);
  const int64_t words = kAnnCaOccupancyWords;
  DeviceBuffer<uint32_t> occ(static_cast<size_t>(frames * heads * tables * words));
  CHECK_CUDA(cudaMemset(occ.ptr, 0xff, occ.count * 4));  // the kernel must write every word
  AnnCaOccupancyArgs oa;
  oa.codes = dqc.ptr;
  oa.code_table_stride = heads * n;
  oa.code_head_stride = n;
  oa.frames = frames;
  oa.rows_per_frame = tpf;
  oa.heads = heads;
  oa.tables = tables;
  oa.bits = bits;
  oa.occupancy = occ.ptr;
  CHECK_CUDA(annca_occupancy(oa, nullptr));
  const int64_t bias_stride = rows + 3;  // a head stride past the rows
  DeviceBuffer<float> bias(static_cast<size_t>(frames * heads * bias_stride));
  DeviceBuffer<unsigned long long> counters(2);
  CHECK_CUDA(cudaMemset(counters.ptr, 0, 16));
  AnnCaKeyBiasArgs ba;
  ba.occupancy = occ.ptr;
  ba.key_codes = valid > 0 ? dkc.ptr : nullptr;
  ba.key_code_head_stride = valid * tables;
  ba.frames = frames;
  ba.heads = heads;
  ba.tables = tables;
  ba.bits = bits;
  ba.valid_rows = valid;
  ba.prompt_rows = rows;
  ba.padding_sink = sink;
  ba.sink_bias = sink ? static_cast<float>(std::log(static_cast<double>(rows - valid))) : 0.0f;
  ba.bias = bias.ptr;
  ba.bias_head_stride = bias_stride;
  ba.bias_frame_stride = heads * bias_stride;
  ba.tokens_per_frame = tpf;
  ba.counters = counters.ptr;
  ba.counted_frames = (uint64_t{1} << frames) - 1 - (frames > 1 ? 2u : 0u);  // frame 1 not counted
  CHECK_CUDA(annca_key_bias(ba, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());
  const std::vector<uint32_t> got_occ = occ.download();
  const std::vector<float> got_bias = bias.download();
  const std::vector<unsigned long long> got_counters = counters.download();

  int64_t occ_bad = 0, keep_bad = 0, pad_bad = 0, kept_total = 0;
  unsigned long long executed = 0, dense = 0;
  const size_t buckets = size_t{1} << bits;
  std::vector<uint32_t> frame_codes(static_cast<size_t>(tpf * tables));
  std::vector<uint8_t> kept;
  for (int64_t f = 0; f < frames; ++f) {
    const bool counted = (ba.counted_frames >> f) & 1u;
    if (counted) dense += static_cast<unsigned long long>(tpf * rows * heads);
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < tpf; ++i)
        for (int t = 0; t < tables; ++t)
          frame_codes[static_cast<size_t>(i * tables + t)] = qc[static_cast<size_t>((t * heads + h) * n + f * tpf + i)];
      // The occupied buckets, as annca_keep_lsh builds them.
      std::vector<uint8_t> occupied(buckets * static_cast<size_t>(tables), 0);
      for (int64_t i = 0; i < tpf; ++i)
        for (int t = 0; t < tables; ++t) occupied[t * buckets + frame_codes[static_cast<size_t>(i * tables + t)]] = 1;
      for (int t = 0; t < tables; ++t)
        for (int64_t w = 0; w < words; ++w) {
          uint32_t want = 0;
          for (int b = 0; b < 32; ++b)
            if (static_cast<size_t>(w * 32 + b) < buckets && occupied[t * buckets + static_cast<size_t>(w * 32 + b)]) want |= 1u << b;
          occ_bad += got_occ[static_cast<size_t>(((f * heads + h) * tables + t) * words + w)] != want;
        }
      fastar::annca_keep_lsh(frame_codes.data(), tpf, kc.data() + h * valid * tables, valid, tables, bits, &kept);
      const float* b = got_bias.data() + (f * heads + h) * bias_stride;
      int64_t kept_here = 0;
      for (int64_t p = 0; p < valid; ++p) {
        const bool k_gpu = b[p] == 0.0f, k_cpu = kept[static_cast<size_t>(p)] != 0;
        keep_bad += k_gpu != k_cpu || (!k_gpu && b[p] != -INFINITY);
        kept_here += k_cpu;
      }
      for (int64_t p = valid; p < rows; ++p) {
        const float want = sink && p == valid ? ba.sink_bias : -INFINITY;
        pad_bad += b[p] != want;
      }
      const int64_t with_sink = kept_here + (sink ? 1 : 0);
      kept_total += kept_here;
      if (counted) executed += static_cast<unsigned long long>(tpf * with_sink);
    }
  }
  const std::string name = "keep f" + std::to_string(frames) + " tpf" + std::to_string(tpf) + " rows" + std::to_string(rows) +
                           "/" + std::to_string(valid) + " " + std::to_string(tables) + "x" + std::to_string(bits) +
                           (sink ? " sink" : " drop");
  report(occ_bad == 0, name + ": occupancy == annca_keep_lsh's", std::to_string(occ_bad) + " words differ");
  report(keep_bad == 0 && pad_bad == 0, name + ": kept mask == annca_keep_lsh",
         std::to_string(keep_bad) + " kept / " + std::to_string(pad_bad) + " padding differ, kept " +
             fmt("%.3f", valid > 0 ? static_cast<double>(kept_total) / static_cast<double>(frames * heads * valid) : 0.0));
  report(got_counters[0] == executed && got_counters[1] == dense, name + ": counters == CPU sums",
         fmt("executed %.0f/%.0f dense %.0f/%.0f", static_cast<double>(got_counters[0]), static_cast<double>(executed),
             static_cast<double>(got_counters[1]), static_cast<double>(dense)));
}

// ---- (c) + (d) the policy vs AnnCrossAttention -------------------------------------------------------------

struct PolicyCase {
  std::string name;
  int64_t layers = 3, heads = 2, hd = 64, tpf = 96, frames = 3, rows = 40, valid = 13;
  int tables = 4, bits = 6;
  bool padding_sink = true;
  std::vector<int64_t> sparse_layers;  // empty = all
  int chunks = 2;
  int64_t rows2 = 0, valid2 = 0;  // > 0: from the second chunk on, a new prompt of rows2 rows (valid2 real)
  bool expect_selective = false;  // the sparse frames must drop some real rows (density below every-real-row's)
};

fastar::WanPrompt make_prompt(const PolicyCase& pc, std::mt19937& rng, uint64_t id) {
  fastar::WanPrompt prompt;
  prompt.rows = pc.rows;
  prompt.valid_rows = pc.valid;
  prompt.id = id;
  const int64_t d = pc.heads * pc.hd;
  for (int64_t l = 0; l < pc.layers; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      fastar::Tensor t = fastar::Tensor::zeros({pc.rows, d});
      float* x = t.data<float>();
      const std::vector<float> real = random_bf16(static_cast<size_t>(pc.rows * d), rng);
      std::copy(real.begin(), real.end(), x);
      // Padding rows: all equal to one row (what zero context rows give after the K/V projections + norm).
      for (int64_t r = pc.valid + 1; r < pc.rows; ++r) std::copy(x + pc.valid * d, x + (pc.valid + 1) * d, x + r * d);
      (kv == 0 ? prompt.cross_k : prompt.cross_v).push_back(t);
    }
  }
  return prompt;
}

void check_policy(const PolicyCase& pc) {
  using fastar::cuda::CudaAnnCrossAttention;
  const int64_t L = pc.layers, H = pc.heads, hd = pc.hd, d = H * hd, tpf = pc.tpf, F = pc.frames, n = F * tpf;
  fastar::AnnCaOptions options;
  options.tables = pc.tables;
  options.bits = pc.bits;
  options.label_bits = 1;
  options.seed = 0xca + static_cast<uint64_t>(pc.bits);
  options.padding_sink = pc.padding_sink;
  options.schedule.dense_above_timestep = 500.0;  // t = 1000, 750 dense; 250 and the clean pass (0) sparse
  options.schedule.layers = pc.sparse_layers;
  fastar::AnnCrossAttention cpu(L, H, hd, options, nullptr);
  CudaAnnCrossAttention gpu(L, H, hd, F, tpf, options);
  std::mt19937 rng(977);
  const fastar::WanPrompt first_prompt = make_prompt(pc, rng, 42);
  PolicyCase second = pc;  // the prompt change (buffers grow or are reused, codes, valid rows, sink re-decided)
  second.rows = pc.rows2 > 0 ? pc.rows2 : pc.rows;
  second.valid = pc.rows2 > 0 ? pc.valid2 : pc.valid;
  const fastar::WanPrompt second_prompt = make_prompt(second, rng, 43);
  const fastar::WanPrompt* prompt_ptr = nullptr;
  std::vector<std::unique_ptr<DeviceBf16>> dk, dv;  // DeviceBuffer is not movable
  auto use_prompt = [&](const fastar::WanPrompt& p) {  // what CudaWanModel::set_prompt does: upload, then the policy
    prompt_ptr = &p;
    dk.clear();
    dv.clear();
    for (int64_t l = 0; l < L; ++l) {
      const float* kx = p.cross_k[static_cast<size_t>(l)].data<float>();
      const float* vx = p.cross_v[static_cast<size_t>(l)].data<float>();
      dk.push_back(std::make_unique<DeviceBf16>(std::vector<float>(kx, kx + p.rows * d)));
      dv.push_back(std::make_unique<DeviceBf16>(std::vector<float>(vx, vx + p.rows * d)));
    }
    gpu.set_prompt(p);
  };
  use_prompt(first_prompt);
  // Steps of a chunk: two dense, one mixed (frames at different steps, as Rolling Forcing), sparse, clean pass.
  const std::vector<std::vector<float>> steps = {{1000, 1000, 1000}, {750, 750, 750}, {1000, 250, 0}, {250, 750, 250},
                                                 {250, 250, 250},   {0, 0, 0}};
  DeviceBf16 dq(static_cast<size_t>(n * d)), dout(static_cast<size_t>(n * d));
  double worst = 0, tol = 0;
  bool ok = true;
  std::string where;
  int64_t sparse_frames = 0;
  uint64_t last_version = gpu.layout_version();
  int64_t version_changes = 0;
  for (int chunk = 0; chunk < pc.chunks && ok; ++chunk) {
    if (chunk == 1 && pc.rows2 > 0) use_prompt(second_prompt);
    const fastar::WanPrompt& prompt = *prompt_ptr;
    for (size_t s = 0; s < steps.size() && ok; ++s) {
      std::vector<float> ts(static_cast<size_t>(F));
      for (int64_t f = 0; f < F; ++f) ts[static_cast<size_t>(f)] = steps[s][static_cast<size_t>(f % 3)];
      gpu.begin(fastar::cuda::CudaCrossAttentionCall{chunk * F, F, tpf, ts.data()});
      version_changes += gpu.layout_version() != last_version;
      last_version = gpu.layout_version();
      for (int64_t l = 0; l < L && ok; ++l) {
        for (int64_t f = 0; f < F; ++f) sparse_frames += gpu.frame_is_sparse(l, f);
        const std::vector<float> q = random_bf16(static_cast<size_t>(n * d), rng);
        dq.buf.upload(to_bf16(q));
        gpu.attend(l, dq.get(), dk[static_cast<size_t>(l)]->get(), dv[static_cast<size_t>(l)]->get(), prompt.rows, dout.get(),
                   nullptr);
        CHECK_CUDA(cudaDeviceSynchronize());
        const std::vector<float> got = dout.download();
        std::vector<float> ref(static_cast<size_t>(n * d));
        fastar::CrossAttentionCall call{l, chunk * F, F, tpf, ts.data(), H, hd, prompt.id, prompt.rows, prompt.valid_rows};
        cpu.attend(call, q.data(), prompt.cross_k[static_cast<size_t>(l)].data<float>(),
                   prompt.cross_v[static_cast<size_t>(l)].data<float>(), ref.data());
        double err = 0;
        for (size_t i = 0; i < ref.size(); ++i) err = std::max(err, std::fabs(static_cast<double>(got[i]) - ref[i]));
        const float* vx = prompt.cross_v[static_cast<size_t>(l)].data<float>();
        const double t = kAttnTol * std::max(max_abs(std::vector<float>(vx, vx + prompt.rows * d)), 1.0);
        if (!(err <= t)) {
          ok = false;
          where = fmt("chunk %.0f step %.0f layer %.0f", chunk, static_cast<double>(s), static_cast<double>(l));
        }
        worst = std::max(worst, err);
        tol = std::max(tol, t);
      }
    }
  }
  const bool expect_sparse = pc.valid > 0;
  report(ok && (sparse_frames > 0) == expect_sparse, pc.name + ": attend == AnnCrossAttention",
         fmt("max |d| %.3g (tol %.3g), %.0f sparse layer-frames, %.0f version changes ", worst, tol,
             static_cast<double>(sparse_frames), static_cast<double>(version_changes)) + where);
  const fastar::SparseStats gs = gpu.stats();
  const fastar::SparseStats& cs = cpu.stats();
  bool stats_ok = true;
  std::string densities;
  for (int64_t l = 0; l < L; ++l) {
    const auto &a = gs.layer(l), &b = cs.layer(l);
    stats_ok &= a.sparse_calls == b.sparse_calls && a.dense_calls == b.dense_calls && a.executed == b.executed &&
                a.dense == b.dense;
    densities += fmt(" L%.0f %.4f/%.4f (%.0f/%.0f", static_cast<double>(l), a.density(), b.density(),
                     static_cast<double>(a.sparse_calls)) +
                 fmt("/%.0f sparse)", static_cast<double>(b.sparse_calls));
  }
  report(stats_ok, pc.name + ": density stats == CPU", "GPU/CPU" + densities);
  if (pc.expect_selective) {  // every real row + the sink kept would give (valid + 1) / rows
    const double all_real = static_cast<double>(pc.valid + 1) / static_cast<double>(pc.rows);
    report(gs.total().density() < all_real - 0.05, pc.name + ": some real rows dropped",
           fmt("density %.4f vs %.4f with every real row kept", gs.total().density(), all_real));
  }
}

// ---- (e) bad options ---------------------------------------------------------------------------------------

void expect_error(const std::string& name, const std::function<void()>& body) {
  bool threw = false;
  std::string message;
  try {
    body();
  } catch (const fastar::Error& e) {
    threw = true;
    message = e.what();
  }
  report(threw, name + " -> fastar::Error", message.substr(0, 90));
}

void check_errors() {
  using fastar::cuda::CudaAnnCrossAttention;
  expect_error("quant search", [] {
    fastar::AnnCaOptions o;
    o.search = fastar::AnnSearch::quant;
    CudaAnnCrossAttention a(2, 2, 64, 3, 16, o);
  });
  expect_error("diagnostics", [] {
    fastar::AnnCaOptions o;
    o.diagnostics = true;
    CudaAnnCrossAttention a(2, 2, 64, 3, 16, o);
  });
  expect_error("bits 9", [] {
    fastar::AnnCaOptions o;
    o.bits = 9;
    CudaAnnCrossAttention a(2, 2, 64, 3, 16, o);
  });
  expect_error("head_dim 96", [] { CudaAnnCrossAttention a(2, 2, 96, 3, 16, fastar::AnnCaOptions{}); });
  expect_error("begin before set_prompt", [] {
    CudaAnnCrossAttention a(2, 2, 64, 3, 16, fastar::AnnCaOptions{});
    a.begin(fastar::cuda::CudaCrossAttentionCall{0, 3, 16, nullptr});
  });
  // Kernel argument checks: cudaErrorInvalidValue, nothing launched.
  fastar::cuda::AnnCaKeyBiasArgs ba;
  ba.frames = 1;
  ba.heads = 1;
  ba.tables = 1;
  ba.bits = 9;
  ba.prompt_rows = 4;
  ba.bias_head_stride = 4;
  const bool bad_bits = fastar::cuda::annca_key_bias(ba, nullptr) == cudaErrorInvalidValue;
  ba.bits = 4;
  ba.valid_rows = 4;
  ba.padding_sink = true;  // no padding row to be the sink
  const bool bad_sink = fastar::cuda::annca_key_bias(ba, nullptr) == cudaErrorInvalidValue;
  report(bad_bits && bad_sink, "kernel args (bits 9, sink without padding) -> cudaErrorInvalidValue", "");
  (void)cudaGetLastError();
}

// ---- bench -------------------------------------------------------------------------------------------------

void bench() {
  const int64_t H = 12, hd = 128, d = H * hd, tpf = 1560, F = 3, n = F * tpf, rows = 512;
  cudaStream_t st;
  CHECK_CUDA(cudaStreamCreate(&st));
  std::printf("\nAnnCA per layer, Wan2.1-1.3B shapes (%lld queries = %lld frames x %lld, %lld heads x %lld, %lld prompt rows),"
              " random bf16 q, identical padding rows\n\n",
              static_cast<long long>(n), static_cast<long long>(F), static_cast<long long>(tpf), static_cast<long long>(H),
              static_cast<long long>(hd), static_cast<long long>(rows));
  std::printf("| valid rows | tables x bits | padding | density | dense ms | AnnCA ms | AnnCA / dense |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  std::mt19937 rng(7);
  DeviceBf16 q(random_bf16(static_cast<size_t>(n * d), rng)), out(static_cast<size_t>(n * d));
  for (int64_t valid : {int64_t{60}, int64_t{200}}) {
    PolicyCase pc;
    pc.layers = 1;
    pc.heads = H;
    pc.hd = hd;
    pc.rows = rows;
    pc.valid = valid;
    const fastar::WanPrompt prompt = make_prompt(pc, rng, 7);
    const float* kx = prompt.cross_k[0].data<float>();
    const float* vx = prompt.cross_v[0].data<float>();
    DeviceBf16 k(std::vector<float>(kx, kx + rows * d)), v(std::vector<float>(vx, vx + rows * d));
    fastar::AttentionParams dp = fastar::packed_attention_params(q.get(), k.get(), v.get(), out.get(), n, rows, H, hd);
    const float dense_ms = time_ms(st, 20, [&] { CHECK_CUDA(fastar::cuda::attention_forward_bf16(dp, st)); });
    for (const auto& [tables, bits] : {std::pair{4, 8}, std::pair{2, 8}, std::pair{1, 4}}) {
      for (bool sink : {true, false}) {
        fastar::AnnCaOptions o;
        o.tables = tables;
        o.bits = bits;
        o.label_bits = 1;
        o.padding_sink = sink;
        fastar::cuda::CudaAnnCrossAttention ann(1, H, hd, F, tpf, o);
        ann.set_prompt(prompt);
        ann.begin(fastar::cuda::CudaCrossAttentionCall{0, F, tpf, nullptr});  // no dense phase: every frame sparse
        const float ann_ms = time_ms(st, 20, [&] { ann.attend(0, q.get(), k.get(), v.get(), rows, out.get(), st); });
        const fastar::SparseStats s = ann.stats();
        std::printf("| %lld | %d x %d | %s | %.3f | %.3f | %.3f | %.2fx |\n", static_cast<long long>(valid), tables, bits,
                    sink ? "sink" : "drop", s.layer(0).density(), dense_ms, ann_ms, ann_ms / dense_ms);
      }
    }
  }
  std::printf("\n(density = executed / dense query-key products, as the CPU counts them; AnnCA includes the query\n"
              " codes, occupancy, key bias and the 3 per-frame attention launches)\n");
  CHECK_CUDA(cudaStreamDestroy(st));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc > 1 && std::string(argv[1]) == "--bench") {
      bench();
      return 0;
    }
    // (a) codes: AnnCA's default 4 x 8, other tables/bits, both head dims.
    check_codes(3, 64, 777, 4, 8, 21);
    check_codes(2, 128, 1560, 4, 8, 22);
    check_codes(2, 128, 300, 3, 5, 23);
    check_codes(4, 64, 129, 1, 1, 24);
    // (b) keep: few queries per frame (sparse bitmaps), many (dense ones), padding sink/drop, valid == rows, no valid rows.
    check_keep(2, 64, 3, 7, 50, 20, 4, 8, true, 31);
    check_keep(3, 128, 3, 200, 64, 40, 2, 6, false, 32);
    check_keep(2, 128, 2, 1560, 512, 60, 4, 8, true, 33);
    check_keep(2, 64, 3, 33, 30, 30, 3, 4, false, 34);
    check_keep(2, 64, 1, 16, 20, 0, 4, 8, false, 35);
    check_keep(2, 64, 4, 5, 300, 257, 1, 2, true, 36);
    // (c) + (d) the policy.
    check_policy({"hd64 sink all layers"});
    check_policy({"hd128 drop layers 0,2", 3, 3, 128, 64, 3, 70, 21, 4, 8, false, {0, 2}, 2});
    check_policy({"hd64 valid == rows", 2, 2, 64, 80, 3, 24, 24, 2, 5, true, {}, 1});
    check_policy({"hd128 valid == 0 (dense)", 2, 2, 128, 64, 3, 16, 0, 4, 8, true, {}, 1});
    check_policy({"hd64 one frame per call, 1 table x 3 bits", 2, 2, 64, 50, 1, 33, 9, 1, 3, true, {1}, 2});
    // Selective: 16 queries per frame over 256 buckets keep only part of the real rows.
    check_policy({"hd64 selective, 16 queries, 1 table x 8 bits", 2, 2, 64, 16, 3, 40, 30, 1, 8, true, {}, 2, 0, 0, true});
    // A new prompt after the first chunk: longer (buffers grow), then one that is shorter with another sink.
    check_policy({"hd64 prompt change 40/13 -> 56/30 rows", 2, 2, 64, 16, 3, 40, 13, 2, 8, true, {}, 3, 56, 30});
    check_policy({"hd128 prompt change 40/13 -> 24/24 rows, drop", 2, 2, 128, 24, 3, 40, 13, 2, 8, false, {}, 3, 24, 24});
    // (e)
    check_errors();
  } catch (const std::exception& e) {
    std::printf("FAIL exception: %s\n", e.what());
    ++failures;
  }
  std::printf("%s: %d failed\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
