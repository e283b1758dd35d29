// Channels-last bf16 convolutions for the video decoders (Wan VAE, TAEHV) through cuDNN
// (pipeline-spec.md §2.8: every causal 3-D conv of the Wan VAE is a 'valid' conv in time over the
// frames [cached context, chunk]; every TAEHV conv is a 2-D conv per frame).
//
//   out[Tout, H, W, Cout] = act( conv(in[Tin, H, W, Cin], weight[Cout, kt, kh, kw, Cin]) + bias[Cout]
//                                + residual[Tout, H, W, Cout] )
//
//   Tout = Tin − kernel_t + 1 (valid in time: the caller prepends the causal context, 2 frames for
//   kernel_t = 3); spatial padding is 'same' (kernel_hw / 2 zeros), stride 1, no dilation.
//   (Also kernel_hw = 2 with padding 1: the sub-pixel form of nearest-×2 + 3×3 conv; conv3d_params.h.)
//   bias and residual are optional (nullptr). bf16 in, fp32 accumulation, bf16 out.
//   kernel_t = 1 is a 2-D conv applied to each of the Tin frames (the frames are cuDNN's batch).
//
// The CPU reference cpu::conv3d_channels_last (kernels/cpu/conv3d_channels_last.h) has the same
// parameters and layout in fp32 and is what the CUDA path is checked against.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "fastar/kernels/conv3d_params.h"

namespace fastar::cuda {

// The parameters live in a CUDA-free header shared with the CPU reference (kernels/conv3d_params.h;
// it also allows kernel_hw = 2 with a chosen padding, the sub-pixel form of upsample + conv).
using fastar::ConvActivation;
using fastar::Conv3dParams;

// Owns the cuDNN handle, the descriptors and algorithm choice per shape (found once, cached) and a
// workspace that grows on demand. Not thread-safe: one per stream.
// How a call runs: once per shape and epilogue, cuDNN's legacy algorithms (cudnnFindConvolutionForward-
// Algorithm: NHWC / NDHWC bf16 descriptors, fp32 compute, tensor-op math; bias / residual / ReLU inside
// cudnnConvolutionBiasActivationForward when the algorithm allows it) and the graph API's engine
// configurations (cudnn_graph_conv.h, with and without the epilogue in the graph) are timed, and the
// fastest runs from then on; an unfused epilogue is a separate kernel (conv_epilogue.h). A pointwise conv (1×1×1) without activation, channels multiples of 8 and
// 16-byte aligned pointers is one cuBLASLt GEMM with its bias / residual epilogue instead (cuDNN's
// kernels for those shapes are far slower).
class ConvRunner {
 public:
  explicit ConvRunner(cudaStream_t stream);
  ~ConvRunner();
  ConvRunner(const ConvRunner&) = delete;
  ConvRunner& operator=(const ConvRunner&) = delete;

  // Throws fastar::Error on a bad shape (channels not > 0, Tout < 1, kernel not 1/3) or a cuDNN
  // failure, naming the shape.
  void forward(const Conv3dParams& p, const __nv_bfloat16* in, const __nv_bfloat16* weight,
               const __nv_bfloat16* bias, const __nv_bfloat16* residual, __nv_bfloat16* out);

  cudaStream_t stream() const { return stream_; }
  int64_t workspace_bytes() const { return workspace_bytes_; }

  // Whether bias / residual / ReLU may run inside cuDNN (cudnnConvolutionBiasActivationForward) when
  // the chosen algorithm allows it (default true); false always runs the conv, then fastar's epilogue
  // kernel (conv_epilogue.h). For checks comparing the two paths.
  void set_fused_epilogue(bool allowed);
  // Whether cuDNN's graph API may run a shape (default true): its engine configurations are timed
  // next to the legacy algorithms and the fastest path wins (cudnn_graph_conv.h). false: legacy only.
  void set_graph_api(bool allowed);
  // One line per shape planned so far: the shape, cuDNN's algorithm, its measured time, the workspace
  // and whether the epilogue is fused (for benchmarks).
  std::string describe_plans() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  cudaStream_t stream_;
  int64_t workspace_bytes_ = 0;
};

// True when this build has cuDNN (FASTAR_HAVE_CUDNN); a ConvRunner of a build without it throws
// "built without cuDNN" from its constructor, naming how to get it.
bool have_cudnn();

}  // namespace fastar::cuda
