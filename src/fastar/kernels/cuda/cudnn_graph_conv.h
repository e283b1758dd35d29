// A channels-last bf16 convolution (kernels/conv3d_params.h) through cuDNN's graph (backend) API, with
// bias / residual / ReLU as pointwise nodes fused into the same graph where an engine takes them.
// Internal to ConvRunner (cudnn_conv.cpp), which falls back to the legacy API when no graph runs.
//
// Why besides the legacy API: cudnnFindConvolutionForwardAlgorithm only ranks the 8 legacy algorithms,
// each one fixed engine configuration; the graph API's heuristics list many configurations (tile shapes,
// split-K, ...) for the same engines. On an H200 the best of those ran the Wan VAE's 96-channel 3³ conv
// at 480×832 about 1.5× faster than the best legacy algorithm (PyTorch's cudnn.benchmark, which searches
// the same list, measured 1.84 ms against 2.71 ms; wan_vae_check --bench prints both paths).
//
// Only included where FASTAR_HAVE_CUDNN is set.
#pragma once

#include <cudnn.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "fastar/kernels/conv3d_params.h"

namespace fastar::cuda {

// The device buffers of one call (bias / residual may be nullptr).
struct ConvOperands {
  const void* in = nullptr;
  const void* weight = nullptr;
  const void* bias = nullptr;
  const void* residual = nullptr;
  void* out = nullptr;
};

class CudnnGraphConv {
 public:
  // Builds the graph for p with the epilogue of `operands` (bias add, residual add, ReLU) when
  // `fused_epilogue`, else the conv alone (bf16 out; the caller runs the epilogue), asks cuDNN's
  // heuristics (mode A) for engine configurations, finalizes up to `max_candidates` execution plans and
  // times each on `operands` (writing `out`); keeps the fastest. `workspace(bytes)` returns a device
  // buffer of at least that many bytes (it may grow the caller's workspace; plans needing more than
  // `max_workspace_bytes` are skipped). Returns nullptr when no plan runs the graph (never throws for
  // that; throws fastar::Error on CUDA errors).
  static std::unique_ptr<CudnnGraphConv> build(cudnnHandle_t handle, cudaStream_t stream, const Conv3dParams& p,
                                               const ConvOperands& operands, bool fused_epilogue,
                                               int max_candidates, int64_t max_workspace_bytes,
                                               const std::function<void*(int64_t)>& workspace);
  ~CudnnGraphConv();
  CudnnGraphConv(const CudnnGraphConv&) = delete;
  CudnnGraphConv& operator=(const CudnnGraphConv&) = delete;

  // Runs the kept plan on `operands` (same shape and epilogue as built). Throws fastar::Error naming
  // the shape on a cuDNN error.
  void run(cudnnHandle_t handle, const ConvOperands& operands, void* workspace) const;

  bool fused_epilogue() const { return fused_epilogue_; }
  int64_t workspace_bytes() const { return workspace_bytes_; }
  float time_ms() const { return time_ms_; }
  // "engine 12, 1.84 ms (8 plans timed: 1.84 2.10 ...)"
  const std::string& summary() const { return summary_; }

 private:
  CudnnGraphConv() = default;
  struct Descriptors;
  std::unique_ptr<Descriptors> d_;
  bool fused_epilogue_ = false;
  bool has_bias_ = false, has_residual_ = false;
  int64_t workspace_bytes_ = 0;
  float time_ms_ = 0;
  std::string summary_, shape_;
};

}  // namespace fastar::cuda
