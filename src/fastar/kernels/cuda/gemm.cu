#include "fastar/kernels/cuda/gemm.h"

#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "fastar/core/error.h"

#define FASTAR_CUBLAS_CHECK(call)                                                                   \
  do {                                                                                              \
    cublasStatus_t fastar_cublas_status_ = (call);                                                  \
    FASTAR_CHECK(fastar_cublas_status_ == CUBLAS_STATUS_SUCCESS,                                    \
                 "cuBLASLt error in " #call ": " << cublasLtGetStatusName(fastar_cublas_status_) << " ("  \
                                                 << cublasLtGetStatusString(fastar_cublas_status_) << ")"); \
  } while (0)

namespace fastar::cuda {

namespace {

// Largest power of two (capped at 16) dividing the address; 16 for nullptr.
int alignment_of(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  if (v == 0) return 16;
  return static_cast<int>(std::min<uintptr_t>(16, v & (~v + 1)));
}

int log2_small(int x) {
  int r = 0;
  while ((1 << r) < x) ++r;
  return r;
}

const char* epilogue_name(LinearEpilogue e) {
  switch (e) {
    case LinearEpilogue::None: return "none";
    case LinearEpilogue::Bias: return "bias";
    case LinearEpilogue::BiasGeluTanh: return "bias+gelu_tanh";
  }
  return "?";
}

}  // namespace

Gemm::Gemm() {
  FASTAR_CUBLAS_CHECK(cublasLtCreate(&handle_));
  const cudaError_t status = cudaMalloc(&workspace_, kWorkspaceBytes);
  if (status != cudaSuccess) {
    cudaGetLastError();
    cublasLtDestroy(handle_);
    handle_ = nullptr;
    FASTAR_FAIL("out of GPU memory allocating the 32 MiB cuBLASLt workspace (" << cudaGetErrorString(status) << ")");
  }
}

Gemm::~Gemm() {
  for (auto& [key, p] : plans_) {
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.c) cublasLtMatrixLayoutDestroy(p.c);
    if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  }
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

const Gemm::Plan& Gemm::plan(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;

  const auto [rows, in_features, out_features, epi_int, align_code] = key;
  const auto epilogue = static_cast<LinearEpilogue>(epi_int);
  const uint32_t align_a = 1u << ((align_code >> 6) & 7), align_b = 1u << ((align_code >> 3) & 7),
                 align_c = 1u << (align_code & 7);

  Plan p;
  // Destroys whatever was created if a later step throws.
  struct Guard {
    Plan* p;
    bool armed = true;
    ~Guard() {
      if (!armed) return;
      if (p->a) cublasLtMatrixLayoutDestroy(p->a);
      if (p->b) cublasLtMatrixLayoutDestroy(p->b);
      if (p->c) cublasLtMatrixLayoutDestroy(p->c);
      if (p->desc) cublasLtMatmulDescDestroy(p->desc);
    }
  } guard{&p};

  FASTAR_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  FASTAR_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a));
  FASTAR_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b));
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  if (epilogue == LinearEpilogue::Bias) epi = CUBLASLT_EPILOGUE_BIAS;
  if (epilogue == LinearEpilogue::BiasGeluTanh) epi = CUBLASLT_EPILOGUE_GELU_BIAS;
  FASTAR_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  if (epilogue != LinearEpilogue::None) {
    const cudaDataType_t bias_type = CUDA_R_16BF;
    FASTAR_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
  }

  // Column-major views: A = weight as [in, out] (ld in), op T; B = in as [in, rows] (ld in);
  // C = D = out as [out, rows] (ld out).
  FASTAR_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, static_cast<uint64_t>(in_features),
                                                 static_cast<uint64_t>(out_features), in_features));
  FASTAR_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, static_cast<uint64_t>(in_features),
                                                 static_cast<uint64_t>(rows), in_features));
  FASTAR_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_16BF, static_cast<uint64_t>(out_features),
                                                 static_cast<uint64_t>(rows), out_features));

  cublasLtMatmulPreference_t pref = nullptr;
  FASTAR_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } pref_guard{pref};
  const uint64_t workspace = kWorkspaceBytes;
  FASTAR_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                           sizeof workspace));
  FASTAR_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof align_a));
  FASTAR_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof align_b));
  FASTAR_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof align_c));
  FASTAR_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof align_c));

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  FASTAR_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found));
  FASTAR_CHECK(found > 0 && result.state == CUBLAS_STATUS_SUCCESS,
               "linear_bf16: cuBLASLt has no algorithm for rows=" << rows << " in=" << in_features << " out="
                   << out_features << " epilogue=" << epilogue_name(epilogue) << " (pointer alignment in/weight/out "
                   << align_b << "/" << align_a << "/" << align_c
                   << " bytes); keep in/out features multiples of 8 and buffers 16-byte aligned");
  p.algo = result.algo;

  guard.armed = false;
  return plans_.emplace(key, p).first->second;
}

void linear_bf16(Gemm& gemm, __nv_bfloat16* out, const __nv_bfloat16* in, const __nv_bfloat16* weight,
                 const __nv_bfloat16* bias, int64_t rows, int64_t in_features, int64_t out_features,
                 LinearEpilogue epilogue, cudaStream_t stream) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  FASTAR_CHECK(rows >= 0 && rows <= kMax && out_features >= 0 && out_features <= kMax && in_features >= 1 &&
                   in_features <= kMax,
               "linear_bf16: bad shape rows=" << rows << " in=" << in_features << " out=" << out_features);
  FASTAR_CHECK((bias != nullptr) == (epilogue != LinearEpilogue::None),
               "linear_bf16: epilogue " << epilogue_name(epilogue) << (bias ? " takes no bias" : " needs a bias"));
  if (rows == 0 || out_features == 0) return;
  FASTAR_CHECK(out && in && weight, "linear_bf16: null operand");
  FASTAR_CHECK(static_cast<const void*>(out) != static_cast<const void*>(in) &&
                   static_cast<const void*>(out) != static_cast<const void*>(weight),
               "linear_bf16: out aliases an input");

  const int align_code = (log2_small(alignment_of(weight)) << 6) | (log2_small(alignment_of(in)) << 3) |
                         log2_small(alignment_of(out));
  const Gemm::Plan& p =
      gemm.plan(Gemm::Key{rows, in_features, out_features, static_cast<int>(epilogue), align_code});
  if (epilogue != LinearEpilogue::None) {
    FASTAR_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  }
  const float alpha = 1.0f, beta = 0.0f;
  FASTAR_CUBLAS_CHECK(cublasLtMatmul(gemm.handle_, p.desc, &alpha, weight, p.a, in, p.b, &beta, out, p.c, out, p.c,
                                     &p.algo, gemm.workspace_, Gemm::kWorkspaceBytes, stream));
}

}  // namespace fastar::cuda
