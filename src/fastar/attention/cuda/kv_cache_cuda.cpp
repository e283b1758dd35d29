#include "fastar/attention/cuda/kv_cache_cuda.h"

#include <algorithm>
#include <sstream>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/flash_attention.h"

namespace fastar::cuda {

namespace {

constexpr const char* kMemoryHint =
    "lower --frames or use --policy window (a smaller KV cache), or a smaller --latent-size";

void check(cudaError_t status, const char* what) {
  FASTAR_CHECK(status == cudaSuccess, "CUDA error in " << what << ": " << cudaGetErrorString(status));
}

}  // namespace

CudaKvCache::CudaKvCache(int64_t layers, int64_t heads, int64_t head_dim, int64_t tokens_per_frame, int64_t capacity_frames,
                         int64_t window, int64_t sink, std::vector<bool> held_layers)
    : layers_(layers), heads_(heads), head_dim_(head_dim), tokens_per_frame_(tokens_per_frame),
      capacity_frames_(capacity_frames), window_(window), sink_(sink), version_(next_memory_layout_version()) {
  FASTAR_CHECK(layers > 0 && heads > 0 && head_dim > 0 && tokens_per_frame > 0 && capacity_frames > 0,
               "CudaKvCache: bad shape (layers " << layers << ", heads " << heads << ", head_dim " << head_dim
                                                 << ", tokens/frame " << tokens_per_frame << ", capacity " << capacity_frames << ")");
  FASTAR_CHECK(window < 0 || sink >= 0, "CudaKvCache: the sink must be >= 0");
  FASTAR_CHECK(held_layers.empty() || static_cast<int64_t>(held_layers.size()) == layers,
               "CudaKvCache: held_layers has " << held_layers.size() << " entries for " << layers << " layers");
  slot_.assign(static_cast<size_t>(layers), -1);
  for (int64_t layer = 0; layer < layers; ++layer)
    if (held_layers.empty() || held_layers[static_cast<size_t>(layer)]) slot_[static_cast<size_t>(layer)] = held_++;
  const int64_t layer_bytes = capacity_frames * tokens_per_frame * heads * head_dim * 2;
  k_ = allocate_device(std::max<int64_t>(held_, 1) * layer_bytes, kMemoryHint);
  v_ = allocate_device(std::max<int64_t>(held_, 1) * layer_bytes, kMemoryHint);
  if (window >= 0) scratch_ = allocate_device(layer_bytes, kMemoryHint);
}

int64_t CudaKvCache::bytes() const { return 2 * held_ * frames_ * tokens_per_frame_ * heads_ * head_dim_ * 2; }

std::string CudaKvCache::describe() const {
  std::ostringstream out;
  if (window_ < 0) out << "dense (all frames, GPU)";
  else out << "window (last " << window_ << " frames + " << sink_ << " sink frames, GPU)";
  return out.str();
}

void* CudaKvCache::k(int64_t layer) const {
  const int64_t slot = slot_[static_cast<size_t>(layer)];
  FASTAR_ASSERT(slot >= 0, "CudaKvCache: layer " << layer << " is not held by this cache");
  return static_cast<char*>(k_->data()) + slot * capacity_frames_ * tokens_per_frame_ * heads_ * head_dim_ * 2;
}
void* CudaKvCache::v(int64_t layer) const {
  const int64_t slot = slot_[static_cast<size_t>(layer)];
  FASTAR_ASSERT(slot >= 0, "CudaKvCache: layer " << layer << " is not held by this cache");
  return static_cast<char*>(v_->data()) + slot * capacity_frames_ * tokens_per_frame_ * heads_ * head_dim_ * 2;
}

bool CudaKvCache::cached_keys(int64_t layer, CudaCachedKeys* out) const {
  if (slot_[static_cast<size_t>(layer)] < 0) return false;
  *out = CudaCachedKeys{static_cast<const __nv_bfloat16*>(k(layer)), static_cast<const __nv_bfloat16*>(v(layer)),
                        heads_ * head_dim_, tokens(), capacity_frames_ * tokens_per_frame_, nullptr, 0};
  return true;
}

void CudaKvCache::begin(const CudaMemoryCall& call) {
  FASTAR_CHECK(call.tokens_per_frame == tokens_per_frame_, "the GPU KV cache was made for " << tokens_per_frame_
                                                               << " tokens per frame, the call has " << call.tokens_per_frame);
  FASTAR_CHECK(frames_ + call.num_frames <= capacity_frames_,
               "the GPU KV cache holds " << capacity_frames_ << " frames and is full; " << kMemoryHint);
  call_frames_ = call.num_frames;
}

__nv_bfloat16* CudaKvCache::chunk_k(int64_t layer) {
  return static_cast<__nv_bfloat16*>(k(layer)) + tokens() * heads_ * head_dim_;
}
__nv_bfloat16* CudaKvCache::chunk_v(int64_t layer) {
  return static_cast<__nv_bfloat16*>(v(layer)) + tokens() * heads_ * head_dim_;
}

void CudaKvCache::attend(int64_t layer, const __nv_bfloat16* q, __nv_bfloat16* out, cudaStream_t stream,
                         const CudaLayerInputs* /*inputs*/) {
  const int64_t n = call_frames_ * tokens_per_frame_;
  AttentionParams p = packed_attention_params(q, k(layer), v(layer), out, n, tokens() + n, heads_, head_dim_);
  check(attention_forward_bf16(p, stream), "attention_forward_bf16 (KV cache)");
}

void CudaKvCache::commit(cudaStream_t stream) {
  frames_ += call_frames_;
  call_frames_ = 0;
  version_ = next_memory_layout_version();
  FASTAR_ASSERT(frames_ <= capacity_frames_, "kv cache overflow");
  if (window_ < 0 || frames_ <= sink_ + window_) return;
  // Drop the oldest non-sink frames: move [sink + excess, frames) down to [sink, ...).
  const int64_t excess = frames_ - (sink_ + window_);
  const int64_t frame_bytes = tokens_per_frame_ * heads_ * head_dim_ * 2;
  const int64_t keep_bytes = window_ * frame_bytes;
  for (int64_t layer = 0; layer < layers_; ++layer) {
    if (slot_[static_cast<size_t>(layer)] < 0) continue;
    for (void* base : {k(layer), v(layer)}) {
      char* b = static_cast<char*>(base);
      check(cudaMemcpyAsync(scratch_->data(), b + (sink_ + excess) * frame_bytes, static_cast<size_t>(keep_bytes),
                            cudaMemcpyDeviceToDevice, stream),
            "window eviction");
      check(cudaMemcpyAsync(b + sink_ * frame_bytes, scratch_->data(), static_cast<size_t>(keep_bytes),
                            cudaMemcpyDeviceToDevice, stream),
            "window eviction");
    }
  }
  frames_ = sink_ + window_;
}

}  // namespace fastar::cuda
