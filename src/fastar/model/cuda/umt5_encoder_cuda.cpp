#include "fastar/model/cuda/umt5_encoder_cuda.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/gemm.h"
#include "fastar/kernels/cuda/ops.h"
#include "fastar/kernels/cuda/umt5_ops.h"
#include "fastar/kernels/cuda/cuda_check.h"

namespace fastar::cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr int64_t kAlignBytes = 256;
constexpr const char* kMemoryHint =
    "free GPU memory (fewer or smaller models on this GPU), lower the encoder's max_tokens, or encode the prompt on the "
    "CPU (Umt5Encoder) / pass a precomputed --prompt-embeds";

double gib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

// Byte offsets of consecutive 256-byte-aligned pieces of one allocation.
struct Carve {
  int64_t bytes = 0;
  int64_t take(int64_t nbytes) {
    const int64_t at = (bytes + kAlignBytes - 1) / kAlignBytes * kAlignBytes;
    bytes = at + std::max<int64_t>(nbytes, 0);
    return at;
  }
};

template <class T>
T* at(const std::shared_ptr<Storage>& storage, int64_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(storage->data()) + offset);
}

std::string shape_of(const Tensor& t) { return t.defined() ? shape_to_string(t.shape()) : std::string("(missing)"); }

}  // namespace

CudaUmt5Encoder::CudaUmt5Encoder(const Umt5Config& config, cudaStream_t stream, int64_t max_tokens, std::string source)
    : config_(config), stream_(stream), max_tokens_(max_tokens), source_(std::move(source)) {
  const Umt5Config& c = config_;
  FASTAR_CHECK(c.vocab_size >= 1 && c.d_model >= 1 && c.d_kv >= 1 && c.num_heads >= 1 && c.d_ff >= 1 &&
                   c.num_layers >= 1 && c.num_buckets >= 2 && c.max_distance >= 1,
               source_ << ": not a usable umT5 config (vocab " << c.vocab_size << ", d_model " << c.d_model << ", d_kv "
                       << c.d_kv << ", heads " << c.num_heads << ", d_ff " << c.d_ff << ", layers " << c.num_layers
                       << ", buckets " << c.num_buckets << ")");
  FASTAR_CHECK(max_tokens >= 1 && max_tokens <= kUmt5MaxAttentionTokens,
               "CudaUmt5Encoder: max_tokens " << max_tokens << " is outside [1, " << kUmt5MaxAttentionTokens
                                              << "] (Wan uses 512)");
  const int64_t d = c.d_model, inner = c.inner_dim(), ff = c.d_ff, m = max_tokens, heads = c.num_heads;

  // Weights: bf16 matrices (one allocation) and fp32 norms / bias tables + the bucket table (another).
  Carve mat, small, buf;
  const int64_t embedding_at = mat.take(c.vocab_size * d * 2);
  struct LayerOffsets {
    int64_t qkv, o, gate_up, down, attention_norm, ffn_norm, relative_bias;
  };
  std::vector<LayerOffsets> offsets;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerOffsets o{};
    o.qkv = mat.take(3 * inner * d * 2);
    o.o = mat.take(d * inner * 2);
    o.gate_up = mat.take(2 * ff * d * 2);
    o.down = mat.take(d * ff * 2);
    o.attention_norm = small.take(d * 4);
    o.ffn_norm = small.take(d * 4);
    o.relative_bias = small.take(c.num_buckets * heads * 4);
    offsets.push_back(o);
  }
  const int64_t final_norm_at = small.take(d * 4);
  const int64_t buckets_at = small.take((2 * m - 1) * 4);
  // Working buffers.
  const int64_t ids_at = buf.take(m * 4), x_at = buf.take(m * d * 4), out_at = buf.take(m * d * 4),
                h_at = buf.take(m * d * 2), qkv_at = buf.take(m * 3 * inner * 2), attn_at = buf.take(m * inner * 2),
                y_at = buf.take(m * d * 2), gate_up_at = buf.take(m * 2 * ff * 2), ffn_at = buf.take(m * ff * 2),
                scores_at = buf.take(heads * m * m * 4), probs_at = buf.take(heads * m * m * 2);
  weight_bytes_ = mat.bytes + small.bytes;
  buffer_bytes_ = buf.bytes;

  // One actionable message naming the sizes before any allocation.
  size_t free_bytes = 0, total_bytes = 0;
  FASTAR_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const int64_t needed = weight_bytes_ + buffer_bytes_ + static_cast<int64_t>(Gemm::kWorkspaceBytes);
  if (needed > static_cast<int64_t>(free_bytes)) {
    std::ostringstream msg;
    msg.precision(3);
    msg << "out of GPU memory for the umT5 encoder (" << source_ << "): it needs " << gib(needed) << " GiB — bf16 weights "
        << gib(mat.bytes) << " GiB (" << c.num_layers << " layers of d_model " << d << ", d_ff " << ff
        << ", and the " << c.vocab_size << " x " << d << " embedding), working buffers " << gib(buffer_bytes_)
        << " GiB for " << m << " tokens — but only " << gib(static_cast<int64_t>(free_bytes)) << " GiB of "
        << gib(static_cast<int64_t>(total_bytes)) << " GiB is free; " << kMemoryHint;
    FASTAR_FAIL(msg.str());
  }
  matrices_ = allocate_device(mat.bytes, kMemoryHint);
  small_ = allocate_device(small.bytes, kMemoryHint);
  buffers_ = allocate_device(buf.bytes, kMemoryHint);
  gemm_ = std::make_unique<Gemm>();
  cublasHandle_t handle = nullptr;
  const cublasStatus_t status = cublasCreate(&handle);
  FASTAR_CHECK(status == CUBLAS_STATUS_SUCCESS, "cublasCreate for the umT5 attention: " << cublasGetStatusName(status)
                                                    << " (" << cublasGetStatusString(status) << ")");
  blas_ = handle;
  FASTAR_CUDA_CHECK(cudaMallocHost(&ids_staging_, static_cast<size_t>(m) * 4));
  FASTAR_CUDA_CHECK(cudaEventCreateWithFlags(&ids_uploaded_, cudaEventDisableTiming));

  embedding_ = at<bf16>(matrices_, embedding_at);
  for (const LayerOffsets& o : offsets) {
    Layer layer;
    layer.qkv = at<bf16>(matrices_, o.qkv);
    layer.o = at<bf16>(matrices_, o.o);
    layer.gate_up = at<bf16>(matrices_, o.gate_up);
    layer.down = at<bf16>(matrices_, o.down);
    layer.attention_norm = at<float>(small_, o.attention_norm);
    layer.ffn_norm = at<float>(small_, o.ffn_norm);
    layer.relative_bias = at<float>(small_, o.relative_bias);
    layers_.push_back(layer);
  }
  final_norm_ = at<float>(small_, final_norm_at);
  bucket_of_ = at<int32_t>(small_, buckets_at);
  ids_ = at<int32_t>(buffers_, ids_at);
  x_ = at<float>(buffers_, x_at);
  out_ = at<float>(buffers_, out_at);
  h_ = at<bf16>(buffers_, h_at);
  qkv_ = at<bf16>(buffers_, qkv_at);
  attn_ = at<bf16>(buffers_, attn_at);
  y_ = at<bf16>(buffers_, y_at);
  gate_up_ = at<bf16>(buffers_, gate_up_at);
  ffn_ = at<bf16>(buffers_, ffn_at);
  scores_ = at<float>(buffers_, scores_at);
  probs_ = at<bf16>(buffers_, probs_at);

  // The bucket of every relative distance a call can meet, from the CPU reference's own function
  // (pipeline-spec.md §4.3: evaluated in fp32 exactly as the reference does).
  std::vector<int32_t> buckets(static_cast<size_t>(2 * m - 1));
  for (int64_t rel = -(m - 1); rel <= m - 1; ++rel) {
    const int64_t b = umt5_relative_bucket(rel, c.num_buckets, c.max_distance);
    FASTAR_ASSERT(b >= 0 && b < c.num_buckets, "umT5 bucket " << b << " of rel " << rel);
    buckets[static_cast<size_t>(rel + m - 1)] = static_cast<int32_t>(b);
  }
  FASTAR_CUDA_CHECK(cudaMemcpy(bucket_of_, buckets.data(), buckets.size() * 4, cudaMemcpyHostToDevice));
}

CudaUmt5Encoder::CudaUmt5Encoder(const Umt5Config& config, const Umt5Weights& weights, cudaStream_t stream,
                                 int64_t max_tokens, std::string source)
    : CudaUmt5Encoder(config, stream, max_tokens, std::move(source)) {
  upload(weights);
}

CudaUmt5Encoder::CudaUmt5Encoder(const Umt5Encoder& host, cudaStream_t stream, int64_t max_tokens)
    : CudaUmt5Encoder(host.config(), host.weights(), stream, max_tokens, host.source()) {}

std::unique_ptr<CudaUmt5Encoder> CudaUmt5Encoder::with_random_weights(const Umt5Config& config, uint64_t seed,
                                                                      cudaStream_t stream, int64_t max_tokens) {
  std::unique_ptr<CudaUmt5Encoder> encoder(new CudaUmt5Encoder(config, stream, max_tokens, "random umT5 weights"));
  encoder->fill_random(seed);
  return encoder;
}

CudaUmt5Encoder::~CudaUmt5Encoder() {
  if (ids_uploaded_) {
    cudaEventSynchronize(ids_uploaded_);  // the last upload has left the staging buffer freed below
    cudaEventDestroy(ids_uploaded_);
  }
  if (ids_staging_) cudaFreeHost(ids_staging_);
  if (blas_) cublasDestroy(blas_);
}

void CudaUmt5Encoder::upload(const Umt5Weights& w) {
  const Umt5Config& c = config_;
  const int64_t d = c.d_model, inner = c.inner_dim(), ff = c.d_ff;
  FASTAR_CHECK(static_cast<int64_t>(w.layers.size()) == c.num_layers,
               source_ << ": " << w.layers.size() << " layers of weights for a config of " << c.num_layers);
  // Host bf16 tensors are copied as they are; other float dtypes are rounded to bf16 first.
  auto matrix = [&](bf16* dst, const Tensor& t, int64_t rows, int64_t cols, const std::string& name) {
    FASTAR_CHECK(t.defined() && t.device() == Device::CPU && t.dim() == 2 && t.size(0) == rows && t.size(1) == cols,
                 source_ << ": " << name << " is " << shape_of(t) << "; the umT5 config needs a host [" << rows << ", "
                         << cols << "]");
    const size_t bytes = static_cast<size_t>(rows * cols) * 2;
    if (t.dtype() == DType::BF16 && t.is_contiguous()) {
      FASTAR_CUDA_CHECK(cudaMemcpy(dst, t.raw_data(), bytes, cudaMemcpyHostToDevice));
    } else {
      const Tensor b = t.to_dtype(DType::BF16);
      FASTAR_CUDA_CHECK(cudaMemcpy(dst, b.raw_data(), bytes, cudaMemcpyHostToDevice));
    }
  };
  auto vector_f32 = [&](float* dst, const Tensor& t, int64_t count, const std::string& name) {
    FASTAR_CHECK(t.defined() && t.device() == Device::CPU && t.numel() == count,
                 source_ << ": " << name << " is " << shape_of(t) << "; the umT5 config needs " << count << " values");
    const Tensor f = t.to_f32();
    FASTAR_CUDA_CHECK(cudaMemcpy(dst, f.raw_data(), static_cast<size_t>(count) * 4, cudaMemcpyHostToDevice));
  };
  matrix(embedding_, w.token_embedding, c.vocab_size, d, "token embedding");
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const Umt5LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    const Layer& dl = layers_[static_cast<size_t>(l)];
    const std::string p = "layer " + std::to_string(l) + " ";
    matrix(dl.qkv, lw.q, inner, d, p + "q");
    matrix(dl.qkv + inner * d, lw.k, inner, d, p + "k");
    matrix(dl.qkv + 2 * inner * d, lw.v, inner, d, p + "v");
    matrix(dl.o, lw.o, d, inner, p + "o");
    matrix(dl.gate_up, lw.gate, ff, d, p + "gate (wi_0)");
    matrix(dl.gate_up + ff * d, lw.up, ff, d, p + "up (wi_1)");
    matrix(dl.down, lw.down, d, ff, p + "down (wo)");
    vector_f32(dl.attention_norm, lw.attention_norm, d, p + "attention norm");
    vector_f32(dl.ffn_norm, lw.ffn_norm, d, p + "FFN norm");
    FASTAR_CHECK(lw.relative_bias.dim() == 2 && lw.relative_bias.size(0) == c.num_buckets &&
                     lw.relative_bias.size(1) == c.num_heads,
                 source_ << ": " << p << "relative bias is " << shape_of(lw.relative_bias) << "; expected ["
                         << c.num_buckets << ", " << c.num_heads << "] (buckets x heads)");
    vector_f32(dl.relative_bias, lw.relative_bias, c.num_buckets * c.num_heads, p + "relative bias");
  }
  vector_f32(final_norm_, w.final_norm, d, "final norm");
}

void CudaUmt5Encoder::fill_random(uint64_t seed) {
  const Umt5Config& c = config_;
  const int64_t d = c.d_model, inner = c.inner_dim(), ff = c.d_ff;
  // Uniform with T5's initialisation standard deviations (amplitude √3·std): q (d_model·d_kv)^-½,
  // k / v / gate / up d_model^-½, o inner^-½, down d_ff^-½; embedding and bias tables 1; norms 1 ± 0.1.
  const float root3 = std::sqrt(3.0f);
  auto amp = [&](double var_inverse) { return root3 / static_cast<float>(std::sqrt(var_inverse)); };
  uint64_t next = seed * 1000003ull;
  umt5_fill_uniform_bf16(embedding_, c.vocab_size * d, next++, 0.0f, root3, stream_);
  for (const Layer& l : layers_) {
    umt5_fill_uniform_bf16(l.qkv, inner * d, next++, 0.0f, amp(double(d) * c.d_kv), stream_);
    umt5_fill_uniform_bf16(l.qkv + inner * d, 2 * inner * d, next++, 0.0f, amp(double(d)), stream_);
    umt5_fill_uniform_bf16(l.o, d * inner, next++, 0.0f, amp(double(inner)), stream_);
    umt5_fill_uniform_bf16(l.gate_up, 2 * ff * d, next++, 0.0f, amp(double(d)), stream_);
    umt5_fill_uniform_bf16(l.down, d * ff, next++, 0.0f, amp(double(ff)), stream_);
    umt5_fill_uniform_f32(l.attention_norm, d, next++, 1.0f, 0.1f, stream_);
    umt5_fill_uniform_f32(l.ffn_norm, d, next++, 1.0f, 0.1f, stream_);
    umt5_fill_uniform_f32(l.relative_bias, c.num_buckets * c.num_heads, next++, 0.0f, root3, stream_);
  }
  umt5_fill_uniform_f32(final_norm_, d, next++, 1.0f, 0.1f, stream_);
  FASTAR_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaUmt5Encoder::check_call(const std::vector<int32_t>& ids, int64_t length) const {
  const auto text_len = static_cast<int64_t>(ids.size());
  FASTAR_CHECK(length >= 1 && length <= text_len, "umT5 encode: " << length << " real tokens out of " << text_len
                                                                  << " ids; the tokenizer always gives at least </s>");
  FASTAR_CHECK(length <= max_tokens_, "umT5 encode on the GPU: " << length << " real tokens, but the encoder's buffers "
                                          "were sized for " << max_tokens_ << "; construct it with a larger max_tokens");
  for (int64_t i = 0; i < length; ++i) {
    const int32_t id = ids[static_cast<size_t>(i)];
    FASTAR_CHECK(id >= 0 && id < config_.vocab_size, "umT5: token id " << id << " is outside the embedding of "
                                                                       << config_.vocab_size << " rows (" << source_
                                                                       << "); the tokenizer does not belong to this encoder");
  }
}

void CudaUmt5Encoder::forward(const std::vector<int32_t>& ids, int64_t length) {
  const Umt5Config& c = config_;
  const int64_t n = length, d = c.d_model, inner = c.inner_dim(), ff = c.d_ff;
  cudaStream_t st = stream_;
  // The previous call's upload has left the pinned staging buffer before it is rewritten.
  FASTAR_CUDA_CHECK(cudaEventSynchronize(ids_uploaded_));
  std::memcpy(ids_staging_, ids.data(), static_cast<size_t>(n) * 4);
  FASTAR_CUDA_CHECK(cudaMemcpyAsync(ids_, ids_staging_, static_cast<size_t>(n) * 4, cudaMemcpyHostToDevice, st));
  FASTAR_CUDA_CHECK(cudaEventRecord(ids_uploaded_, st));

  umt5_embedding_rows(x_, embedding_, ids_, n, d, st);
  for (const Layer& l : layers_) {
    // Self-attention with the layer's own relative-position bias.
    umt5_rmsnorm_bf16(h_, x_, l.attention_norm, n, d, c.eps, st);
    linear_bf16(*gemm_, qkv_, h_, l.qkv, nullptr, n, d, 3 * inner, LinearEpilogue::None, st);
    Umt5AttentionParams a;
    a.out = attn_;
    a.qkv = qkv_;
    a.scores = scores_;
    a.probs = probs_;
    a.bias = l.relative_bias;
    a.bucket_of = bucket_of_;
    a.center = max_tokens_ - 1;
    a.n = n;
    a.heads = c.num_heads;
    a.d_kv = c.d_kv;
    umt5_relative_attention(blas_, a, st);
    linear_bf16(*gemm_, y_, attn_, l.o, nullptr, n, inner, d, LinearEpilogue::None, st);
    gated_residual_add(x_, y_, nullptr, 0, 1, n, d, st);
    // Gated-GELU FFN.
    umt5_rmsnorm_bf16(h_, x_, l.ffn_norm, n, d, c.eps, st);
    linear_bf16(*gemm_, gate_up_, h_, l.gate_up, nullptr, n, d, 2 * ff, LinearEpilogue::None, st);
    umt5_gelu_tanh_gate_mul(ffn_, gate_up_, n, ff, st);
    linear_bf16(*gemm_, y_, ffn_, l.down, nullptr, n, ff, d, LinearEpilogue::None, st);
    gated_residual_add(x_, y_, nullptr, 0, 1, n, d, st);
  }
  umt5_rmsnorm_f32(out_, x_, final_norm_, n, d, c.eps, st);
}

void CudaUmt5Encoder::encode_into(bf16* context, const std::vector<int32_t>& ids, int64_t length) {
  check_call(ids, length);
  FASTAR_CHECK(context != nullptr, "CudaUmt5Encoder::encode_into: null context buffer");
  const int64_t text_len = static_cast<int64_t>(ids.size()), d = config_.d_model;
  forward(ids, length);
  convert_f32_to_bf16(reinterpret_cast<uint16_t*>(context), out_, length * d, stream_);
  if (text_len > length)
    FASTAR_CUDA_CHECK(
        cudaMemsetAsync(context + length * d, 0, static_cast<size_t>((text_len - length) * d) * 2, stream_));
}

Tensor CudaUmt5Encoder::encode(const std::vector<int32_t>& ids, int64_t length) {
  check_call(ids, length);
  const int64_t text_len = static_cast<int64_t>(ids.size()), d = config_.d_model;
  Tensor context = Tensor::from_storage(allocate_device(text_len * d * 2, kMemoryHint), 0, {text_len, d}, DType::BF16);
  encode_into(context.data<bf16>(), ids, length);
  return context;
}

Tensor CudaUmt5Encoder::encode_to_host(const std::vector<int32_t>& ids, int64_t length) {
  check_call(ids, length);
  const int64_t text_len = static_cast<int64_t>(ids.size()), d = config_.d_model;
  Tensor context = Tensor::zeros({text_len, d});
  forward(ids, length);
  FASTAR_CUDA_CHECK(cudaMemcpyAsync(context.data<float>(), out_, static_cast<size_t>(length * d) * 4,
                                      cudaMemcpyDeviceToHost, stream_));
  FASTAR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return context;
}

}  // namespace fastar::cuda
