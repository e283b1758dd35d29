#if FASTAR_HAVE_CUDNN

#include "fastar/kernels/cuda/cudnn_graph_conv.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <vector>

#include "fastar/core/error.h"

namespace fastar::cuda {

namespace {

// An owned backend descriptor.
struct Desc {
  cudnnBackendDescriptor_t d = nullptr;
  Desc() = default;
  explicit Desc(cudnnBackendDescriptorType_t type) {
    if (cudnnBackendCreateDescriptor(type, &d) != CUDNN_STATUS_SUCCESS) d = nullptr;
  }
  Desc(Desc&& o) noexcept : d(o.d) { o.d = nullptr; }
  Desc& operator=(Desc&& o) noexcept {
    if (this != &o) {
      if (d) cudnnBackendDestroyDescriptor(d);
      d = o.d;
      o.d = nullptr;
    }
    return *this;
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  ~Desc() {
    if (d) cudnnBackendDestroyDescriptor(d);
  }
};

// Tensor unique ids of the graph.
enum : int64_t { kUidX = 1, kUidW = 2, kUidY = 3, kUidBias = 4, kUidResidual = 5, kUidVirtual = 100 };

bool good(cudnnStatus_t s) { return s == CUDNN_STATUS_SUCCESS; }

std::string shape_of(const Conv3dParams& p) {
  std::ostringstream s;
  s << p.frames_in << "x" << p.height << "x" << p.width << "x" << p.in_channels << " -> " << p.out_channels
    << " (kernel " << p.kernel_t << "x" << p.kernel_hw << "x" << p.kernel_hw << ", padding " << p.padding() << ")";
  return s.str();
}

}  // namespace

struct CudnnGraphConv::Descriptors {
  std::vector<Desc> keep;  // tensors, conv, pointwise and operation descriptors, the graph, the engine config
  Desc plan;
};

CudnnGraphConv::~CudnnGraphConv() = default;

std::unique_ptr<CudnnGraphConv> CudnnGraphConv::build(cudnnHandle_t handle, cudaStream_t stream,
                                                      const Conv3dParams& p, const ConvOperands& operands,
                                                      bool fused_epilogue, int max_candidates,
                                                      int64_t max_workspace_bytes,
                                                      const std::function<void*(int64_t)>& workspace) {
  std::unique_ptr<CudnnGraphConv> conv(new CudnnGraphConv());
  conv->d_ = std::make_unique<Descriptors>();
  conv->shape_ = shape_of(p);
  conv->has_bias_ = operands.bias != nullptr;
  conv->has_residual_ = operands.residual != nullptr;
  const bool relu = p.activation == ConvActivation::Relu;
  conv->fused_epilogue_ = fused_epilogue && (conv->has_bias_ || conv->has_residual_ || relu);
  std::vector<Desc>& keep = conv->d_->keep;

  // Channels-last layouts: 5-D [N, C, T, H, W] with NDHWC strides for kernel_t = 3, else 4-D with the
  // frames as the batch (2-D convs).
  const bool video = p.kernel_t != 1;
  const int64_t k = p.kernel_hw, Ci = p.in_channels, Co = p.out_channels;
  auto layout = [&](int64_t frames, int64_t channels, int64_t h, int64_t w, std::vector<int64_t>& dims,
                    std::vector<int64_t>& strides) {
    if (video) {
      dims = {1, channels, frames, h, w};
      strides = {channels * frames * h * w, 1, h * w * channels, w * channels, channels};
    } else {
      dims = {frames, channels, h, w};
      strides = {channels * h * w, 1, w * channels, channels};
    }
  };
  auto tensor = [&](int64_t uid, cudnnDataType_t type, const std::vector<int64_t>& dims,
                    const std::vector<int64_t>& strides, bool is_virtual) -> cudnnBackendDescriptor_t {
    Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const int64_t alignment = 16;
    const int64_t n = static_cast<int64_t>(dims.size());
    if (!t.d || !good(cudnnBackendSetAttribute(t.d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type)) ||
        !good(cudnnBackendSetAttribute(t.d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, n, dims.data())) ||
        !good(cudnnBackendSetAttribute(t.d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, n, strides.data())) ||
        !good(cudnnBackendSetAttribute(t.d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)) ||
        !good(cudnnBackendSetAttribute(t.d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment)) ||
        !good(cudnnBackendSetAttribute(t.d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual)) ||
        !good(cudnnBackendFinalize(t.d)))
      return nullptr;
    keep.push_back(std::move(t));
    return keep.back().d;
  };

  std::vector<int64_t> xd, xs, yd, ys, wd, ws, bd, bs;
  layout(p.frames_in, Ci, p.height, p.width, xd, xs);
  layout(p.frames_out(), Co, p.height_out(), p.width_out(), yd, ys);
  if (video) {
    wd = {Co, Ci, p.kernel_t, k, k};
    ws = {p.kernel_t * k * k * Ci, 1, k * k * Ci, k * Ci, Ci};
    bd = {1, Co, 1, 1, 1};
    bs = {Co, 1, Co, Co, Co};
  } else {
    wd = {Co, Ci, k, k};
    ws = {k * k * Ci, 1, k * Ci, Ci};
    bd = {1, Co, 1, 1};
    bs = {Co, 1, Co, Co};
  }
  const cudnnDataType_t bf16 = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  cudnnBackendDescriptor_t x = tensor(kUidX, bf16, xd, xs, false);
  cudnnBackendDescriptor_t w = tensor(kUidW, bf16, wd, ws, false);
  cudnnBackendDescriptor_t y = tensor(kUidY, bf16, yd, ys, false);
  if (!x || !w || !y) return nullptr;

  // The epilogue as pointwise steps after the conv: + bias, + residual, ReLU (fp32 in between).
  struct Step {
    cudnnPointwiseMode_t mode;
    cudnnBackendDescriptor_t operand;  // second input, or nullptr
  };
  std::vector<Step> steps;
  if (conv->fused_epilogue_) {
    if (conv->has_bias_) {
      cudnnBackendDescriptor_t b = tensor(kUidBias, bf16, bd, bs, false);
      if (!b) return nullptr;
      steps.push_back({CUDNN_POINTWISE_ADD, b});
    }
    if (conv->has_residual_) {
      cudnnBackendDescriptor_t r = tensor(kUidResidual, bf16, yd, ys, false);
      if (!r) return nullptr;
      steps.push_back({CUDNN_POINTWISE_ADD, r});
    }
    if (relu) steps.push_back({CUDNN_POINTWISE_RELU_FWD, nullptr});
  }
  std::vector<cudnnBackendDescriptor_t> outputs;  // output of the conv, then of each step
  for (size_t i = 0; i < steps.size(); ++i) {
    cudnnBackendDescriptor_t v = tensor(kUidVirtual + static_cast<int64_t>(i), f32, yd, ys, true);
    if (!v) return nullptr;
    outputs.push_back(v);
  }
  outputs.push_back(y);

  std::vector<cudnnBackendDescriptor_t> ops;
  {
    Desc cd(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    const int64_t dims = video ? 3 : 2;
    const std::vector<int64_t> pad = video ? std::vector<int64_t>{0, p.padding(), p.padding()}
                                           : std::vector<int64_t>{p.padding(), p.padding()};
    const std::vector<int64_t> ones(static_cast<size_t>(dims), 1);
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    if (!cd.d || !good(cudnnBackendSetAttribute(cd.d, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims)) ||
        !good(cudnnBackendSetAttribute(cd.d, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32)) ||
        !good(cudnnBackendSetAttribute(cd.d, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode)) ||
        !good(cudnnBackendSetAttribute(cd.d, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, dims, pad.data())) ||
        !good(cudnnBackendSetAttribute(cd.d, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, dims, pad.data())) ||
        !good(cudnnBackendSetAttribute(cd.d, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, dims, ones.data())) ||
        !good(cudnnBackendSetAttribute(cd.d, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, dims, ones.data())) ||
        !good(cudnnBackendFinalize(cd.d)))
      return nullptr;
    Desc op(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
    const float alpha = 1.0f, beta = 0.0f;
    cudnnBackendDescriptor_t conv_out = outputs.front();
    if (!op.d ||
        !good(cudnnBackendSetAttribute(op.d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)) ||
        !good(cudnnBackendSetAttribute(op.d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w)) ||
        !good(cudnnBackendSetAttribute(op.d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                       &conv_out)) ||
        !good(cudnnBackendSetAttribute(op.d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cd.d)) ||
        !good(cudnnBackendSetAttribute(op.d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha)) ||
        !good(cudnnBackendSetAttribute(op.d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta)) ||
        !good(cudnnBackendFinalize(op.d)))
      return nullptr;
    keep.push_back(std::move(cd));
    keep.push_back(std::move(op));
    ops.push_back(keep.back().d);
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    Desc pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    if (!pw.d ||
        !good(cudnnBackendSetAttribute(pw.d, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &steps[i].mode)) ||
        !good(cudnnBackendSetAttribute(pw.d, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32)) ||
        !good(cudnnBackendFinalize(pw.d)))
      return nullptr;
    Desc op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    cudnnBackendDescriptor_t in = outputs[i], out = outputs[i + 1];
    if (!op.d ||
        !good(cudnnBackendSetAttribute(op.d, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                       1, &pw.d)) ||
        !good(cudnnBackendSetAttribute(op.d, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &in)) ||
        (steps[i].operand &&
         !good(cudnnBackendSetAttribute(op.d, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                        &steps[i].operand))) ||
        !good(cudnnBackendSetAttribute(op.d, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &out)) ||
        !good(cudnnBackendFinalize(op.d)))
      return nullptr;
    keep.push_back(std::move(pw));
    keep.push_back(std::move(op));
    ops.push_back(keep.back().d);
  }

  Desc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  if (!graph.d ||
      !good(cudnnBackendSetAttribute(graph.d, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                     static_cast<int64_t>(ops.size()), ops.data())) ||
      !good(cudnnBackendSetAttribute(graph.d, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle)) ||
      !good(cudnnBackendFinalize(graph.d)))
    return nullptr;
  keep.push_back(std::move(graph));
  cudnnBackendDescriptor_t graph_d = keep.back().d;

  Desc heuristics(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  const cudnnBackendHeurMode_t heur_mode = CUDNN_HEUR_MODE_A;
  int64_t count = 0;
  if (!heuristics.d ||
      !good(cudnnBackendSetAttribute(heuristics.d, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                     1, &graph_d)) ||
      !good(cudnnBackendSetAttribute(heuristics.d, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &heur_mode)) ||
      !good(cudnnBackendFinalize(heuristics.d)) ||
      !good(cudnnBackendGetAttribute(heuristics.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                     &count, nullptr)) ||
      count <= 0)
    return nullptr;
  std::vector<Desc> configs;
  std::vector<cudnnBackendDescriptor_t> config_ptrs;
  for (int64_t i = 0; i < count; ++i) {
    configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    if (!configs.back().d) return nullptr;
    config_ptrs.push_back(configs.back().d);
  }
  int64_t returned = 0;
  if (!good(cudnnBackendGetAttribute(heuristics.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                                     &returned, config_ptrs.data())))
    return nullptr;

  // Time each plan that finalizes: one warm-up, then kTimedRuns runs between two events.
  constexpr int kTimedRuns = 3;
  cudaEvent_t start = nullptr, stop = nullptr;
  FASTAR_CHECK(cudaEventCreate(&start) == cudaSuccess && cudaEventCreate(&stop) == cudaSuccess,
               "cudaEventCreate failed while tuning the convolution " << conv->shape_);
  struct Events {
    cudaEvent_t a, b;
    ~Events() {
      cudaEventDestroy(a);
      cudaEventDestroy(b);
    }
  } events{start, stop};
  std::vector<float> times;
  size_t best = SIZE_MAX;
  int tried = 0;
  for (int64_t i = 0; i < returned && tried < max_candidates; ++i) {
    Desc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    if (!plan.d ||
        !good(cudnnBackendSetAttribute(plan.d, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle)) ||
        !good(cudnnBackendSetAttribute(plan.d, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                       &config_ptrs[static_cast<size_t>(i)])) ||
        !good(cudnnBackendFinalize(plan.d)))
      continue;
    int64_t ws_bytes = 0, n = 0;
    if (!good(cudnnBackendGetAttribute(plan.d, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                       &ws_bytes)) ||
        ws_bytes > max_workspace_bytes)
      continue;
    ++tried;
    CudnnGraphConv candidate;
    candidate.d_ = std::make_unique<Descriptors>();
    candidate.d_->plan = std::move(plan);
    candidate.fused_epilogue_ = conv->fused_epilogue_;
    candidate.has_bias_ = conv->has_bias_;
    candidate.has_residual_ = conv->has_residual_;
    candidate.shape_ = conv->shape_;
    void* ws_ptr = workspace(ws_bytes);
    // A plan may still fail at its first execution (e.g. an unsupported runtime-compiled kernel).
    bool ran = true;
    try {
      candidate.run(handle, operands, ws_ptr);
    } catch (const Error&) {
      ran = false;
    }
    if (!ran) continue;
    FASTAR_CHECK(cudaEventRecord(start, stream) == cudaSuccess, "cudaEventRecord failed");
    for (int r = 0; r < kTimedRuns; ++r) candidate.run(handle, operands, ws_ptr);
    FASTAR_CHECK(cudaEventRecord(stop, stream) == cudaSuccess && cudaEventSynchronize(stop) == cudaSuccess,
                 "CUDA error while timing the convolution " << conv->shape_ << ": "
                                                            << cudaGetErrorString(cudaGetLastError()));
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    ms /= kTimedRuns;
    times.push_back(ms);
    if (best == SIZE_MAX || ms < conv->time_ms_) {
      best = times.size() - 1;
      conv->time_ms_ = ms;
      conv->workspace_bytes_ = ws_bytes;
      conv->d_->plan = std::move(candidate.d_->plan);
      // Which engine, for the summary (best effort).
      Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
      int64_t engine_index = -1, got = 0;
      cudnnBackendDescriptor_t engine_d = engine.d;
      if (engine.d && good(cudnnBackendGetAttribute(config_ptrs[static_cast<size_t>(i)], CUDNN_ATTR_ENGINECFG_ENGINE,
                                                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &engine_d)))
        cudnnBackendGetAttribute(engine.d, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got, &engine_index);
      std::ostringstream s;
      s << "graph engine " << engine_index << " (heuristic rank " << i << ")";
      conv->summary_ = s.str();
    }
  }
  if (best == SIZE_MAX) return nullptr;
  // Keep the engine configurations alive with the plan (the plan was finalized from one of them).
  for (Desc& c : configs) keep.push_back(std::move(c));
  std::ostringstream s;
  s << conv->summary_ << ", " << (conv->fused_epilogue_ ? "fused epilogue" : "conv only") << "; " << times.size()
    << " plans timed (ms):";
  for (float t : times) {
    char text[16];
    std::snprintf(text, sizeof text, " %.3f", t);
    s << text;
  }
  conv->summary_ = s.str();
  return conv;
}

void CudnnGraphConv::run(cudnnHandle_t handle, const ConvOperands& operands, void* workspace) const {
  int64_t uids[5];
  void* ptrs[5];
  int64_t n = 0;
  auto add = [&](int64_t uid, const void* ptr) {
    uids[n] = uid;
    ptrs[n] = const_cast<void*>(ptr);
    ++n;
  };
  add(kUidX, operands.in);
  add(kUidW, operands.weight);
  add(kUidY, operands.out);
  if (fused_epilogue_ && has_bias_) add(kUidBias, operands.bias);
  if (fused_epilogue_ && has_residual_) add(kUidResidual, operands.residual);
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  cudnnStatus_t status = pack.d ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;
  if (good(status)) status = cudnnBackendSetAttribute(pack.d, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
  if (good(status))
    status = cudnnBackendSetAttribute(pack.d, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
  if (good(status))
    status = cudnnBackendSetAttribute(pack.d, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  if (good(status)) status = cudnnBackendFinalize(pack.d);
  if (good(status)) status = cudnnBackendExecute(handle, d_->plan.d, pack.d);
  FASTAR_CHECK(good(status), "cuDNN graph execution failed for the convolution " << shape_ << ": "
                                                                                 << cudnnGetErrorString(status));
}

}  // namespace fastar::cuda

#endif  // FASTAR_HAVE_CUDNN
