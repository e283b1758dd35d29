// The umT5 encoder on the GPU (pipeline-spec.md §4.2), the twin of the CPU reference Umt5Encoder
// (model/umt5_encoder.h): same forward, same "real tokens only" contract (§4.4), GPU precision:
//
//   x = E[ids]                                            fp32 residual stream [n, d_model]
//   per layer (its own relative-position table, umT5):
//     h = bf16(RMS(x)·w1);  qkv = h·[Wq; Wk; Wv]ᵀ          one cuBLASLt GEMM, bf16 out [n, 3·inner]
//     s = q·kᵀ + B[bucket(j − i), h] (no 1/√d);  p = bf16(softmax_fp32(s));  a = p·v   (umt5_ops.h)
//     x += a·Woᵀ
//     h = bf16(RMS(x)·w2);  gu = h·[Wgate; Wup]ᵀ           one GEMM, bf16 out [n, 2·d_ff]
//     x += bf16(GELU_tanh(gate) ⊙ up)·Wdownᵀ
//   out = RMS(x)·w_final in fp32
//
// Weights: the bf16 matrices and the embedding table are uploaded once, into one device allocation
// (umT5-XXL: 11.36 GB; q|k|v and gate|up concatenated so each pair / triple is one GEMM); the host model's
// bf16 tensors are copied as they are (F32 / F16 checkpoints are rounded to bf16 on the way, one tensor
// at a time). Norm weights and the relative-bias tables stay fp32. Working buffers are sized once for
// `max_tokens` real tokens (no allocation per call except the returned context of encode()).
// A CudaUmt5Encoder is used from one host thread, on its one stream.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/model/umt5_config.h"
#include "fastar/model/umt5_encoder.h"
#include "fastar/model/umt5_weights.h"

struct cublasContext;  // cublasHandle_t

namespace fastar::cuda {

class Gemm;

class CudaUmt5Encoder {
 public:
  // Uploads `host`'s weights. max_tokens: the most real tokens one encode() takes (Wan: 512).
  CudaUmt5Encoder(const Umt5Encoder& host, cudaStream_t stream, int64_t max_tokens = 512);
  CudaUmt5Encoder(const Umt5Config& config, const Umt5Weights& weights, cudaStream_t stream, int64_t max_tokens = 512,
                  std::string source = "umT5 weights");
  // Benchmarks at full size without a checkpoint: deterministic random bf16 weights generated on the
  // device (no host copy), scaled like T5's initialisation so activations stay finite.
  static std::unique_ptr<CudaUmt5Encoder> with_random_weights(const Umt5Config& config, uint64_t seed,
                                                             cudaStream_t stream, int64_t max_tokens = 512);
  ~CudaUmt5Encoder();
  CudaUmt5Encoder(const CudaUmt5Encoder&) = delete;
  CudaUmt5Encoder& operator=(const CudaUmt5Encoder&) = delete;

  // The DiT context, as Umt5Encoder::encode: ids[text_len] whose first `length` are real; runs those
  // tokens and returns a device BF16 tensor [text_len, d_model] with rows >= length zero. Asynchronous:
  // the tensor is ready once `stream` reaches the end of this call.
  Tensor encode(const std::vector<int32_t>& ids, int64_t length);
  // The same into a caller's device buffer context bf16 [ids.size(), d_model] (no allocation).
  void encode_into(__nv_bfloat16* context, const std::vector<int32_t>& ids, int64_t length);
  // The same as a host F32 tensor [text_len, d_model] (synchronises the stream): the fp32 output of the
  // final norm, not rounded to bf16 — the form WanModel::prepare_prompt takes and Umt5Encoder::encode gives.
  Tensor encode_to_host(const std::vector<int32_t>& ids, int64_t length);

  const Umt5Config& config() const { return config_; }
  int64_t max_tokens() const { return max_tokens_; }
  cudaStream_t stream() const { return stream_; }
  // Bytes of device memory held: weights (bf16 matrices + fp32 norms and tables) and working buffers.
  int64_t weight_bytes() const { return weight_bytes_; }
  int64_t buffer_bytes() const { return buffer_bytes_; }

 private:
  struct Layer {
    __nv_bfloat16* qkv = nullptr;      // [3·inner, d_model]: Wq rows, then Wk, then Wv
    __nv_bfloat16* o = nullptr;        // [d_model, inner]
    __nv_bfloat16* gate_up = nullptr;  // [2·d_ff, d_model]: Wgate rows, then Wup
    __nv_bfloat16* down = nullptr;     // [d_model, d_ff]
    float* attention_norm = nullptr;   // [d_model]
    float* ffn_norm = nullptr;         // [d_model]
    float* relative_bias = nullptr;    // [num_buckets, heads]
  };

  // Checks the config, carves the weight and buffer allocations (contents undefined), uploads the bucket
  // table.
  CudaUmt5Encoder(const Umt5Config& config, cudaStream_t stream, int64_t max_tokens, std::string source);
  void upload(const Umt5Weights& weights);
  void fill_random(uint64_t seed);
  // Runs the encoder on ids[0, length) (already checked); leaves the fp32 output in out_.
  void forward(const std::vector<int32_t>& ids, int64_t length);
  void check_call(const std::vector<int32_t>& ids, int64_t length) const;

  Umt5Config config_;
  cudaStream_t stream_;
  int64_t max_tokens_;
  std::string source_;
  std::unique_ptr<Gemm> gemm_;
  cublasContext* blas_ = nullptr;
  std::shared_ptr<Storage> matrices_, small_, buffers_;  // the three device allocations
  int64_t weight_bytes_ = 0, buffer_bytes_ = 0;

  __nv_bfloat16* embedding_ = nullptr;  // [vocab, d_model]
  std::vector<Layer> layers_;
  float* final_norm_ = nullptr;         // [d_model]
  int32_t* bucket_of_ = nullptr;        // [2·max_tokens − 1], bucket_of_[rel + max_tokens − 1]

  // Working buffers, [max_tokens, ·].
  int32_t* ids_ = nullptr;
  float* x_ = nullptr;                  // [n, d_model] residual stream
  float* out_ = nullptr;                // [n, d_model] final norm
  __nv_bfloat16* h_ = nullptr;          // [n, d_model] normed GEMM input
  __nv_bfloat16* qkv_ = nullptr;        // [n, 3·inner]
  __nv_bfloat16* attn_ = nullptr;       // [n, inner]
  __nv_bfloat16* y_ = nullptr;          // [n, d_model] o / down projection
  __nv_bfloat16* gate_up_ = nullptr;    // [n, 2·d_ff]
  __nv_bfloat16* ffn_ = nullptr;        // [n, d_ff]
  float* scores_ = nullptr;             // [heads, n, n]
  __nv_bfloat16* probs_ = nullptr;      // [heads, n, n]

  // Pinned staging of the ids, reused once the previous call's upload has completed.
  int32_t* ids_staging_ = nullptr;
  cudaEvent_t ids_uploaded_ = nullptr;
};

}  // namespace fastar::cuda
