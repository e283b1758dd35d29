#include "fastar/attention/cuda/annca_cuda.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "fastar/attention/cuda/sparse_counters_cuda.h"
#include "fastar/core/error.h"
#include "fastar/kernels/cuda/ann_bucket_ops.h"
#include "fastar/kernels/cuda/annca_ops.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/flash_attention.h"
#include "fastar/model/cuda/cuda_memory.h"
#include "fastar/kernels/cuda/cuda_check.h"

namespace fastar::cuda {

namespace {

constexpr const char* kMemoryHint = "AnnCA's buffers are small: lower the chunk size or the prompt length";
constexpr const char* kCpuHint = "use --device cpu (or --ann lsh)";

}  // namespace

CudaAnnCrossAttention::CudaAnnCrossAttention(int64_t layers, int64_t heads, int64_t head_dim, int64_t max_call_frames,
                                             int64_t tokens_per_frame, AnnCaOptions options)
    : layers_(layers), heads_(heads), head_dim_(head_dim), max_frames_(max_call_frames),
      max_tokens_(max_call_frames * tokens_per_frame), options_(std::move(options)) {
  options_.validate();
  FASTAR_CHECK(options_.search == AnnSearch::lsh,
               "annca (GPU): only the LSH search runs on the GPU, not --ann " << ann_search_name(options_.search) << "; "
                                                                              << kCpuHint);
  FASTAR_CHECK(!options_.diagnostics,
               "annca (GPU): the recall diagnostic (--ann-stats) runs on the CPU only; use --device cpu or drop --ann-stats");
  FASTAR_CHECK(options_.bits <= kAnnCaMaxBits, "annca (GPU): LSH bits must be <= " << kAnnCaMaxBits << " on the GPU (got "
                                                                                    << options_.bits << "); use --device cpu");
  FASTAR_CHECK(options_.tables <= kAnnCaMaxTables, "annca (GPU): at most " << kAnnCaMaxTables << " LSH tables");
  FASTAR_CHECK(head_dim == 64 || head_dim == 128, "annca (GPU): head_dim must be 64 or 128 (got " << head_dim << ")");
  FASTAR_CHECK(layers > 0 && heads > 0 && heads <= 65535 && tokens_per_frame > 0,
               "annca (GPU): bad shape (layers " << layers << ", heads " << heads << ", tokens per frame "
                                                 << tokens_per_frame << ")");
  FASTAR_CHECK(max_call_frames >= 1 && max_call_frames <= 64,
               "annca (GPU): a call must hold 1 to 64 token-frames (got " << max_call_frames << "); lower --chunk-frames");
  for (int64_t layer : options_.schedule.layers)
    FASTAR_CHECK(layer >= 0 && layer < layers, "annca (GPU): sparse layer " << layer << " out of range [0, " << layers << ")");
  hasher_ = std::make_unique<LshHasher>(annca_lsh_params(options_, head_dim));
  const int64_t tables = options_.tables, bits = options_.bits;
  projections_ = static_cast<float*>(alloc(tables * bits * head_dim * 4));
  query_codes_ = static_cast<uint32_t*>(alloc(tables * heads * max_tokens_ * 4));
  occupancy_ = static_cast<uint32_t*>(alloc(max_frames_ * heads * tables * kAnnCaOccupancyWords * 4));
  counters_ = static_cast<unsigned long long*>(alloc(layers * 2 * 8));
  FASTAR_CUDA_CHECK(cudaMemcpy(projections_, hasher_->projections(), static_cast<size_t>(tables * bits * head_dim * 4),
                                  cudaMemcpyHostToDevice));
  sparse_frames_.assign(static_cast<size_t>(layers), 0);
  dense_frames_.assign(static_cast<size_t>(layers), 0);
  padding_sink_.assign(static_cast<size_t>(layers), 0);
  version_ = next_memory_layout_version();
}

void* CudaAnnCrossAttention::alloc(int64_t bytes) {
  buffers_.push_back(allocate_device(std::max<int64_t>(bytes, 256), kMemoryHint));
  FASTAR_CUDA_CHECK(cudaMemset(buffers_.back()->data(), 0, static_cast<size_t>(buffers_.back()->nbytes())));
  return buffers_.back()->data();
}

int64_t CudaAnnCrossAttention::scratch_bytes() const {
  int64_t total = 0;
  for (const auto& b : buffers_) total += b->nbytes();
  for (const auto& b : prompt_buffers_) total += b->nbytes();
  return total;
}

std::string CudaAnnCrossAttention::describe() const {
  std::ostringstream out;
  out << "annca (lsh " << options_.tables << " tables x " << options_.bits << " bits, padding "
      << (options_.padding_sink ? "sink" : "drop") << ", " << options_.schedule.describe() << ", GPU)";
  return out.str();
}

void CudaAnnCrossAttention::set_prompt(const WanPrompt& prompt) {
  const int64_t d = heads_ * head_dim_, rows = prompt.rows, tables = options_.tables;
  FASTAR_CHECK(static_cast<int64_t>(prompt.cross_k.size()) == layers_ && static_cast<int64_t>(prompt.cross_v.size()) == layers_,
               "annca (GPU): the prompt has " << prompt.cross_k.size() << " layers of K, " << prompt.cross_v.size()
                                              << " of V; the model has " << layers_);
  FASTAR_CHECK(rows > 0, "annca (GPU): the prompt has no rows");
  const int64_t valid = std::clamp<int64_t>(prompt.valid_rows, 0, rows);
  // Earlier calls may still read the codes (and the bias buffer) that this replaces.
  FASTAR_CUDA_CHECK(cudaDeviceSynchronize());
  if (rows > rows_capacity_) {  // prompt-sized buffers: grown here, never in attend()
    prompt_buffers_.clear();
    auto grow = [&](int64_t bytes) {
      prompt_buffers_.push_back(allocate_device(std::max<int64_t>(bytes, 256), kMemoryHint));
      FASTAR_CUDA_CHECK(cudaMemset(prompt_buffers_.back()->data(), 0, static_cast<size_t>(prompt_buffers_.back()->nbytes())));
      return prompt_buffers_.back()->data();
    };
    key_codes_ = static_cast<uint32_t*>(grow(layers_ * heads_ * rows * tables * 4));
    bias_ = static_cast<float*>(grow(max_frames_ * heads_ * rows * 4));
    rows_capacity_ = rows;
  }
  // The prompt keys' codes, exactly as AnnCrossAttention::prompt_codes computes them (fp32 keys, rows
  // [0, valid) per head), for the sparse layers; the padding sink per layer as AnnCrossAttention::attend decides it.
  const int64_t per_head = rows_capacity_ * tables;
  std::vector<uint32_t> codes(static_cast<size_t>(layers_ * heads_ * per_head), 0u);
  for (int64_t layer = 0; layer < layers_; ++layer) {
    padding_sink_[static_cast<size_t>(layer)] = 0;
    if (!options_.schedule.layer_is_sparse(layer) || valid == 0) continue;
    const Tensor& kt = prompt.cross_k[static_cast<size_t>(layer)];
    const Tensor& vt = prompt.cross_v[static_cast<size_t>(layer)];
    FASTAR_CHECK(kt.dim() == 2 && kt.size(0) == rows && kt.size(1) == d && vt.dim() == 2 && vt.size(0) == rows &&
                     vt.size(1) == d,
                 "annca (GPU): layer " << layer << "'s prompt K/V are " << kt.describe() << "/" << vt.describe()
                                       << ", expected [" << rows << ", " << d << "]");
    const Tensor kf = kt.dtype() == DType::F32 && kt.is_contiguous() ? kt : kt.to_f32();
    const Tensor vf = vt.dtype() == DType::F32 && vt.is_contiguous() ? vt : vt.to_f32();
    const float* k = kf.data<float>();
    for (int64_t h = 0; h < heads_; ++h)
      hasher_->hash(k + h * head_dim_, valid, d, codes.data() + (layer * heads_ + h) * per_head);
    padding_sink_[static_cast<size_t>(layer)] =
        options_.padding_sink && annca_padding_identical(k, vf.data<float>(), rows, valid, d) ? 1 : 0;
  }
  FASTAR_CUDA_CHECK(cudaMemcpy(key_codes_, codes.data(), codes.size() * 4, cudaMemcpyHostToDevice));
  prompt_rows_ = rows;
  valid_rows_ = valid;
  has_prompt_ = true;
  version_ = next_memory_layout_version();
}

void CudaAnnCrossAttention::begin(const CudaCrossAttentionCall& call) {
  FASTAR_CHECK(has_prompt_, "annca (GPU): set_prompt before the first forward");
  FASTAR_CHECK(call.num_frames >= 1 && call.num_frames <= max_frames_ && call.tokens_per_frame >= 1 &&
                   call.num_frames * call.tokens_per_frame <= max_tokens_,
               "annca (GPU): a call of " << call.num_frames << " frames x " << call.tokens_per_frame
                                         << " tokens; sized for " << max_frames_ << " frames, " << max_tokens_ << " tokens");
  std::vector<uint8_t> pattern(static_cast<size_t>(call.num_frames));
  for (int64_t f = 0; f < call.num_frames; ++f)
    pattern[static_cast<size_t>(f)] = options_.schedule.frame_is_sparse(call.timesteps, f) ? 1 : 0;
  const bool changed = pattern != frame_sparse_ || call.tokens_per_frame != call_tpf_;
  frame_sparse_ = std::move(pattern);
  call_frames_ = call.num_frames;
  call_tpf_ = call.tokens_per_frame;
  // Counted here, per forward, because graph replays do not call attend() on the host.
  for (int64_t layer = 0; layer < layers_; ++layer)
    for (int64_t f = 0; f < call_frames_; ++f)
      ++(frame_is_sparse(layer, f) ? sparse_frames_ : dense_frames_)[static_cast<size_t>(layer)];
  if (changed) version_ = next_memory_layout_version();
}

bool CudaAnnCrossAttention::frame_is_sparse(int64_t layer, int64_t frame) const {
  return frame >= 0 && frame < call_frames_ && frame_sparse_[static_cast<size_t>(frame)] &&
         options_.schedule.layer_is_sparse(layer) && valid_rows_ > 0;
}

void CudaAnnCrossAttention::attend(int64_t layer, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                                   int64_t prompt_rows, __nv_bfloat16* out, cudaStream_t stream) {
  FASTAR_CHECK(call_frames_ > 0, "annca (GPU): attend before begin");
  FASTAR_CHECK(layer >= 0 && layer < layers_, "annca (GPU): layer " << layer << " out of range");
  FASTAR_CHECK(prompt_rows == prompt_rows_, "annca (GPU): attend over " << prompt_rows << " prompt rows; set_prompt had "
                                                                       << prompt_rows_);
  const int64_t tpf = call_tpf_, hd = head_dim_, d = heads_ * hd, rows = prompt_rows_, valid = valid_rows_;
  const int64_t tables = options_.tables;
  const int bits = options_.bits;
  int64_t first = -1, last = -1;
  for (int64_t f = 0; f < call_frames_; ++f)
    if (frame_is_sparse(layer, f)) {
      if (first < 0) first = f;
      last = f;
    }
  auto dense = [&](int64_t f0, int64_t frames) {  // frames [f0, f0 + frames) over every prompt row
    AttentionParams p = packed_attention_params(q + f0 * tpf * d, k, v, out + f0 * tpf * d, frames * tpf, rows, heads_, hd);
    FASTAR_CUDA_CHECK(attention_forward_bf16(p, stream));
  };
  if (first < 0) {
    dense(0, call_frames_);
    return;
  }

  // The frames [first, last] (the sparse ones and any dense frames between them): query codes per table,
  // the occupied buckets, the key bias (+ the density counters of the sparse frames).
  const int64_t span = last - first + 1;
  for (int64_t t = 0; t < tables; ++t)
    FASTAR_CUDA_CHECK(ann_lsh_labels_bf16(q + first * tpf * d, span * tpf, heads_, hd, d, hd,
                                             projections_ + t * bits * hd, 0, bits, nullptr, 0, 0,
                                             query_codes_ + t * heads_ * max_tokens_, max_tokens_, stream));
  AnnCaOccupancyArgs oa;
  oa.codes = query_codes_;
  oa.code_table_stride = heads_ * max_tokens_;
  oa.code_head_stride = max_tokens_;
  oa.frames = span;
  oa.rows_per_frame = tpf;
  oa.heads = heads_;
  oa.tables = static_cast<int>(tables);
  oa.bits = bits;
  oa.occupancy = occupancy_;
  FASTAR_CUDA_CHECK(annca_occupancy(oa, stream));
  AnnCaKeyBiasArgs ba;
  ba.occupancy = occupancy_;
  ba.key_codes = key_codes_ + layer * heads_ * rows_capacity_ * tables;
  ba.key_code_head_stride = rows_capacity_ * tables;
  ba.frames = span;
  ba.heads = heads_;
  ba.tables = static_cast<int>(tables);
  ba.bits = bits;
  ba.valid_rows = valid;
  ba.prompt_rows = rows;
  ba.padding_sink = padding_sink_[static_cast<size_t>(layer)] != 0;
  ba.sink_bias = ba.padding_sink ? static_cast<float>(std::log(static_cast<double>(rows - valid))) : 0.0f;
  ba.bias = bias_;
  ba.bias_head_stride = rows_capacity_;
  ba.bias_frame_stride = heads_ * rows_capacity_;
  ba.tokens_per_frame = tpf;
  ba.counters = counters_ + 2 * layer;
  for (int64_t f = first; f <= last; ++f)
    if (frame_is_sparse(layer, f)) ba.counted_frames |= uint64_t{1} << (f - first);
  FASTAR_CUDA_CHECK(annca_key_bias(ba, stream));

  // Attention: runs of dense frames at once, each sparse frame over the prompt rows with its key bias.
  // Rows past valid (+ the sink row) have bias −inf in every frame and head, so the sparse launches stop
  // there: the same result as attending over every row, without visiting the padding tiles.
  const int64_t sparse_kv = std::min(rows, valid + 1);
  for (int64_t f = 0; f < call_frames_;) {
    if (!frame_is_sparse(layer, f)) {
      int64_t end = f + 1;
      while (end < call_frames_ && !frame_is_sparse(layer, end)) ++end;
      dense(f, end - f);
      f = end;
      continue;
    }
    AttentionParams p = packed_attention_params(q + f * tpf * d, k, v, out + f * tpf * d, tpf, sparse_kv, heads_, hd);
    p.key_bias = bias_ + (f - first) * ba.bias_frame_stride;
    p.key_bias_head_stride = rows_capacity_;
    FASTAR_CUDA_CHECK(attention_forward_bf16(p, stream));
    ++f;
  }
}

SparseStats CudaAnnCrossAttention::stats() const {
  return sparse_stats_from_device(counters_, sparse_frames_, dense_frames_);  // per frame, as the CPU counts
}

MemoryStats CudaAnnCrossAttention::summary() const {
  MemoryStats s;
  s.density = stats().total().density();
  return s;
}

std::string CudaAnnCrossAttention::report() const { return stats().report(describe() + ":"); }

}  // namespace fastar::cuda
