#include "fastar/kernels/cuda/device_memory.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/cuda_check.h"

namespace fastar::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

std::string device_description(int index) {
  cudaDeviceProp prop;
  FASTAR_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  char text[256];
  std::snprintf(text, sizeof text, "%s, sm_%d%d, %.1f GiB", prop.name, prop.major, prop.minor,
                static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

std::shared_ptr<Storage> allocate_device(int64_t nbytes, const std::string& hint) {
  void* data = nullptr;
  const cudaError_t status = cudaMalloc(&data, static_cast<size_t>(nbytes));
  if (status != cudaSuccess) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    FASTAR_FAIL("out of GPU memory: asked for " << nbytes / (1024.0 * 1024.0) << " MiB, " << free_bytes / (1024.0 * 1024.0)
                                                << " MiB free of " << total_bytes / (1024.0 * 1024.0) << " MiB ("
                                                << cudaGetErrorString(status) << "); " << hint);
  }
  return Storage::adopt(data, nbytes, Device::CUDA, [](void* p) { cudaFree(p); });
}

Tensor to_device(const Tensor& host) {
  FASTAR_ASSERT(host.device() == Device::CPU && host.is_contiguous(), "to_device needs a contiguous host tensor");
  Tensor out = Tensor::from_storage(allocate_device(host.nbytes(), "use a smaller model or frame size"), 0, host.shape(),
                                    host.dtype());
  FASTAR_CUDA_CHECK(cudaMemcpy(out.raw_data(), host.raw_data(), static_cast<size_t>(host.nbytes()), cudaMemcpyHostToDevice));
  return out;
}

Tensor to_host(const Tensor& device) {
  FASTAR_ASSERT(device.device() == Device::CUDA && device.is_contiguous(), "to_host needs a contiguous device tensor");
  Tensor out = Tensor::zeros(device.shape(), device.dtype());
  FASTAR_CUDA_CHECK(cudaMemcpy(out.raw_data(), device.raw_data(), static_cast<size_t>(device.nbytes()), cudaMemcpyDeviceToHost));
  return out;
}

namespace {
__global__ void f32_to_bf16_kernel(__nv_bfloat16* out, const float* in, int64_t count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __float2bfloat16_rn(in[i]);
}
}  // namespace

void convert_f32_to_bf16(uint16_t* out, const float* in, int64_t count, void* stream) {
  if (count == 0) return;
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>((count + kThreads - 1) / kThreads);
  f32_to_bf16_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(reinterpret_cast<__nv_bfloat16*>(out), in,
                                                                                count);
  FASTAR_CUDA_CHECK(cudaGetLastError());
}

}  // namespace fastar::cuda
