#include "fastar/kernels/cuda/cudnn_conv.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/conv_epilogue.h"
#if FASTAR_HAVE_CUDNN
#include "fastar/kernels/cuda/cudnn_graph_conv.h"
#endif

#if FASTAR_HAVE_CUDNN
#include <cublasLt.h>
#include <cudnn.h>
#endif

namespace fastar::cuda {

namespace {

[[maybe_unused]] constexpr const char* kNoCudnnMessage =
    "this build has no cuDNN: pip install nvidia-cudnn-cu13 or apt install cudnn9-cuda-13, then reconfigure "
    "(cmake finds it through the Python package nvidia.cudnn, CUDNN_ROOT or -DFASTAR_CUDNN_ROOT)";

[[maybe_unused]] std::string shape_text(const Conv3dParams& p) {
  std::ostringstream s;
  s << p.frames_in << "x" << p.height << "x" << p.width << "x" << p.in_channels << " -> " << p.out_channels
    << " (kernel " << p.kernel_t << "x" << p.kernel_hw << "x" << p.kernel_hw << ", padding " << p.padding() << ")";
  return s.str();
}

}  // namespace

#if FASTAR_HAVE_CUDNN

bool have_cudnn() { return true; }

#define FASTAR_CUDNN_CHECK(call, shape)                                                                 \
  do {                                                                                                  \
    cudnnStatus_t fastar_cudnn_status_ = (call);                                                        \
    FASTAR_CHECK(fastar_cudnn_status_ == CUDNN_STATUS_SUCCESS,                                          \
                 "cuDNN error in " #call " for the convolution " << (shape) << ": "                     \
                                                                 << cudnnGetErrorString(fastar_cudnn_status_)); \
  } while (0)

namespace {

// The bandwidth assumed for the separate epilogue kernel when weighing a fused algorithm against the
// fastest unfused one: bytes per millisecond, about 3 TB/s (what a streaming kernel gets on an H100/H200).
constexpr double kEpilogueBytesPerMs = 3.0e9;

const char* algo_name(cudnnConvolutionFwdAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return "implicit_gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return "implicit_precomp_gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return "gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return "direct";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return "fft";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return "fft_tiling";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD: return "winograd";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return "winograd_nonfused";
    default: return "?";
  }
}

// (frames_in, height, width, in_channels, out_channels, kernel_t, kernel_hw, padding)
using ShapeKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int, int, int>;
// (shape, has bias, has residual, relu, fused epilogue allowed, graph API allowed)
using ChoiceKey = std::tuple<ShapeKey, bool, bool, bool, bool, bool>;

// Graph-API candidates timed per shape and epilogue (heuristic order), and the most workspace one may use.
constexpr int kGraphFusedCandidates = 6;
constexpr int kGraphPlainCandidates = 8;
constexpr int64_t kGraphMaxWorkspaceBytes = int64_t{256} << 20;

ShapeKey shape_key(const Conv3dParams& p) {
  return {p.frames_in, p.height, p.width, p.in_channels, p.out_channels, p.kernel_t, p.kernel_hw, p.padding()};
}

// Descriptors of one convolution shape and cuDNN's algorithms for it, fastest first.
struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  std::vector<cudnnConvolutionFwdAlgoPerf_t> algos;
  bool measured = false;  // algos timed by cudnnFindConvolutionForwardAlgorithm (else heuristic order)
  int64_t out_elements = 0;
  std::string shape;

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (bias) cudnnDestroyTensorDescriptor(bias);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

// A pointwise conv (1×1×1, no activation) as one cuBLASLt GEMM with its bias / residual epilogue:
// cuDNN's kernels for these shapes ran at a few % of the GEMM's speed on an H200 (VAE's to_qkv, proj,
// shortcut). Row-major trick as in gemm.h: column-major outᵀ[Cout, rows] = W[Cin, Cout]ᵀ · inᵀ[Cin, rows]
// (+ bias per row of Dᵀ) + residualᵀ (C = residual, beta 1).
// (rows, in_channels, out_channels, has bias, has residual)
using GemmKey = std::tuple<int64_t, int64_t, int64_t, bool, bool>;
struct GemmPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  GemmPlan() = default;
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;
  ~GemmPlan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};
// The workspace cuBLASLt may use (shared with cuDNN's: one stream).
constexpr size_t kGemmWorkspaceBytes = size_t{32} << 20;

#define FASTAR_CONV_CUBLASLT_CHECK(call, shape)                                                          \
  do {                                                                                                   \
    cublasStatus_t fastar_lt_status_ = (call);                                                           \
    FASTAR_CHECK(fastar_lt_status_ == CUBLAS_STATUS_SUCCESS,                                             \
                 "cuBLASLt error in " #call " for the pointwise convolution " << (shape) << ": "         \
                                                                            << cublasLtGetStatusName(fastar_lt_status_)); \
  } while (0)

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// How one (shape, epilogue) runs: a graph-API plan when one was fastest, else the legacy algorithm.
struct Choice {
  cudnnConvolutionFwdAlgoPerf_t algo{};
  bool fused = false;
  double estimated_ms = 0;  // measured time (+ the separate epilogue's estimate when not fused)
  std::shared_ptr<CudnnGraphConv> graph;
};

}  // namespace

struct ConvRunner::Impl {
  cudnnHandle_t handle = nullptr;
  cudnnActivationDescriptor_t relu = nullptr, identity = nullptr;
  std::map<ShapeKey, std::unique_ptr<Plan>> plans;
  std::map<ChoiceKey, Choice> choices;
  cublasLtHandle_t lt = nullptr;
  std::map<GemmKey, std::unique_ptr<GemmPlan>> gemm_plans;
  void* workspace = nullptr;
  size_t workspace_size = 0;
  bool fused_allowed = true;
  bool graph_allowed = true;
  cudaStream_t stream = nullptr;

  ~Impl() {
    plans.clear();
    gemm_plans.clear();
    if (lt) cublasLtDestroy(lt);
    if (workspace) cudaFree(workspace);
    if (relu) cudnnDestroyActivationDescriptor(relu);
    if (identity) cudnnDestroyActivationDescriptor(identity);
    if (handle) cudnnDestroy(handle);
  }

  Plan& plan(const Conv3dParams& p);
  Choice& choice(const Conv3dParams& p, Plan& plan, const ConvOperands& operands);
  void ensure_workspace(size_t bytes, const std::string& shape);
  GemmPlan& gemm_plan(const Conv3dParams& p, bool has_bias, bool has_residual);
};

GemmPlan& ConvRunner::Impl::gemm_plan(const Conv3dParams& p, bool has_bias, bool has_residual) {
  const int64_t rows = p.frames_in * p.height * p.width;
  const GemmKey key{rows, p.in_channels, p.out_channels, has_bias, has_residual};
  auto it = gemm_plans.find(key);
  if (it != gemm_plans.end()) return *it->second;
  const std::string s = shape_text(p);
  FASTAR_CHECK(rows < (int64_t{1} << 31), "pointwise convolution " << s << ": 2^31 rows or more");
  if (!lt) FASTAR_CONV_CUBLASLT_CHECK(cublasLtCreate(&lt), s);
  auto plan = std::make_unique<GemmPlan>();
  GemmPlan& g = *plan;
  FASTAR_CONV_CUBLASLT_CHECK(cublasLtMatmulDescCreate(&g.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), s);
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  FASTAR_CONV_CUBLASLT_CHECK(
      cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a), s);
  FASTAR_CONV_CUBLASLT_CHECK(
      cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b), s);
  const cublasLtEpilogue_t epilogue = has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  FASTAR_CONV_CUBLASLT_CHECK(
      cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), s);
  if (has_bias) {
    const cudaDataType_t bias_type = CUDA_R_16BF;
    FASTAR_CONV_CUBLASLT_CHECK(
        cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type), s);
  }
  const uint64_t ci = static_cast<uint64_t>(p.in_channels), co = static_cast<uint64_t>(p.out_channels);
  FASTAR_CONV_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&g.a, CUDA_R_16BF, ci, co, p.in_channels), s);
  FASTAR_CONV_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&g.b, CUDA_R_16BF, ci, static_cast<uint64_t>(rows),
                                                        p.in_channels), s);
  FASTAR_CONV_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&g.c, CUDA_R_16BF, co, static_cast<uint64_t>(rows),
                                                        p.out_channels), s);
  cublasLtMatmulPreference_t pref = nullptr;
  FASTAR_CONV_CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref), s);
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } guard{pref};
  const uint64_t workspace_limit = kGemmWorkspaceBytes;
  FASTAR_CONV_CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                  &workspace_limit, sizeof workspace_limit),
                             s);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  FASTAR_CONV_CUBLASLT_CHECK(
      cublasLtMatmulAlgoGetHeuristic(lt, g.desc, g.a, g.b, g.c, g.c, pref, 1, &result, &found), s);
  FASTAR_CHECK(found > 0 && result.state == CUBLAS_STATUS_SUCCESS,
               "cuBLASLt has no algorithm for the pointwise convolution " << s);
  g.algo = result.algo;
  return *gemm_plans.emplace(key, std::move(plan)).first->second;
}

Plan& ConvRunner::Impl::plan(const Conv3dParams& p) {
  const ShapeKey key = shape_key(p);
  auto it = plans.find(key);
  if (it != plans.end()) return *it->second;

  auto plan = std::make_unique<Plan>();
  Plan& pl = *plan;
  pl.shape = shape_text(p);
  const std::string& s = pl.shape;
  FASTAR_CHECK(p.frames_in * p.height * p.width * std::max(p.in_channels, p.out_channels) < (int64_t{1} << 31),
               "cuDNN convolution " << s << ": a tensor of 2^31 elements or more; decode fewer frames per pass");
  const int Tin = static_cast<int>(p.frames_in), H = static_cast<int>(p.height), W = static_cast<int>(p.width);
  const int Ci = static_cast<int>(p.in_channels), Co = static_cast<int>(p.out_channels);
  const int To = static_cast<int>(p.frames_out()), Ho = static_cast<int>(p.height_out()),
            Wo = static_cast<int>(p.width_out());
  const int k = p.kernel_hw, kt = p.kernel_t, pad = p.padding();
  FASTAR_CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl.x), s);
  FASTAR_CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl.y), s);
  FASTAR_CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl.bias), s);
  FASTAR_CUDNN_CHECK(cudnnCreateFilterDescriptor(&pl.w), s);
  FASTAR_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&pl.conv), s);
  if (kt == 1) {
    // A 2-D conv over the Tin frames as cuDNN's batch: NHWC [Tin, H, W, C].
    FASTAR_CUDNN_CHECK(cudnnSetTensor4dDescriptor(pl.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, Tin, Ci, H, W), s);
    FASTAR_CUDNN_CHECK(cudnnSetTensor4dDescriptor(pl.y, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, To, Co, Ho, Wo), s);
    FASTAR_CUDNN_CHECK(cudnnSetTensor4dDescriptor(pl.bias, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, 1, Co, 1, 1), s);
    FASTAR_CUDNN_CHECK(cudnnSetFilter4dDescriptor(pl.w, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, Co, Ci, k, k), s);
    FASTAR_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(pl.conv, pad, pad, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                       CUDNN_DATA_FLOAT),
                       s);
  } else {
    // One video as a 5-D NDHWC tensor [1, Tin, H, W, C]; 'valid' in time.
    const int x_dims[5] = {1, Ci, Tin, H, W}, y_dims[5] = {1, Co, To, Ho, Wo}, b_dims[5] = {1, Co, 1, 1, 1};
    const int w_dims[5] = {Co, Ci, kt, k, k};
    FASTAR_CUDNN_CHECK(cudnnSetTensorNdDescriptorEx(pl.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, 5, x_dims), s);
    FASTAR_CUDNN_CHECK(cudnnSetTensorNdDescriptorEx(pl.y, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, 5, y_dims), s);
    FASTAR_CUDNN_CHECK(cudnnSetTensorNdDescriptorEx(pl.bias, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, 5, b_dims), s);
    FASTAR_CUDNN_CHECK(cudnnSetFilterNdDescriptor(pl.w, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, 5, w_dims), s);
    const int pads[3] = {0, pad, pad}, strides[3] = {1, 1, 1}, dilations[3] = {1, 1, 1};
    FASTAR_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(pl.conv, 3, pads, strides, dilations, CUDNN_CROSS_CORRELATION,
                                                       CUDNN_DATA_FLOAT),
                       s);
  }
  FASTAR_CUDNN_CHECK(cudnnSetConvolutionMathType(pl.conv, CUDNN_TENSOR_OP_MATH), s);

  // cuDNN's own output shape must be ours.
  int out_dims[5] = {0, 0, 0, 0, 0};
  FASTAR_CUDNN_CHECK(cudnnGetConvolutionNdForwardOutputDim(pl.conv, pl.x, pl.w, kt == 1 ? 4 : 5, out_dims), s);
  const bool same = kt == 1 ? (out_dims[0] == To && out_dims[1] == Co && out_dims[2] == Ho && out_dims[3] == Wo)
                            : (out_dims[0] == 1 && out_dims[1] == Co && out_dims[2] == To && out_dims[3] == Ho &&
                               out_dims[4] == Wo);
  FASTAR_ASSERT(same, "cuDNN's output shape differs from Conv3dParams' for " << s);
  pl.out_elements = int64_t{To} * Ho * Wo * Co;

  // Time every algorithm once (cuDNN allocates its own buffers); if that fails (e.g. no memory for
  // its trial buffers), take the heuristic's order.
  cudnnConvolutionFwdAlgoPerf_t results[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  cudnnStatus_t found = cudnnFindConvolutionForwardAlgorithm(handle, pl.x, pl.w, pl.conv, pl.y,
                                                             CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, results);
  pl.measured = found == CUDNN_STATUS_SUCCESS;
  if (!pl.measured) {
    cudaGetLastError();
    returned = 0;
    FASTAR_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, pl.x, pl.w, pl.conv, pl.y,
                                                              CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, results),
                       s);
  }
  for (int i = 0; i < returned; ++i)
    if (results[i].status == CUDNN_STATUS_SUCCESS) pl.algos.push_back(results[i]);
  FASTAR_CHECK(!pl.algos.empty(), "cuDNN has no forward algorithm for the bf16 channels-last convolution "
                                      << s << " (cuDNN " << cudnnGetVersion()
                                      << "); channel counts that are multiples of 8 are the supported case");
  if (pl.measured)
    std::stable_sort(pl.algos.begin(), pl.algos.end(),
                     [](const auto& a, const auto& b) { return a.time < b.time; });
  return *plans.emplace(key, std::move(plan)).first->second;
}

Choice& ConvRunner::Impl::choice(const Conv3dParams& p, Plan& pl, const ConvOperands& operands) {
  const bool has_bias = operands.bias != nullptr, has_residual = operands.residual != nullptr;
  const bool residual_is_out = has_residual && operands.residual == operands.out;
  const bool relu = p.activation == ConvActivation::Relu;
  const bool may_fuse = fused_allowed && !residual_is_out;
  const ChoiceKey key{shape_key(p), has_bias, has_residual, relu, may_fuse, graph_allowed && !residual_is_out};
  auto it = choices.find(key);
  if (it != choices.end()) return it->second;

  Choice c;
  c.algo = pl.algos.front();
  const bool epilogue = has_bias || has_residual || relu;
  const double epilogue_ms =
      epilogue ? static_cast<double>(pl.out_elements) * 2.0 * (2 + (has_residual ? 1 : 0)) / kEpilogueBytesPerMs : 0;
  c.estimated_ms = c.algo.time + epilogue_ms;
  if (epilogue && may_fuse && has_bias) {
    // cudnnConvolutionBiasActivationForward runs the identity activation only with
    // IMPLICIT_PRECOMP_GEMM; ReLU with any algorithm. Take the fused one when it is (estimated) faster.
    for (const auto& a : pl.algos) {
      if (!relu && a.algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) continue;
      if (!pl.measured || a.time <= c.estimated_ms) {
        c.algo = a;
        c.fused = true;
        c.estimated_ms = a.time;
      }
      break;
    }
  }
  if (graph_allowed && !residual_is_out) {
    // The graph API's engine configurations, timed here: with the epilogue in the graph, and the
    // conv alone (+ the separate epilogue's estimate). The fastest of all paths wins.
    auto workspace_for = [&](int64_t bytes) {
      ensure_workspace(static_cast<size_t>(bytes), pl.shape);
      return workspace;
    };
    for (const bool fuse : {true, false}) {
      if (fuse && !(epilogue && may_fuse)) continue;
      std::shared_ptr<CudnnGraphConv> g =
          CudnnGraphConv::build(handle, stream, p, operands, fuse, fuse ? kGraphFusedCandidates : kGraphPlainCandidates,
                                kGraphMaxWorkspaceBytes, workspace_for);
      if (!g) continue;
      const double ms = g->time_ms() + (g->fused_epilogue() ? 0.0 : epilogue_ms);
      if (ms < c.estimated_ms) {
        c.graph = g;
        c.fused = g->fused_epilogue();
        c.estimated_ms = ms;
      }
    }
  }
  return choices.emplace(key, std::move(c)).first->second;
}

void ConvRunner::Impl::ensure_workspace(size_t bytes, const std::string& shape) {
  if (bytes <= workspace_size) return;
  // The old workspace may still be in use by queued convolutions.
  const cudaError_t synced = cudaStreamSynchronize(stream);
  FASTAR_CHECK(synced == cudaSuccess, "CUDA error before growing the cuDNN workspace: " << cudaGetErrorString(synced));
  if (workspace) cudaFree(workspace);
  workspace = nullptr;
  workspace_size = 0;
  const cudaError_t status = cudaMalloc(&workspace, bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();
    workspace = nullptr;
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    FASTAR_FAIL("out of GPU memory: the cuDNN workspace for the convolution "
                << shape << " needs " << bytes << " bytes (" << bytes / (1024.0 * 1024.0) << " MiB), "
                << free_bytes / (1024.0 * 1024.0) << " MiB free (" << cudaGetErrorString(status)
                << "); decode fewer latents per pass");
  }
  workspace_size = bytes;
}

ConvRunner::ConvRunner(cudaStream_t stream) : impl_(std::make_unique<Impl>()), stream_(stream) {
  impl_->stream = stream;
  const std::string what = "(runner setup)";
  FASTAR_CUDNN_CHECK(cudnnCreate(&impl_->handle), what);
  FASTAR_CUDNN_CHECK(cudnnSetStream(impl_->handle, stream), what);
  FASTAR_CUDNN_CHECK(cudnnCreateActivationDescriptor(&impl_->relu), what);
  FASTAR_CUDNN_CHECK(cudnnSetActivationDescriptor(impl_->relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0),
                     what);
  FASTAR_CUDNN_CHECK(cudnnCreateActivationDescriptor(&impl_->identity), what);
  FASTAR_CUDNN_CHECK(
      cudnnSetActivationDescriptor(impl_->identity, CUDNN_ACTIVATION_IDENTITY, CUDNN_NOT_PROPAGATE_NAN, 0.0), what);
}

ConvRunner::~ConvRunner() = default;

void ConvRunner::set_fused_epilogue(bool allowed) { impl_->fused_allowed = allowed; }
void ConvRunner::set_graph_api(bool allowed) { impl_->graph_allowed = allowed; }

void ConvRunner::forward(const Conv3dParams& p, const __nv_bfloat16* in, const __nv_bfloat16* weight,
                         const __nv_bfloat16* bias, const __nv_bfloat16* residual, __nv_bfloat16* out) {
  check_conv3d_params(p, "ConvRunner::forward");
  FASTAR_CHECK(in && weight && out, "ConvRunner::forward: null input, weight or output for " << shape_text(p));
  FASTAR_CHECK(static_cast<const void*>(in) != static_cast<const void*>(out),
               "ConvRunner::forward: the output aliases the input for " << shape_text(p));
  if (p.kernel_t == 1 && p.kernel_hw == 1 && p.activation == ConvActivation::None && p.in_channels % 8 == 0 &&
      p.out_channels % 8 == 0 && aligned16(in) && aligned16(weight) && aligned16(out) && (!bias || aligned16(bias)) &&
      (!residual || aligned16(residual))) {
    GemmPlan& g = impl_->gemm_plan(p, bias != nullptr, residual != nullptr);
    const std::string s = shape_text(p);
    impl_->ensure_workspace(kGemmWorkspaceBytes, s);
    workspace_bytes_ = static_cast<int64_t>(impl_->workspace_size);
    if (bias)
      FASTAR_CONV_CUBLASLT_CHECK(
          cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), s);
    const float alpha = 1.0f, beta = residual ? 1.0f : 0.0f;
    FASTAR_CONV_CUBLASLT_CHECK(cublasLtMatmul(impl_->lt, g.desc, &alpha, weight, g.a, in, g.b, &beta,
                                              residual ? static_cast<const void*>(residual) : out, g.c, out, g.c,
                                              &g.algo, impl_->workspace, kGemmWorkspaceBytes, impl_->stream),
                               s);
    return;
  }
  Plan& pl = impl_->plan(p);
  const ConvOperands operands{in, weight, bias, residual, out};
  Choice& c = impl_->choice(p, pl, operands);
  if (c.graph) {
    impl_->ensure_workspace(static_cast<size_t>(c.graph->workspace_bytes()), pl.shape);
    workspace_bytes_ = static_cast<int64_t>(impl_->workspace_size);
    c.graph->run(impl_->handle, operands, impl_->workspace);
    if (!c.graph->fused_epilogue())
      conv_epilogue_bf16(out, bias, residual, pl.out_elements / p.out_channels, p.out_channels,
                         p.activation == ConvActivation::Relu, impl_->stream);
    return;
  }
  impl_->ensure_workspace(c.algo.memory, pl.shape);
  workspace_bytes_ = static_cast<int64_t>(impl_->workspace_size);
  FASTAR_CUDNN_CHECK(cudnnSetConvolutionMathType(pl.conv, c.algo.mathType), pl.shape);
  const float one = 1.0f, zero = 0.0f;
  if (c.fused) {
    const float alpha2 = residual ? 1.0f : 0.0f;
    const cudnnStatus_t status = cudnnConvolutionBiasActivationForward(
        impl_->handle, &one, pl.x, in, pl.w, weight, pl.conv, c.algo.algo, impl_->workspace, impl_->workspace_size,
        &alpha2, pl.y, residual ? static_cast<const void*>(residual) : static_cast<const void*>(out), pl.bias, bias,
        p.activation == ConvActivation::Relu ? impl_->relu : impl_->identity, pl.y, out);
    if (status == CUDNN_STATUS_SUCCESS) return;
    // Not supported for this configuration after all: from now on the conv + epilogue path (the
    // fastest unfused algorithm), for this shape and epilogue.
    c.fused = false;
    c.algo = pl.algos.front();
    impl_->ensure_workspace(c.algo.memory, pl.shape);
    workspace_bytes_ = static_cast<int64_t>(impl_->workspace_size);
    FASTAR_CUDNN_CHECK(cudnnSetConvolutionMathType(pl.conv, c.algo.mathType), pl.shape);
  }
  FASTAR_CUDNN_CHECK(cudnnConvolutionForward(impl_->handle, &one, pl.x, in, pl.w, weight, pl.conv, c.algo.algo,
                                             impl_->workspace, impl_->workspace_size, &zero, pl.y, out),
                     pl.shape);
  conv_epilogue_bf16(out, bias, residual, pl.out_elements / p.out_channels, p.out_channels,
                     p.activation == ConvActivation::Relu, impl_->stream);
}

std::string ConvRunner::describe_plans() const {
  std::ostringstream out;
  for (const auto& [key, c] : impl_->choices) {
    const auto& [shape, has_bias, has_residual, relu, may_fuse, may_graph] = key;
    const Plan& pl = *impl_->plans.at(shape);
    out << pl.shape << (has_bias ? " +bias" : "") << (has_residual ? " +residual" : "") << (relu ? " relu" : "")
        << ": ";
    if (c.graph) {
      out << std::fixed << std::setprecision(3) << c.estimated_ms << " ms, " << c.graph->summary()
          << "; legacy best " << algo_name(pl.algos.front().algo) << " " << pl.algos.front().time << " ms\n";
      continue;
    }
    out << "legacy " << algo_name(c.algo.algo) << (c.algo.mathType == CUDNN_TENSOR_OP_MATH ? " (tensor op)" : "") << ", "
        << std::fixed << std::setprecision(3) << c.algo.time << " ms" << (pl.measured ? "" : " (heuristic)")
        << ", workspace " << std::setprecision(1) << c.algo.memory / (1024.0 * 1024.0) << " MiB, "
        << (c.fused ? "fused epilogue" : "separate epilogue");
    if (pl.measured && pl.algos.size() > 1) {
      out << "; measured:";
      for (const auto& a : pl.algos) out << " " << algo_name(a.algo) << " " << std::setprecision(3) << a.time;
    }
    out << "\n";
  }
  if (!impl_->gemm_plans.empty())
    out << impl_->gemm_plans.size() << " pointwise convolution shape(s) as cuBLASLt GEMMs\n";
  return out.str();
}

#else  // !FASTAR_HAVE_CUDNN

bool have_cudnn() { return false; }

struct ConvRunner::Impl {};

ConvRunner::ConvRunner(cudaStream_t stream) : stream_(stream) { FASTAR_FAIL(kNoCudnnMessage); }
ConvRunner::~ConvRunner() = default;
void ConvRunner::set_fused_epilogue(bool) { FASTAR_FAIL(kNoCudnnMessage); }
void ConvRunner::set_graph_api(bool) { FASTAR_FAIL(kNoCudnnMessage); }
void ConvRunner::forward(const Conv3dParams&, const __nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*,
                         const __nv_bfloat16*, __nv_bfloat16*) {
  FASTAR_FAIL(kNoCudnnMessage);
}
std::string ConvRunner::describe_plans() const { return ""; }

#endif  // FASTAR_HAVE_CUDNN

}  // namespace fastar::cuda
