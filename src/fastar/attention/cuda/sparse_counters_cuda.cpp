#include "fastar/attention/cuda/sparse_counters_cuda.h"

#include <cuda_runtime.h>

#include "fastar/core/error.h"

namespace fastar::cuda {

SparseStats sparse_stats_from_device(const unsigned long long* counters, const std::vector<int64_t>& sparse_calls,
                                     const std::vector<int64_t>& dense_calls) {
  FASTAR_ASSERT(sparse_calls.size() == dense_calls.size(), "one sparse and one dense call count per layer");
  const auto layers = static_cast<int64_t>(sparse_calls.size());
  std::vector<unsigned long long> host(static_cast<size_t>(layers * 2));
  cudaError_t status = cudaDeviceSynchronize();
  if (status == cudaSuccess) status = cudaMemcpy(host.data(), counters, host.size() * 8, cudaMemcpyDeviceToHost);
  FASTAR_CHECK(status == cudaSuccess, "reading the GPU density counters failed: " << cudaGetErrorString(status));
  SparseStats out(layers);
  for (int64_t layer = 0; layer < layers; ++layer) {
    const size_t l = static_cast<size_t>(layer);
    for (int64_t i = 0; i < sparse_calls[l]; ++i)  // the products of all calls on the first, counts on each
      out.add(layer, i == 0 ? static_cast<double>(host[2 * l]) : 0.0, i == 0 ? static_cast<double>(host[2 * l + 1]) : 0.0);
    for (int64_t i = 0; i < dense_calls[l]; ++i) out.add_dense_call(layer);
  }
  return out;
}

}  // namespace fastar::cuda
