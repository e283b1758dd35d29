// One way to check a CUDA runtime call or a kernel launch in fastar's CUDA code (host side): a failure
// throws fastar::Error naming the call (or the kernel), the source file and line, and the runtime's
// message, so that an error from deep inside a rollout says where it came from. cuBLAS and cuDNN
// statuses have their own checks beside their calls (gemm.cu, cudnn_conv.cpp), which name the shape.
#pragma once

#include <cuda_runtime.h>

#include "fastar/core/error.h"

// FASTAR_CUDA_CHECK(cudaMemcpyAsync(...)): the call's cudaError_t must be cudaSuccess.
#define FASTAR_CUDA_CHECK(call)                                                                         \
  do {                                                                                                  \
    const cudaError_t fastar_cuda_status_ = (call);                                                     \
    FASTAR_CHECK(fastar_cuda_status_ == cudaSuccess, "CUDA error in " #call " (" << __FILE__ << ":"    \
                                                         << __LINE__ << "): "                             \
                                                         << cudaGetErrorString(fastar_cuda_status_));     \
  } while (0)

// FASTAR_CUDA_LAUNCH_CHECK("rms_norm_silu"), right after a kernel<<<...>>>: the launch succeeded
// (cudaGetLastError; errors while the kernel runs surface at the next synchronising call).
#define FASTAR_CUDA_LAUNCH_CHECK(name)                                                                 \
  do {                                                                                                 \
    const cudaError_t fastar_cuda_status_ = cudaGetLastError();                                        \
    FASTAR_CHECK(fastar_cuda_status_ == cudaSuccess, "CUDA error launching " << name << " ("          \
                                                         << __FILE__ << ":" << __LINE__ << "): "         \
                                                         << cudaGetErrorString(fastar_cuda_status_));    \
  } while (0)
