// bf16 GEMM for the CUDA backend through cuBLASLt: nn.Linear with optional fused bias / GELU.
//
//   out[rows, out_features] = epilogue(in[rows, in_features] · weight[out_features, in_features]ᵀ (+ bias))
//
// All pointers are device pointers, row-major, contiguous (leading dimension = the row length).
// Inputs bf16, accumulation fp32 (CUBLAS_COMPUTE_32F, alpha/beta fp32), output bf16; the epilogue runs
// on the fp32 accumulator before the final rounding. bias is bf16 [out_features].
//
// Epilogues:
//   None          out = in·Wᵀ                      (bias must be nullptr)
//   Bias          out = in·Wᵀ + bias               (CUBLASLT_EPILOGUE_BIAS)
//   BiasGeluTanh  out = gelu(in·Wᵀ + bias)         (CUBLASLT_EPILOGUE_GELU_BIAS). cuBLASLt's GELU is the
//                 tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the one Wan's FFN uses
//                 (nn.GELU(approximate="tanh")) and the one cpu::gelu_tanh_forward computes;
//                 cuda_ops_check verifies it against that reference.
//
// Row-major trick: a row-major [r, c] matrix is a column-major [c, r] one, so the call computes, in
// cuBLASLt's column-major terms, outᵀ[out, rows] = W[in, out]ᵀ · inᵀ[in, rows] (A = weight with
// transa = T, B = in with transb = N, m = out_features, n = rows, k = in_features); the bias is then a
// per-row (length-m) vector of D, which is what cuBLASLt's bias epilogue broadcasts.
//
// Constraints (checked; violations throw fastar::Error):
//   - rows, out_features >= 0 and in_features >= 1, all < 2^31; rows == 0 or out_features == 0 is a
//     no-op;
//   - pointers at least 2-byte aligned (any bf16 address). cuBLASLt's tensor-core kernels want
//     16-byte aligned pointers and in_features / out_features multiples of 8 (16-byte rows); the
//     plan is searched with the alignment the pointers actually have, so odd shapes such as
//     (37, 64→5) still get a (slower) cuBLASLt algorithm. If the heuristic returns none, the call
//     throws saying so. For full speed keep in_features and out_features multiples of 8 and the
//     buffers 16-byte aligned (cudaMalloc gives 256).
//
// Plans (matmul descriptor, the three layouts and the heuristic's algorithm) are cached per
// (rows, in_features, out_features, epilogue, pointer alignment), so a steady-state call does no
// heuristic search — only a descriptor attribute update (bias pointer) and the cublasLtMatmul launch.
// A Gemm is not thread-safe: use one per host thread (one per stream is the natural choice; the
// 32 MiB workspace is shared by all calls made through it, which is correct as long as they are
// issued to one stream or otherwise serialised).
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

namespace fastar::cuda {

enum class LinearEpilogue { None, Bias, BiasGeluTanh };

class Gemm {
 public:
  static constexpr size_t kWorkspaceBytes = 32u << 20;  // 32 MiB, allocated once in the constructor

  Gemm();  // creates the cuBLASLt handle and the workspace on the current device
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Number of cached plans (for tests: a repeated shape must not add one).
  size_t plan_count() const { return plans_.size(); }

 private:
  friend void linear_bf16(Gemm&, __nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*,
                          int64_t, int64_t, int64_t, LinearEpilogue, cudaStream_t);

  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  // (rows, in_features, out_features, epilogue, alignment code of the in / weight / out pointers)
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int>;

  const Plan& plan(const Key& key);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::map<Key, Plan> plans_;
};

// See the top of this file. `bias` must be non-null for Bias / BiasGeluTanh and null for None.
// `out` must not alias `in` or `weight`. Asynchronous on `stream`.
void linear_bf16(Gemm& gemm, __nv_bfloat16* out, const __nv_bfloat16* in, const __nv_bfloat16* weight,
                 const __nv_bfloat16* bias, int64_t rows, int64_t in_features, int64_t out_features,
                 LinearEpilogue epilogue, cudaStream_t stream);

}  // namespace fastar::cuda
