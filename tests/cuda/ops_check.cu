// Standalone GPU check of the CUDA Wan DiT ops (fastar/kernels/cuda/ops.h) and the cuBLASLt GEMM
// (fastar/kernels/cuda/gemm.h) against the fp32 CPU reference (fastar/kernels/cpu/ops.h). Not part of
// CTest (CI has no GPU); built by tests/cuda_checks.cmake as cuda_ops_check.
//
//   cuda_ops_check           correctness sweep; one PASS/FAIL line per case, exit 1 on any FAIL
//   cuda_ops_check --bench   GEMM TFLOP/s at the 1.3B shapes (median of 20, cudaEvents)
//
// Every case uses fresh random inputs. Inputs the op reads as bf16 are rounded to bf16 first and the
// reference runs on the rounded values, so the differences left are the output rounding and the
// summation order.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/ops.h"
#include "fastar/kernels/cuda/gemm.h"
#include "fastar/kernels/cuda/ops.h"
#include "fastar/kernels/cuda/small_rows_linear.h"
#include "check_util.h"

namespace {

// Per element: |got - ref| <= tol · max|ref| (+ a tiny absolute floor for all-zero references).
// bf16 keeps 8 significant bits: rounding alone is up to 2^-9 ≈ 2e-3 of the value.
constexpr float kBf16TolRel = 1e-2f;
// rmsnorm_rope: only the final bf16 rounding (≤ 2e-3 · max) may remain; tight enough that an fp32
// angle at frame 100000 (error ~1e-2 rad) fails.
constexpr float kRopeTolRel = 4e-3f;
// fp32 outputs (fp32 arithmetic on both sides, up to FMA contraction / libm ulps).
constexpr float kF32TolRel = 1e-5f;
// Pure data movement / exact conversions.
constexpr float kExact = 0.0f;
constexpr float kAbsFloor = 1e-30f;

std::mt19937 g_rng(1234);

float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

std::vector<float> random_vec(size_t n, float mean = 0.0f, float stddev = 1.0f, bool bf16 = false) {
  std::normal_distribution<float> normal(mean, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = bf16 ? round_bf16(normal(g_rng)) : normal(g_rng);
  return v;
}

std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& f) {
  std::vector<__nv_bfloat16> b(f.size());
  for (size_t i = 0; i < f.size(); ++i) b[i] = __float2bfloat16_rn(f[i]);
  return b;
}

std::vector<float> to_f32(const std::vector<__nv_bfloat16>& b) {
  std::vector<float> f(b.size());
  for (size_t i = 0; i < b.size(); ++i) f[i] = __bfloat162float(b[i]);
  return f;
}

int g_failures = 0;

bool compare(const std::string& name, const std::vector<float>& got, const std::vector<float>& ref, float tol_rel) {
  float max_ref = 0.0f;
  for (float x : ref) max_ref = std::max(max_ref, std::fabs(x));
  const float tol = tol_rel * max_ref + kAbsFloor;
  float max_err = 0.0f;
  int64_t bad = 0, first_bad = -1;
  bool size_ok = got.size() == ref.size();
  for (size_t i = 0; size_ok && i < ref.size(); ++i) {
    const float err = std::fabs(got[i] - ref[i]);
    if (!(err <= tol)) {  // NaN fails
      if (first_bad < 0) first_bad = static_cast<int64_t>(i);
      ++bad;
    }
    if (err > max_err || std::isnan(err)) max_err = std::isnan(err) ? INFINITY : err;
  }
  const bool ok = size_ok && bad == 0;
  std::printf("%s %-58s max|ref|=%-10.4g max_err=%-10.3g tol=%-10.3g", ok ? "PASS" : "FAIL", name.c_str(), max_ref,
              max_err, tol);
  if (!size_ok) std::printf(" size %zu vs %zu", got.size(), ref.size());
  if (bad) std::printf(" bad=%lld first@%lld got=%g ref=%g", static_cast<long long>(bad), static_cast<long long>(first_bad),
                       got[first_bad], ref[first_bad]);
  std::printf("\n");
  if (!ok) ++g_failures;
  return ok;
}

// Runs a case body, turning a thrown error into a FAIL line.
void run_case(const std::string& name, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    std::printf("FAIL %-58s threw: %s\n", name.c_str(), e.what());
    ++g_failures;
  }
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char text[256];
  va_list args;
  va_start(args, f);
  std::vsnprintf(text, sizeof text, f, args);
  va_end(args);
  return text;
}

// ---- ops -----------------------------------------------------------------------------------------

// rows = frames · tokens_per_frame
struct RowShape {
  int64_t frames, tokens_per_frame;
};
const RowShape kRowShapes[] = {{1, 1}, {1, 37}, {3, 1560}};
const int64_t kDims[] = {64, 1536};
constexpr float kEps = 1e-6f;

void check_adaln() {
  for (const RowShape& s : kRowShapes)
    for (int64_t dim : kDims) {
      const std::string name =
          fmt("adaln_modulate rows=%lld (%lldx%lld) dim=%lld", (long long)(s.frames * s.tokens_per_frame),
              (long long)s.frames, (long long)s.tokens_per_frame, (long long)dim);
      run_case(name, [&] {
        const int64_t rows = s.frames * s.tokens_per_frame, mod_stride = 6 * dim;
        const auto x = random_vec(rows * dim, 0.3f, 2.0f);
        const auto mod = random_vec(s.frames * mod_stride, 0.0f, 0.5f);
        std::vector<float> ref(rows * dim);
        fastar::cpu::adaln_modulate_forward(ref.data(), x.data(), mod.data() + 0, mod.data() + dim, mod_stride,
                                            s.frames, s.tokens_per_frame, dim, kEps);
        DeviceBuffer<float> dx(x), dmod(mod);
        DeviceBuffer<__nv_bfloat16> dout(rows * dim);
        fastar::cuda::adaln_modulate(dout.ptr, dx.ptr, dmod.ptr, dmod.ptr + dim, mod_stride, s.frames,
                                     s.tokens_per_frame, dim, kEps, nullptr);
        CHECK_CUDA(cudaDeviceSynchronize());
        compare(name, to_f32(dout.download()), ref, kBf16TolRel);
      });
    }
}

void check_layernorm() {
  for (const RowShape& s : kRowShapes)
    for (int64_t dim : kDims)
      for (int affine = 0; affine < 2; ++affine) {
        const int64_t rows = s.frames * s.tokens_per_frame;
        const std::string name =
            fmt("layernorm rows=%lld dim=%lld %s", (long long)rows, (long long)dim, affine ? "affine" : "plain");
        run_case(name, [&] {
          const auto x = random_vec(rows * dim, -0.5f, 3.0f);
          const auto w = random_vec(dim, 1.0f, 0.2f), b = random_vec(dim, 0.0f, 0.2f);
          std::vector<float> ref(rows * dim);
          fastar::cpu::layernorm_forward(ref.data(), x.data(), affine ? w.data() : nullptr, affine ? b.data() : nullptr,
                                         rows, dim, kEps);
          DeviceBuffer<float> dx(x), dw(w), db(b);
          DeviceBuffer<__nv_bfloat16> dout(rows * dim);
          fastar::cuda::layernorm(dout.ptr, dx.ptr, affine ? dw.ptr : nullptr, affine ? db.ptr : nullptr, rows, dim,
                                  kEps, nullptr);
          CHECK_CUDA(cudaDeviceSynchronize());
          compare(name, to_f32(dout.download()), ref, kBf16TolRel);
        });
      }
}

void check_rmsnorm_rope() {
  struct Grid {
    int64_t frames, height, width;
  };
  const Grid grids[] = {{1, 1, 1}, {1, 1, 37}, {3, 30, 52}};
  const int64_t frame_starts[] = {0, 100000};
  for (const Grid& g : grids)
    for (int64_t dim : kDims)
      for (int64_t frame_start : frame_starts)
        for (int mode = 0; mode < 3; ++mode) {  // 0: norm + rope, 1: rope only, 2: norm only
          if (mode == 2 && frame_start != 0) continue;
          const int64_t head_dim = dim == 64 ? 64 : 128, heads = dim / head_dim;
          const int64_t rows = g.frames * g.height * g.width;
          const int64_t row_stride = rows > 100 ? 3 * dim : dim;  // the big case reads q inside a packed qkv row
          const bool norm = mode != 1, rope = mode != 2;
          const std::string name = fmt("rmsnorm_rope rows=%lld (%lldx%lldx%lld) h=%lldx%lld f0=%lld %s",
                                       (long long)rows, (long long)g.frames, (long long)g.height, (long long)g.width,
                                       (long long)heads, (long long)head_dim, (long long)frame_start,
                                       mode == 0 ? "norm+rope" : mode == 1 ? "rope" : "norm");
          run_case(name, [&] {
            const auto packed = random_vec(rows * row_stride, 0.0f, 1.5f, /*bf16=*/true);
            const auto w = random_vec(dim, 1.0f, 0.2f);
            std::vector<float> ref(rows * dim);
            for (int64_t r = 0; r < rows; ++r)
              std::copy(packed.begin() + r * row_stride, packed.begin() + r * row_stride + dim, ref.begin() + r * dim);
            if (norm) fastar::cpu::rmsnorm_forward(ref.data(), ref.data(), w.data(), rows, dim, kEps);
            if (rope)
              fastar::cpu::rope_3d_forward(ref.data(), dim, g.frames, g.height, g.width, frame_start, heads, head_dim);
            DeviceBuffer<__nv_bfloat16> dx(to_bf16(packed));
            DeviceBuffer<float> dw(w);
            fastar::cuda::rmsnorm_rope(dx.ptr, row_stride, norm ? dw.ptr : nullptr, g.frames, g.height, g.width,
                                       frame_start, heads, head_dim, kEps, rope, nullptr);
            CHECK_CUDA(cudaDeviceSynchronize());
            const auto got_packed = to_f32(dx.download());
            std::vector<float> got(rows * dim);
            bool rest_untouched = true;
            for (int64_t r = 0; r < rows; ++r) {
              std::copy(got_packed.begin() + r * row_stride, got_packed.begin() + r * row_stride + dim,
                        got.begin() + r * dim);
              for (int64_t i = dim; i < row_stride; ++i)
                rest_untouched &= got_packed[r * row_stride + i] == packed[r * row_stride + i];
            }
            if (!rest_untouched) {
              std::printf("FAIL %s: wrote outside the first heads·head_dim columns\n", name.c_str());
              ++g_failures;
            }
            compare(name, got, ref, kRopeTolRel);
          });
        }
}

void check_gated_residual_add() {
  for (const RowShape& s : kRowShapes)
    for (int64_t dim : {int64_t{64}, int64_t{1536}, int64_t{38}})
      for (int gated = 0; gated < 2; ++gated) {
        const int64_t rows = s.frames * s.tokens_per_frame, gate_stride = 6 * dim;
        const std::string name = fmt("gated_residual_add rows=%lld dim=%lld %s%s", (long long)rows, (long long)dim,
                                     gated ? "gate" : "no-gate", dim % 4 ? " (scalar path)" : "");
        run_case(name, [&] {
          const auto x = random_vec(rows * dim, 0.0f, 4.0f);
          const auto y = random_vec(rows * dim, 0.0f, 1.0f, /*bf16=*/true);
          const auto mod = random_vec(s.frames * gate_stride, 0.0f, 0.5f);
          const float* gate = gated ? mod.data() + 2 * dim : nullptr;
          std::vector<float> ref = x;
          fastar::cpu::gated_residual_add(ref.data(), y.data(), gate, gate_stride, s.frames, s.tokens_per_frame, dim);
          DeviceBuffer<float> dx(x), dmod(mod);
          DeviceBuffer<__nv_bfloat16> dy(to_bf16(y));
          fastar::cuda::gated_residual_add(dx.ptr, dy.ptr, gated ? dmod.ptr + 2 * dim : nullptr, gate_stride, s.frames,
                                           s.tokens_per_frame, dim, nullptr);
          CHECK_CUDA(cudaDeviceSynchronize());
          compare(name, dx.download(), ref, kF32TolRel);
        });
      }
}

void check_elementwise() {
  {
    const std::string name = "timestep_mlp_input n=4 dim=256";
    run_case(name, [&] {
      const std::vector<float> t = {0.0f, 1.0f, 500.5f, 999.0f};
      const int64_t dim = 256;
      std::vector<float> ref(t.size() * dim);
      fastar::cpu::timestep_embedding(ref.data(), t.data(), static_cast<int64_t>(t.size()), dim);
      DeviceBuffer<float> dt(t), dout(ref.size());
      fastar::cuda::timestep_mlp_input(dout.ptr, dt.ptr, static_cast<int64_t>(t.size()), dim, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      compare(name, dout.download(), ref, kF32TolRel);
    });
  }
  for (int64_t n : {int64_t{1}, int64_t{37}, int64_t{4680 * 64 + 3}}) {
    const std::string name = fmt("silu n=%lld", (long long)n);
    run_case(name, [&] {
      const auto x = random_vec(n, 0.0f, 4.0f);
      std::vector<float> ref = x;
      fastar::cpu::silu_forward(ref.data(), n);
      DeviceBuffer<float> dx(x);
      fastar::cuda::silu(dx.ptr, n, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      compare(name, dx.download(), ref, kF32TolRel);
    });
  }
  {
    const int64_t n = 4680 * 37;
    const std::string name = fmt("bf16_to_f32 n=%lld", (long long)n);
    run_case(name, [&] {
      const auto x = random_vec(n, 0.0f, 3.0f, true);
      DeviceBuffer<__nv_bfloat16> dx(to_bf16(x));
      DeviceBuffer<float> dout(n);
      fastar::cuda::bf16_to_f32(dout.ptr, dx.ptr, n, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      compare(name, dout.download(), x, kExact);
    });
  }
  for (int64_t n_rows : {int64_t{1}, int64_t{37}}) {
    const int64_t width = 6 * 1536;
    const std::string name = fmt("add_rows rows=%lld width=%lld (in place)", (long long)n_rows, (long long)width);
    run_case(name, [&] {
      const auto table = random_vec(width), rows = random_vec(n_rows * width);
      std::vector<float> ref(rows.size());
      for (int64_t r = 0; r < n_rows; ++r)
        for (int64_t i = 0; i < width; ++i) ref[r * width + i] = table[i] + rows[r * width + i];
      DeviceBuffer<float> dt(table), dr(rows);
      fastar::cuda::add_rows(dr.ptr, dt.ptr, dr.ptr, n_rows, width, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      compare(name, dr.download(), ref, kExact);
    });
  }
  for (int with_noise = 0; with_noise < 2; ++with_noise) {
    const int64_t n = 16 * 3 * 60 * 104 + 5;
    const float sigma = 0.8125f, next_sigma = 0.4375f;
    const std::string name = fmt("flow_step n=%lld %s", (long long)n, with_noise ? "re-noise" : "last step");
    run_case(name, [&] {
      const auto x = random_vec(n), v = random_vec(n), noise = random_vec(n);
      std::vector<float> ref_x = x, ref_x0(n);
      for (int64_t i = 0; i < n; ++i) {
        ref_x0[i] = x[i] - sigma * v[i];
        if (with_noise) ref_x[i] = (1.0f - next_sigma) * ref_x0[i] + next_sigma * noise[i];
      }
      DeviceBuffer<float> dx(x), dx0(n), dv(v), dn(noise);
      fastar::cuda::flow_step(dx.ptr, dx0.ptr, dv.ptr, with_noise ? dn.ptr : nullptr, sigma, next_sigma, n, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      compare(name + " x0", dx0.download(), ref_x0, kF32TolRel);
      compare(name + " x", dx.download(), ref_x, kF32TolRel);
    });
  }
}

void check_patchify() {
  struct Shape {
    int64_t c, f, h, w, pt, ph, pw;
  };
  const Shape shapes[] = {{16, 3, 60, 104, 1, 2, 2}, {3, 5, 7, 9, 2, 2, 2}, {1, 1, 2, 2, 1, 2, 2}};
  for (const Shape& s : shapes) {
    const int64_t tokens = (s.f / s.pt) * (s.h / s.ph) * (s.w / s.pw), features = s.c * s.pt * s.ph * s.pw;
    const int64_t latent_n = s.c * s.f * s.h * s.w;
    const std::string shape = fmt("c=%lld f=%lld h=%lld w=%lld patch=%lldx%lldx%lld", (long long)s.c, (long long)s.f,
                                  (long long)s.h, (long long)s.w, (long long)s.pt, (long long)s.ph, (long long)s.pw);
    run_case("patchify " + shape, [&] {
      const auto latent = random_vec(latent_n);
      std::vector<float> ref(tokens * features);
      fastar::cpu::patchify(ref.data(), latent.data(), s.c, s.f, s.h, s.w, s.pt, s.ph, s.pw);
      for (auto& v : ref) v = round_bf16(v);
      DeviceBuffer<float> dl(latent);
      DeviceBuffer<__nv_bfloat16> dt(tokens * features);
      fastar::cuda::patchify(dt.ptr, dl.ptr, s.c, s.f, s.h, s.w, s.pt, s.ph, s.pw, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      compare("patchify " + shape, to_f32(dt.download()), ref, kExact);
    });
    run_case("unpatchify " + shape, [&] {
      const auto toks = random_vec(tokens * features, 0.0f, 1.0f, true);
      std::vector<float> ref = random_vec(latent_n);  // cells outside the grid must stay as they are
      DeviceBuffer<float> dl(ref);
      fastar::cpu::unpatchify(ref.data(), toks.data(), s.c, s.f, s.h, s.w, s.pt, s.ph, s.pw);
      DeviceBuffer<__nv_bfloat16> dt(to_bf16(toks));
      fastar::cuda::unpatchify(dl.ptr, dt.ptr, s.c, s.f, s.h, s.w, s.pt, s.ph, s.pw, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      compare("unpatchify " + shape, dl.download(), ref, kExact);
    });
  }
}

// ---- GEMM ----------------------------------------------------------------------------------------

const char* epilogue_name(fastar::cuda::LinearEpilogue e) {
  using E = fastar::cuda::LinearEpilogue;
  return e == E::None ? "none" : e == E::Bias ? "bias" : "bias+gelu";
}

void check_gemm(fastar::cuda::Gemm& gemm) {
  using E = fastar::cuda::LinearEpilogue;
  struct Shape {
    int64_t rows, in, out;
    E epilogue;
  };
  const Shape shapes[] = {{1, 1536, 1536, E::None},
                          {4680, 1536, 8960, E::BiasGeluTanh},
                          {4680, 8960, 1536, E::Bias},
                          {37, 64, 5, E::Bias},
                          {37, 64, 5, E::None},
                          {37, 1536, 1536, E::BiasGeluTanh}};
  for (const Shape& s : shapes) {
    const std::string name = fmt("linear_bf16 (%lld, %lld->%lld) %s", (long long)s.rows, (long long)s.in,
                                 (long long)s.out, epilogue_name(s.epilogue));
    run_case(name, [&] {
      const float w_std = 1.0f / std::sqrt(static_cast<float>(s.in));
      const auto in = random_vec(s.rows * s.in, 0.0f, 1.0f, true);
      const auto w = random_vec(s.out * s.in, 0.0f, w_std, true);
      const auto b = random_vec(s.out, 0.0f, 0.5f, true);
      const bool has_bias = s.epilogue != E::None;
      std::vector<float> ref(s.rows * s.out);
      fastar::cpu::linear_forward(ref.data(), in.data(), w.data(), has_bias ? b.data() : nullptr, s.rows, s.in, s.out);
      if (s.epilogue == E::BiasGeluTanh) fastar::cpu::gelu_tanh_forward(ref.data(), static_cast<int64_t>(ref.size()));
      DeviceBuffer<__nv_bfloat16> din(to_bf16(in)), dw(to_bf16(w)), db(to_bf16(b)), dout(s.rows * s.out);
      CHECK_CUDA(cudaMemset(dout.ptr, 0xFF, dout.count * sizeof(__nv_bfloat16)));  // NaN: unwritten fails
      fastar::cuda::linear_bf16(gemm, dout.ptr, din.ptr, dw.ptr, has_bias ? db.ptr : nullptr, s.rows, s.in, s.out,
                                s.epilogue, nullptr);
      const size_t plans = gemm.plan_count();
      fastar::cuda::linear_bf16(gemm, dout.ptr, din.ptr, dw.ptr, has_bias ? db.ptr : nullptr, s.rows, s.in, s.out,
                                s.epilogue, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      if (gemm.plan_count() != plans) {
        std::printf("FAIL %s: a repeated call added a plan\n", name.c_str());
        ++g_failures;
      }
      compare(name, to_f32(dout.download()), ref, kBf16TolRel);
    });
  }
}

// small_rows_linear: fp32 rows against cpu::linear_forward with the weights rounded to bf16; both
// accumulate in fp32 over in_features terms, so the tolerance is fp32-sized, not bf16-sized.
void check_small_rows_linear() {
  struct Shape {
    int64_t rows, in, out;
    bool bias, accumulate;
  };
  const Shape shapes[] = {{3, 256, 1536, true, false}, {1, 1536, 9216, true, false}, {7, 33, 5, false, false},
                          {16, 1536, 1536, true, true}, {4, 5, 70, true, true}};
  for (const Shape& s : shapes) {
    const std::string name = fmt("small_rows_linear (%lld, %lld->%lld)%s%s", (long long)s.rows, (long long)s.in,
                                 (long long)s.out, s.bias ? " bias" : "", s.accumulate ? " accumulate" : "");
    run_case(name, [&] {
      const auto in = random_vec(s.rows * s.in);
      const auto w = random_vec(s.out * s.in, 0.0f, 1.0f / std::sqrt(static_cast<float>(s.in)), true);
      const auto b = random_vec(s.out, 0.0f, 0.5f, true);
      const auto start = random_vec(s.rows * s.out);
      std::vector<float> ref(s.rows * s.out);
      fastar::cpu::linear_forward(ref.data(), in.data(), w.data(), s.bias ? b.data() : nullptr, s.rows, s.in, s.out);
      if (s.accumulate)
        for (size_t i = 0; i < ref.size(); ++i) ref[i] += start[i];
      DeviceBuffer<float> din(in), dout(s.accumulate ? start : std::vector<float>(ref.size(), NAN));
      DeviceBuffer<__nv_bfloat16> dw(to_bf16(w)), db(to_bf16(b));
      fastar::cuda::small_rows_linear(dout.ptr, din.ptr, dw.ptr, s.bias ? db.ptr : nullptr, s.rows, s.in, s.out,
                                      s.accumulate, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      compare(name, dout.download(), ref, 1e-5f);
    });
  }
}

// ---- benchmark -------------------------------------------------------------------------------------

__global__ void fill_kernel(__nv_bfloat16* p, int64_t n, uint32_t seed, float amp) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2bfloat16_rn(amp * (static_cast<float>(h & 0xFFFF) / 32768.0f - 1.0f));
  }
}

void fill(DeviceBuffer<__nv_bfloat16>& b, uint32_t seed, float amp) {
  fill_kernel<<<1024, 256>>>(b.ptr, static_cast<int64_t>(b.count), seed, amp);
  CHECK_CUDA(cudaGetLastError());
}

int run_bench() {
  using E = fastar::cuda::LinearEpilogue;
  struct Shape {
    int64_t rows, in, out;
    E epilogue;
  };
  const Shape shapes[] = {{4680, 1536, 1536, E::Bias}, {4680, 1536, 8960, E::BiasGeluTanh}, {4680, 8960, 1536, E::Bias}};
  fastar::cuda::Gemm gemm;
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  std::printf("linear_bf16 (cuBLASLt, bf16 in/out, fp32 accumulate); median of 20 after 3 warm-up calls\n");
  for (const Shape& s : shapes) {
    DeviceBuffer<__nv_bfloat16> din(s.rows * s.in), dw(s.out * s.in), db(s.out), dout(s.rows * s.out);
    fill(din, 1, 1.0f);
    fill(dw, 2, 1.0f / std::sqrt(static_cast<float>(s.in)));
    fill(db, 3, 0.5f);
    for (int i = 0; i < 3; ++i)
      fastar::cuda::linear_bf16(gemm, dout.ptr, din.ptr, dw.ptr, db.ptr, s.rows, s.in, s.out, s.epilogue, nullptr);
    std::vector<float> ms;
    for (int i = 0; i < 20; ++i) {
      CHECK_CUDA(cudaEventRecord(start));
      fastar::cuda::linear_bf16(gemm, dout.ptr, din.ptr, dw.ptr, db.ptr, s.rows, s.in, s.out, s.epilogue, nullptr);
      CHECK_CUDA(cudaEventRecord(stop));
      CHECK_CUDA(cudaEventSynchronize(stop));
      float t = 0.0f;
      CHECK_CUDA(cudaEventElapsedTime(&t, start, stop));
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    const double median = 0.5 * (ms[9] + ms[10]);
    const double flops = 2.0 * static_cast<double>(s.rows) * static_cast<double>(s.in) * static_cast<double>(s.out);
    std::printf("  (%5lld, %5lld -> %5lld) %-9s  %8.3f ms  %7.1f TFLOP/s\n", (long long)s.rows, (long long)s.in,
                (long long)s.out, epilogue_name(s.epilogue), median, flops / (median * 1e-3) / 1e12);
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "cuda_ops_check: no CUDA device\n");
    return 2;
  }
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) return run_bench();
  check_adaln();
  check_layernorm();
  check_rmsnorm_rope();
  check_gated_residual_add();
  check_elementwise();
  check_patchify();
  check_small_rows_linear();
  {
    fastar::cuda::Gemm gemm;
    check_gemm(gemm);
  }
  std::printf("%s: %d failure(s)\n", g_failures ? "FAIL" : "PASS", g_failures);
  return g_failures ? 1 : 0;
}
