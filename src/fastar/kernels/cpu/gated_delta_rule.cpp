#include "fastar/kernels/cpu/gated_delta_rule.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "fastar/core/error.h"

namespace fastar {

GatedDeltaRuleParams packed_gated_delta_rule_params(const float* q, const float* k, const float* v, float* o,
                                                    const float* log_alpha, const float* beta, float* state,
                                                    int64_t tokens, int64_t heads, int64_t dim) {
  GatedDeltaRuleParams p;
  p.q = q;
  p.k = k;
  p.v = v;
  p.o = o;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = heads * dim;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = dim;
  p.log_alpha = log_alpha;
  p.beta = beta;
  p.gate_row_stride = heads;
  p.state = state;
  p.state_head_stride = dim * dim;
  p.tokens = tokens;
  p.heads = heads;
  p.key_dim = p.value_dim = dim;
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)));
  return p;
}

void validate_gated_delta_rule_params(const GatedDeltaRuleParams& p, const char* what) {
  const bool update = std::string(what) == "update";
  FASTAR_CHECK(p.tokens >= 0 && p.heads >= 1 && p.key_dim >= 1 && p.value_dim >= 1,
               "gated delta rule " << what << ": need tokens >= 0 and positive heads/key_dim/value_dim (got tokens "
                                   << p.tokens << ", heads " << p.heads << ", key_dim " << p.key_dim << ", value_dim "
                                   << p.value_dim << ")");
  FASTAR_CHECK(p.state && p.state_head_stride >= p.key_dim * p.value_dim,
               "gated delta rule " << what << ": state is missing or its head stride " << p.state_head_stride
                                   << " is smaller than key_dim·value_dim");
  FASTAR_CHECK(p.io_dtype == DType::F32 || p.io_dtype == DType::BF16,
               "gated delta rule " << what << ": q/k/v/o must be F32 or BF16, got " << dtype_name(p.io_dtype));
  if (p.tokens == 0) return;
  if (update) {
    FASTAR_CHECK(p.k && p.v && p.log_alpha && p.beta, "gated delta rule update: k, v, log_alpha and beta are required");
    FASTAR_CHECK(p.chunk_size >= 1, "gated delta rule update: chunk_size must be >= 1, got " << p.chunk_size);
  } else {
    FASTAR_CHECK(p.q && p.o, "gated delta rule read: q and o are required");
  }
  FASTAR_CHECK(p.gate_row_stride >= p.heads || (!p.log_alpha && !p.beta && !p.read_gate),
               "gated delta rule " << what << ": gate_row_stride " << p.gate_row_stride << " < heads " << p.heads);
}

namespace cpu {

namespace {

// One head's view of the params: row pointers for token t.
struct HeadView {
  const GatedDeltaRuleParams& p;
  int64_t h;
  const float* q(int64_t t) const { return static_cast<const float*>(p.q) + t * p.q_row_stride + h * p.q_head_stride; }
  const float* k(int64_t t) const { return static_cast<const float*>(p.k) + t * p.k_row_stride + h * p.k_head_stride; }
  const float* v(int64_t t) const { return static_cast<const float*>(p.v) + t * p.v_row_stride + h * p.v_head_stride; }
  float* o(int64_t t) const { return static_cast<float*>(p.o) + t * p.o_row_stride + h * p.o_head_stride; }
  float g(int64_t t) const { return p.log_alpha[t * p.gate_row_stride + h]; }
  float beta(int64_t t) const { return p.beta[t * p.gate_row_stride + h]; }
  float* state() const { return p.state + h * p.state_head_stride; }
};

void require_f32(const GatedDeltaRuleParams& p, const char* what) {
  FASTAR_CHECK(p.io_dtype == DType::F32, "cpu gated delta rule " << what << ": the CPU kernels take F32 q/k/v/o");
}

}  // namespace

void gated_delta_rule_update_recurrent(const GatedDeltaRuleParams& p) {
  validate_gated_delta_rule_params(p, "update");
  require_f32(p, "update");
  const int64_t dk = p.key_dim, dv = p.value_dim;
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < p.heads; ++h) {
    const HeadView view{p, h};
    float* s = view.state();  // [dk, dv]
    std::vector<float> u(static_cast<size_t>(dv));
    for (int64_t t = 0; t < p.tokens; ++t) {
      const float alpha = std::exp(view.g(t)), beta = view.beta(t);
      const float* k = view.k(t);
      const float* v = view.v(t);
      // S ← αS;  u = β (v − Sᵀk);  S ← S + k uᵀ
      for (int64_t i = 0; i < dk * dv; ++i) s[i] *= alpha;
      for (int64_t c = 0; c < dv; ++c) u[static_cast<size_t>(c)] = 0.0f;
      for (int64_t d = 0; d < dk; ++d)
        for (int64_t c = 0; c < dv; ++c) u[static_cast<size_t>(c)] += s[d * dv + c] * k[d];
      for (int64_t c = 0; c < dv; ++c) u[static_cast<size_t>(c)] = beta * (v[c] - u[static_cast<size_t>(c)]);
      for (int64_t d = 0; d < dk; ++d)
        for (int64_t c = 0; c < dv; ++c) s[d * dv + c] += k[d] * u[static_cast<size_t>(c)];
    }
  }
}

void gated_delta_rule_update_chunked(const GatedDeltaRuleParams& p) {
  validate_gated_delta_rule_params(p, "update");
  require_f32(p, "update");
  const int64_t dk = p.key_dim, dv = p.value_dim, tile = p.chunk_size;
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < p.heads; ++h) {
    const HeadView view{p, h};
    float* s = view.state();
    const auto at = [](std::vector<float>& m, int64_t i) -> float& { return m[static_cast<size_t>(i)]; };
    std::vector<float> gc(static_cast<size_t>(tile)), a(static_cast<size_t>(tile * tile)),
        t_inv(static_cast<size_t>(tile * tile)), w(static_cast<size_t>(tile * dk)), u(static_cast<size_t>(tile * dv));
    for (int64_t start = 0; start < p.tokens; start += tile) {
      const int64_t n = std::min(tile, p.tokens - start);
      // γ_i = exp(gc_i), gc_i = Σ_{j<=i} g_j within the tile.
      float acc = 0.0f;
      for (int64_t i = 0; i < n; ++i) at(gc, i) = acc += view.g(start + i);
      // A[i][j] = β_i exp(gc_i − gc_j) k_i·k_j, j < i.
      for (int64_t i = 0; i < n; ++i) {
        const float* ki = view.k(start + i);
        for (int64_t j = 0; j < i; ++j) {
          const float* kj = view.k(start + j);
          float dot = 0.0f;
          for (int64_t d = 0; d < dk; ++d) dot += ki[d] * kj[d];
          at(a, i * tile + j) = view.beta(start + i) * std::exp(at(gc, i) - at(gc, j)) * dot;
        }
      }
      // T = (I + A)⁻¹ by forward substitution: T[i][c] = δ_ic − Σ_{c<=j<i} A[i][j] T[j][c].
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c <= i; ++c) {
          float value = i == c ? 1.0f : 0.0f;
          for (int64_t j = c; j < i; ++j) value -= at(a, i * tile + j) * at(t_inv, j * tile + c);
          at(t_inv, i * tile + c) = value;
        }
      // W = T diag(βγ) K,  U = T diag(β) V − W S.
      for (int64_t i = 0; i < n; ++i) {
        float* wi = &at(w, i * dk);
        float* ui = &at(u, i * dv);
        std::fill(wi, wi + dk, 0.0f);
        std::fill(ui, ui + dv, 0.0f);
        for (int64_t j = 0; j <= i; ++j) {
          const float tij = at(t_inv, i * tile + j), bj = view.beta(start + j);
          const float wk = tij * bj * std::exp(at(gc, j)), wv = tij * bj;
          const float* kj = view.k(start + j);
          const float* vj = view.v(start + j);
          for (int64_t d = 0; d < dk; ++d) wi[d] += wk * kj[d];
          for (int64_t c = 0; c < dv; ++c) ui[c] += wv * vj[c];
        }
        for (int64_t d = 0; d < dk; ++d)
          for (int64_t c = 0; c < dv; ++c) ui[c] -= wi[d] * s[d * dv + c];
      }
      // S ← γ_C S + Σ_i exp(gc_C − gc_i) k_i u_iᵀ.
      const float last = at(gc, n - 1), decay = std::exp(last);
      for (int64_t i = 0; i < dk * dv; ++i) s[i] *= decay;
      for (int64_t i = 0; i < n; ++i) {
        const float* ki = view.k(start + i);
        const float ri = std::exp(last - at(gc, i));
        const float* ui = &at(u, i * dv);
        for (int64_t d = 0; d < dk; ++d) {
          const float kd = ri * ki[d];
          for (int64_t c = 0; c < dv; ++c) s[d * dv + c] += kd * ui[c];
        }
      }
    }
  }
}

void gated_delta_rule_read(const GatedDeltaRuleParams& p) {
  validate_gated_delta_rule_params(p, "read");
  require_f32(p, "read");
  const int64_t dk = p.key_dim, dv = p.value_dim;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t t = 0; t < p.tokens; ++t)
    for (int64_t h = 0; h < p.heads; ++h) {
      const HeadView view{p, h};
      const float* q = view.q(t);
      const float* s = view.state();
      float* o = view.o(t);
      const float factor = p.scale * (p.read_gate ? p.read_gate[t * p.gate_row_stride + h] : 1.0f);
      float row[1024];  // value_dim chunks of up to 1024
      for (int64_t c0 = 0; c0 < dv; c0 += 1024) {
        const int64_t cn = std::min<int64_t>(1024, dv - c0);
        std::fill(row, row + cn, 0.0f);
        for (int64_t d = 0; d < dk; ++d) {
          const float qd = q[d];
          const float* sd = s + d * dv + c0;
          for (int64_t c = 0; c < cn; ++c) row[c] += qd * sd[c];
        }
        for (int64_t c = 0; c < cn; ++c) o[c0 + c] = (p.accumulate ? o[c0 + c] : 0.0f) + factor * row[c];
      }
    }
}

}  // namespace cpu
}  // namespace fastar
