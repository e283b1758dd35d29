// GpuTextEncoder over CudaUmt5Encoder (gpu_text_encoder.h), on a stream of its own.
#include <cuda_runtime.h>

#include <mutex>

#include "fastar/core/error.h"
#include "fastar/model/cuda/umt5_encoder_cuda.h"
#include "fastar/session/gpu_text_encoder.h"

namespace fastar {

namespace {

class CudaUmt5TextEncoder final : public GpuTextEncoder {
 public:
  explicit CudaUmt5TextEncoder(const Umt5Encoder& encoder) : stream_(make_stream()), encoder_(encoder, stream_) {}
  ~CudaUmt5TextEncoder() override { cudaStreamDestroy(stream_); }
  Tensor encode(const std::vector<int32_t>& ids, int64_t length) override {
    std::lock_guard<std::mutex> lock(mutex_);  // one stream, one set of working buffers
    return encoder_.encode_to_host(ids, length);
  }

 private:
  static cudaStream_t make_stream() {
    cudaStream_t s = nullptr;
    FASTAR_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess, "could not create umT5's CUDA stream");
    return s;
  }
  cudaStream_t stream_;  // declared before the encoder, which uses it
  cuda::CudaUmt5Encoder encoder_;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<GpuTextEncoder> make_gpu_umt5(const Umt5Encoder& encoder) {
  return std::make_unique<CudaUmt5TextEncoder>(encoder);
}

}  // namespace fastar
