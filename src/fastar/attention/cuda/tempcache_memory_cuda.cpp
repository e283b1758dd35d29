#include "fastar/attention/cuda/tempcache_memory_cuda.h"

#include <cstdio>

#include <sstream>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/flash_attention.h"

namespace fastar::cuda {

CudaTempCacheMemory::CudaTempCacheMemory(int64_t layers, int64_t heads, int64_t head_dim, int64_t tokens_per_frame,
                                         int64_t chunk_frames, int64_t capacity_tokens, const TempCacheOptions& options)
    : heads_(heads), head_dim_(head_dim), tokens_per_frame_(tokens_per_frame), chunk_frames_(chunk_frames),
      options_(options), version_(next_memory_layout_version()) {
  FASTAR_CHECK(layers > 0, "tempcache: no layers");
  layers_.reserve(static_cast<size_t>(layers));
  for (int64_t l = 0; l < layers; ++l)
    layers_.emplace_back(heads, head_dim, tokens_per_frame, capacity_tokens, chunk_frames * tokens_per_frame, options,
                         l == 0 ? nullptr : layers_.front().scratch());
}

void CudaTempCacheMemory::begin(const CudaMemoryCall& call) {
  FASTAR_CHECK(call.tokens_per_frame == tokens_per_frame_ && call.num_frames <= chunk_frames_,
               "tempcache (GPU): sized for chunks of " << chunk_frames_ << " frames of " << tokens_per_frame_ << " tokens");
  call_ = call;
}

__nv_bfloat16* CudaTempCacheMemory::chunk_k(int64_t layer) {
  return static_cast<__nv_bfloat16*>(layers_[static_cast<size_t>(layer)].stage_k());
}
__nv_bfloat16* CudaTempCacheMemory::chunk_v(int64_t layer) {
  return static_cast<__nv_bfloat16*>(layers_[static_cast<size_t>(layer)].stage_v());
}

void CudaTempCacheMemory::attend(int64_t layer, const __nv_bfloat16* q, __nv_bfloat16* out, cudaStream_t stream,
                                 const CudaLayerInputs* /*inputs*/) {
  const CudaTempCacheLayer& L = layers_[static_cast<size_t>(layer)];
  const int64_t n = call_.num_frames * call_.tokens_per_frame;
  AttentionParams p = packed_attention_params(q, L.k(), L.v(), out, n, L.kv_len(n), heads_, head_dim_);
  p.key_bias = L.key_bias();
  p.key_bias_head_stride = L.key_bias_head_stride();
  const cudaError_t status = attention_forward_bf16(p, stream);
  FASTAR_CHECK(status == cudaSuccess, "CUDA error in attention_forward_bf16 (TempCache): " << cudaGetErrorString(status));
}

bool CudaTempCacheMemory::cached_keys(int64_t layer, CudaCachedKeys* out) const {
  const CudaTempCacheLayer& L = layers_[static_cast<size_t>(layer)];
  *out = CudaCachedKeys{static_cast<const __nv_bfloat16*>(L.k()), static_cast<const __nv_bfloat16*>(L.v()),
                        L.row_stride(), L.cached_rows(), L.capacity_rows(), L.key_bias(), L.key_bias_head_stride()};
  return true;
}

void CudaTempCacheMemory::commit(cudaStream_t stream) {
  for (CudaTempCacheLayer& L : layers_) L.commit(call_.num_frames, call_.frame_start, stream);
  version_ = next_memory_layout_version();
}

int64_t CudaTempCacheMemory::cached_frames() const {
  return static_cast<int64_t>(layers_.front().cached_tokens() + tokens_per_frame_ - 1) / tokens_per_frame_;
}

int64_t CudaTempCacheMemory::bytes() const {
  int64_t total = 0;
  for (const CudaTempCacheLayer& L : layers_) total += L.used_bytes();
  return total;
}

double CudaTempCacheMemory::density() const {
  double cached = 0.0, seen = 0.0;
  for (const CudaTempCacheLayer& L : layers_) {
    cached += L.cached_tokens();
    seen += static_cast<double>(L.tokens_seen());
  }
  return seen > 0 ? cached / seen : 1.0;
}

int64_t CudaTempCacheMemory::merges() const {
  int64_t total = 0;
  for (const CudaTempCacheLayer& L : layers_) total += L.merges();
  return total;
}

std::string CudaTempCacheMemory::describe() const {
  std::ostringstream out;
  out << "tempcache (threshold " << options_.threshold << ", " << ann_backend_name(options_.ann) << ", GPU";
  if (options_.window >= 0) out << ", window " << options_.window << " + sink " << options_.sink;
  out << ")";
  return out.str();
}

MemoryStats CudaTempCacheMemory::summary() const {
  MemoryStats s = CudaCrossFrameMemory::summary();
  s.kv_density = density();
  s.merges = merges();
  return s;
}

std::string CudaTempCacheMemory::report() const {
  char line[160];
  std::snprintf(line, sizeof line, "tempcache (GPU): KV density %.4f (representatives / tokens seen), %lld merges\n",
                density(), static_cast<long long>(merges()));
  return line;
}

}  // namespace fastar::cuda
