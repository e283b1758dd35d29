// umT5 on the GPU for a LoadedModel's GPU sessions (pipeline-spec.md §4): the model's encoder
// uploaded once, on first use, and shared by its sessions; prompts are tokenized on the host and
// only the real tokens run (§4.4). The context comes back as the CPU encoder's does (host fp32
// [text_len, d_model], rows past the real tokens zero), which is what WanModel::prepare_prompt takes.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/umt5_encoder.h"

namespace fastar {

class GpuTextEncoder {
 public:
  virtual ~GpuTextEncoder() = default;
  // ids[text_len] whose first `length` are real -> [text_len, d_model] F32 on the host. Thread-safe.
  virtual Tensor encode(const std::vector<int32_t>& ids, int64_t length) = 0;
};

// Uploads `encoder`'s weights (umT5-XXL: 11.4 GB in bf16); a fastar::Error names the size when the GPU
// lacks the memory. Defined in cuda/gpu_text_encoder_cuda.cpp; a build without CUDA throws.
std::unique_ptr<GpuTextEncoder> make_gpu_umt5(const Umt5Encoder& encoder);

}  // namespace fastar
