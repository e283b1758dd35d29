#include "fastar/kernels/cuda/gated_delta_rule.h"

#include <cuda_bf16.h>

#include <cstdint>

namespace fastar::cuda {

namespace {

constexpr int kTile = 64;         // tokens per tile (update and read)
constexpr int kMaxKeyDim = 128;   // shared-memory and register budget
constexpr int kColumns = 32;      // value columns per block (scan and read)
constexpr int kThreads = 256;     // 8 warps: warp w owns rows/keys w, w+8, ...
constexpr int kRows = kThreads / kColumns;  // 8 row groups

__device__ __forceinline__ float load_float(const float* p) { return *p; }
__device__ __forceinline__ float load_float(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_float(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_float(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }

// Workspace views: W [tokens, heads, dk], Û [tokens, heads, dv], gc [tokens, heads].
struct Workspace {
  float* w;
  float* u;
  float* gc;
};

Workspace split_workspace(void* base, const GatedDeltaRuleParams& p) {
  float* f = static_cast<float*>(base);
  Workspace ws;
  ws.w = f;
  ws.u = ws.w + p.tokens * p.heads * p.key_dim;
  ws.gc = ws.u + p.tokens * p.heads * p.value_dim;
  return ws;
}

// Kernel 1: per (tile, head) the WY representation of the tile. Shared memory:
//   rows [kTile][max(dk,dv)+1] (K, then V), a/t [kTile][kTile], gc/beta [kTile].
template <class T>
__global__ void __launch_bounds__(kThreads) gdr_prepare_kernel(GatedDeltaRuleParams p, Workspace ws) {
  extern __shared__ float smem[];
  const int dk = static_cast<int>(p.key_dim), dv = static_cast<int>(p.value_dim);
  const int row_stride = (dk > dv ? dk : dv) + 1;
  float* rows = smem;                      // [kTile][row_stride]
  float* a = rows + kTile * row_stride;    // [kTile][kTile]
  float* t_inv = a + kTile * kTile;        // [kTile][kTile]
  float* gc = t_inv + kTile * kTile;       // [kTile]
  float* beta = gc + kTile;                // [kTile]
  const int h = blockIdx.y, tid = threadIdx.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * kTile;
  const int n = static_cast<int>(p.tokens - start < kTile ? p.tokens - start : kTile);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);

  for (int idx = tid; idx < kTile * dk; idx += kThreads) {
    const int i = idx / dk, d = idx % dk;
    rows[i * row_stride + d] = i < n ? load_float(k + (start + i) * p.k_row_stride + h * p.k_head_stride + d) : 0.0f;
  }
  if (tid < kTile) {
    const bool valid = tid < n;
    gc[tid] = valid ? p.log_alpha[(start + tid) * p.gate_row_stride + h] : 0.0f;
    beta[tid] = valid ? p.beta[(start + tid) * p.gate_row_stride + h] : 0.0f;
  }
  __syncthreads();
  if (tid == 0) {  // inclusive prefix sum of g over the tile (64 adds)
    float acc = 0.0f;
    for (int i = 0; i < kTile; ++i) gc[i] = acc += gc[i];
  }
  __syncthreads();
  // A[i][j] = β_i exp(gc_i − gc_j) k_i·k_j for j < i, else 0. A warp shares i: k_i is a broadcast.
  for (int idx = tid; idx < kTile * kTile; idx += kThreads) {
    const int i = idx / kTile, j = idx % kTile;
    float value = 0.0f;
    if (j < i) {
      float dot = 0.0f;
      for (int d = 0; d < dk; ++d) dot += rows[i * row_stride + d] * rows[j * row_stride + d];
      value = beta[i] * expf(gc[i] - gc[j]) * dot;
    }
    a[idx] = value;
  }
  __syncthreads();
  // T = (I + A)⁻¹, column c by thread c: T[i][c] = δ_ic − Σ_{j<i} A[i][j] T[j][c] (T[j][c] = 0 for j < c).
  if (tid < kTile) {
    const int c = tid;
    for (int i = 0; i < kTile; ++i) {
      float value = i == c ? 1.0f : 0.0f;
      for (int j = 0; j < i; ++j) value -= a[i * kTile + j] * t_inv[j * kTile + c];
      t_inv[i * kTile + c] = value;
    }
  }
  __syncthreads();
  // W[i][d] = Σ_{j<=i} T[i][j] β_j γ_j K[j][d]
  for (int idx = tid; idx < n * dk; idx += kThreads) {
    const int i = idx / dk, d = idx % dk;
    float acc = 0.0f;
    for (int j = 0; j <= i; ++j) acc += t_inv[i * kTile + j] * beta[j] * expf(gc[j]) * rows[j * row_stride + d];
    ws.w[((start + i) * p.heads + h) * dk + d] = acc;
  }
  if (tid < n) ws.gc[(start + tid) * p.heads + h] = gc[tid];
  __syncthreads();
  for (int idx = tid; idx < kTile * dv; idx += kThreads) {
    const int i = idx / dv, c = idx % dv;
    rows[i * row_stride + c] = i < n ? load_float(v + (start + i) * p.v_row_stride + h * p.v_head_stride + c) : 0.0f;
  }
  __syncthreads();
  // Û[i][c] = Σ_{j<=i} T[i][j] β_j V[j][c]
  for (int idx = tid; idx < n * dv; idx += kThreads) {
    const int i = idx / dv, c = idx % dv;
    float acc = 0.0f;
    for (int j = 0; j <= i; ++j) acc += t_inv[i * kTile + j] * beta[j] * rows[j * row_stride + c];
    ws.u[((start + i) * p.heads + h) * dv + c] = acc;
  }
}

// Kernel 2: per (32 value columns, head), sequential over tiles. Shared memory:
//   s [dk][kColumns], rows [kTile][dk] (W, then diag(γ_C/γ)·K), u [kTile][kColumns], gc [kTile].
template <class T>
__global__ void __launch_bounds__(kThreads) gdr_scan_kernel(GatedDeltaRuleParams p, Workspace ws) {
  extern __shared__ float smem[];
  const int dk = static_cast<int>(p.key_dim), dv = static_cast<int>(p.value_dim);
  float* s = smem;                   // [dk][kColumns]
  float* rows = s + dk * kColumns;   // [kTile][dk]
  float* u = rows + kTile * dk;      // [kTile][kColumns]
  float* gc = u + kTile * kColumns;  // [kTile]
  const int h = blockIdx.y, c0 = blockIdx.x * kColumns, tid = threadIdx.x;
  const int tx = tid % kColumns, ty = tid / kColumns;
  const T* k = static_cast<const T*>(p.k);
  float* state = p.state + h * p.state_head_stride;

  for (int idx = tid; idx < dk * kColumns; idx += kThreads)
    s[idx] = state[(idx / kColumns) * dv + c0 + idx % kColumns];

  for (int64_t start = 0; start < p.tokens; start += kTile) {
    const int n = static_cast<int>(p.tokens - start < kTile ? p.tokens - start : kTile);
    for (int idx = tid; idx < kTile * dk; idx += kThreads) {
      const int i = idx / dk, d = idx % dk;
      rows[idx] = i < n ? ws.w[((start + i) * p.heads + h) * dk + d] : 0.0f;
    }
    for (int idx = tid; idx < kTile * kColumns; idx += kThreads) {
      const int i = idx / kColumns, c = idx % kColumns;
      u[idx] = i < n ? ws.u[((start + i) * p.heads + h) * dv + c0 + c] : 0.0f;
    }
    if (tid < kTile) gc[tid] = tid < n ? ws.gc[(start + tid) * p.heads + h] : 0.0f;
    __syncthreads();
    // U[i][tx] = Û[i][tx] − Σ_d W[i][d] S[d][tx], rows i = ty + 8r (W rows are warp broadcasts).
    float acc[kTile / kRows];
#pragma unroll
    for (int r = 0; r < kTile / kRows; ++r) acc[r] = u[(ty + kRows * r) * kColumns + tx];
    for (int d = 0; d < dk; ++d) {
      const float sd = s[d * kColumns + tx];
#pragma unroll
      for (int r = 0; r < kTile / kRows; ++r) acc[r] -= rows[(ty + kRows * r) * dk + d] * sd;
    }
    const float last = gc[n - 1];
    __syncthreads();  // every thread is done with W
#pragma unroll
    for (int r = 0; r < kTile / kRows; ++r) u[(ty + kRows * r) * kColumns + tx] = acc[r];
    for (int idx = tid; idx < kTile * dk; idx += kThreads) {
      const int i = idx / dk, d = idx % dk;
      rows[idx] = i < n ? expf(last - gc[i]) * load_float(k + (start + i) * p.k_row_stride + h * p.k_head_stride + d)
                        : 0.0f;
    }
    __syncthreads();
    // S[d][tx] = γ_C S[d][tx] + Σ_i K̃[i][d] U[i][tx], keys d = ty + 8m (K̃ entries are warp broadcasts).
    const float decay = expf(last);
    for (int d = ty; d < dk; d += kRows) {
      float value = decay * s[d * kColumns + tx];
      for (int i = 0; i < n; ++i) value += rows[i * dk + d] * u[i * kColumns + tx];
      s[d * kColumns + tx] = value;
    }
    __syncthreads();
  }
  for (int idx = tid; idx < dk * kColumns; idx += kThreads)
    state[(idx / kColumns) * dv + c0 + idx % kColumns] = s[idx];
}

// Read: per (64 tokens, head, 32 value columns). Shared memory: s [dk][kColumns], q [kTile][dk].
template <class T>
__global__ void __launch_bounds__(kThreads) gdr_read_kernel(GatedDeltaRuleParams p) {
  extern __shared__ float smem[];
  const int dk = static_cast<int>(p.key_dim), dv = static_cast<int>(p.value_dim);
  float* s = smem;
  float* qs = s + dk * kColumns;
  const int h = blockIdx.y, c0 = blockIdx.z * kColumns, tid = threadIdx.x;
  const int tx = tid % kColumns, ty = tid / kColumns;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * kTile;
  const int n = static_cast<int>(p.tokens - start < kTile ? p.tokens - start : kTile);
  const T* q = static_cast<const T*>(p.q);
  T* o = static_cast<T*>(p.o);
  const float* state = p.state + h * p.state_head_stride;
  for (int idx = tid; idx < dk * kColumns; idx += kThreads) s[idx] = state[(idx / kColumns) * dv + c0 + idx % kColumns];
  for (int idx = tid; idx < kTile * dk; idx += kThreads) {
    const int i = idx / dk, d = idx % dk;
    qs[idx] = i < n ? load_float(q + (start + i) * p.q_row_stride + h * p.q_head_stride + d) : 0.0f;
  }
  __syncthreads();
  float acc[kTile / kRows] = {};
  for (int d = 0; d < dk; ++d) {
    const float sd = s[d * kColumns + tx];
#pragma unroll
    for (int r = 0; r < kTile / kRows; ++r) acc[r] += qs[(ty + kRows * r) * dk + d] * sd;
  }
#pragma unroll
  for (int r = 0; r < kTile / kRows; ++r) {
    const int i = ty + kRows * r;
    if (i >= n) continue;
    const int64_t t = start + i;
    const float factor = p.scale * (p.read_gate ? p.read_gate[t * p.gate_row_stride + h] : 1.0f);
    T* out = o + t * p.o_row_stride + h * p.o_head_stride + c0 + tx;
    store_float(out, (p.accumulate ? load_float(out) : 0.0f) + factor * acc[r]);
  }
}

bool shapes_supported(const GatedDeltaRuleParams& p) {
  return p.tokens >= 0 && p.heads >= 1 && p.heads <= 65535 && p.key_dim >= 1 && p.key_dim <= kMaxKeyDim &&
         p.value_dim >= kColumns && p.value_dim % kColumns == 0 && p.value_dim <= 65535 * kColumns && p.state &&
         p.state_head_stride >= p.key_dim * p.value_dim &&
         (p.io_dtype == DType::F32 || p.io_dtype == DType::BF16);
}

size_t prepare_smem_bytes(const GatedDeltaRuleParams& p) {
  const int64_t row_stride = (p.key_dim > p.value_dim ? p.key_dim : p.value_dim) + 1;
  return static_cast<size_t>(kTile * row_stride + 2 * kTile * kTile + 2 * kTile) * sizeof(float);
}
size_t scan_smem_bytes(const GatedDeltaRuleParams& p) {
  return static_cast<size_t>(p.key_dim * kColumns + kTile * p.key_dim + kTile * kColumns + kTile) * sizeof(float);
}
size_t read_smem_bytes(const GatedDeltaRuleParams& p) {
  return static_cast<size_t>(p.key_dim * kColumns + kTile * p.key_dim) * sizeof(float);
}

template <class Kernel>
cudaError_t allow_smem(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

template <class T>
cudaError_t launch_update(const GatedDeltaRuleParams& p, const Workspace& ws, cudaStream_t stream) {
  const size_t prep_bytes = prepare_smem_bytes(p), scan_bytes = scan_smem_bytes(p);
  cudaError_t status = allow_smem(gdr_prepare_kernel<T>, prep_bytes);
  if (status != cudaSuccess) return status;
  if ((status = allow_smem(gdr_scan_kernel<T>, scan_bytes)) != cudaSuccess) return status;
  const unsigned tiles = static_cast<unsigned>((p.tokens + kTile - 1) / kTile);
  gdr_prepare_kernel<T><<<dim3(tiles, static_cast<unsigned>(p.heads)), kThreads, prep_bytes, stream>>>(p, ws);
  gdr_scan_kernel<T><<<dim3(static_cast<unsigned>(p.value_dim / kColumns), static_cast<unsigned>(p.heads)), kThreads,
                       scan_bytes, stream>>>(p, ws);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_read(const GatedDeltaRuleParams& p, cudaStream_t stream) {
  const size_t bytes = read_smem_bytes(p);
  cudaError_t status = allow_smem(gdr_read_kernel<T>, bytes);
  if (status != cudaSuccess) return status;
  const unsigned tiles = static_cast<unsigned>((p.tokens + kTile - 1) / kTile);
  gdr_read_kernel<T><<<dim3(tiles, static_cast<unsigned>(p.heads), static_cast<unsigned>(p.value_dim / kColumns)),
                       kThreads, bytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

size_t gated_delta_rule_workspace_bytes(const GatedDeltaRuleParams& p) {
  return static_cast<size_t>(p.tokens * p.heads * (p.key_dim + p.value_dim + 1)) * sizeof(float);
}

cudaError_t gated_delta_rule_update(const GatedDeltaRuleParams& p, void* workspace, size_t workspace_bytes,
                                    cudaStream_t stream) {
  if (!shapes_supported(p)) return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  if (!p.k || !p.v || !p.log_alpha || !p.beta || p.gate_row_stride < p.heads || !workspace ||
      workspace_bytes < gated_delta_rule_workspace_bytes(p))
    return cudaErrorInvalidValue;
  const Workspace ws = split_workspace(workspace, p);
  return p.io_dtype == DType::BF16 ? launch_update<__nv_bfloat16>(p, ws, stream) : launch_update<float>(p, ws, stream);
}

cudaError_t gated_delta_rule_read(const GatedDeltaRuleParams& p, cudaStream_t stream) {
  if (!shapes_supported(p)) return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  if (!p.q || !p.o || (p.read_gate && p.gate_row_stride < p.heads)) return cudaErrorInvalidValue;
  return p.io_dtype == DType::BF16 ? launch_read<__nv_bfloat16>(p, stream) : launch_read<float>(p, stream);
}

}  // namespace fastar::cuda
