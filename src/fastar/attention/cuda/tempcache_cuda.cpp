#include "fastar/attention/cuda/tempcache_cuda.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fastar/attention/ann_lsh.h"
#include "fastar/core/dtype.h"
#include "fastar/core/error.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/cuda_check.h"

namespace fastar::cuda {

namespace {

// Allocation failed: ask for less.
constexpr const char* kMemoryHint =
    "lower --tempcache-capacity (representatives per head), use --window to bound the cache, or fewer frames per chunk";
// A head outgrew the capacity: hold more, or keep fewer groups.
constexpr const char* kCapacityHint =
    "raise --tempcache-capacity (more GPU memory), bound the cache with --window, or lower --tempcache-threshold "
    "(more merges)";

}  // namespace

int64_t CudaTempCacheScratch::bytes() const {
  return (chunk_k ? chunk_k->nbytes() : 0) + (chunk_v ? chunk_v->nbytes() : 0) + (workspace ? workspace->nbytes() : 0);
}

std::shared_ptr<Storage> CudaTempCacheLayer::alloc(int64_t bytes) {
  auto storage = allocate_device(std::max<int64_t>(bytes, 256), kMemoryHint);
  FASTAR_CUDA_CHECK(cudaMemset(storage->data(), 0, static_cast<size_t>(storage->nbytes())));
  return storage;
}

CudaTempCacheLayer::CudaTempCacheLayer(int64_t heads, int64_t head_dim, int64_t tokens_per_frame,
                                       int64_t capacity_tokens, int64_t chunk_tokens, const TempCacheOptions& options,
                                       std::shared_ptr<CudaTempCacheScratch> scratch)
    : heads_(heads), head_dim_(head_dim), tokens_per_frame_(tokens_per_frame), capacity_(capacity_tokens),
      chunk_tokens_(chunk_tokens), rows_(capacity_tokens + chunk_tokens), options_(options) {
  options_.validate();
  FASTAR_CHECK(head_dim == 64 || head_dim == 128,
               "tempcache (GPU): head_dim must be 64 or 128 (got " << head_dim << "); use --device cpu");
  FASTAR_CHECK(heads >= 1 && heads <= 65535, "tempcache (GPU): heads must be in [1, 65535] (got " << heads << ")");
  FASTAR_CHECK(tokens_per_frame >= 1 && chunk_tokens >= tokens_per_frame && chunk_tokens % tokens_per_frame == 0,
               "tempcache (GPU): chunk_tokens (" << chunk_tokens << ") must be a positive multiple of tokens_per_frame ("
                                                 << tokens_per_frame << ")");
  FASTAR_CHECK(capacity_tokens >= 1, "tempcache (GPU): the capacity must be >= 1 representative per head");
  FASTAR_CHECK(rows_ <= INT32_MAX / 2, "tempcache (GPU): capacity + chunk tokens too large (" << rows_ << ")");
  FASTAR_CHECK(options_.match == TempCacheMatch::key,
               "tempcache (GPU): only --tempcache-match key is implemented on the GPU; use --device cpu for query matching");
  FASTAR_CHECK(options_.max_tokens == 0,
               "tempcache (GPU): --tempcache-max-tokens is not implemented on the GPU; bound the cache with --window");
  FASTAR_CHECK(options_.ann == AnnBackend::quant || options_.lsh_bits <= 12,
               "tempcache (GPU): LSH bits per table must be <= 12 on the GPU (got " << options_.lsh_bits << ")");
  FASTAR_CHECK(options_.lsh_bucket_cap <= INT32_MAX,
               "tempcache (GPU): --tempcache-lsh-cap must be < 2^31 (got " << options_.lsh_bucket_cap << ")");
  FASTAR_CHECK(!options_.recall, "tempcache (GPU): the recall diagnostic runs on the CPU only (use --device cpu)");

  const int64_t h = heads, r = rows_, d = head_dim;
  const int64_t kv_bytes = r * h * d * 2;
  k_ = alloc(kv_bytes);
  v_ = alloc(kv_bytes);
  v_lo_ = alloc(kv_bytes);
  bias_ = alloc(h * r * 4);
  count_ = alloc(h * r * 4);
  rep_frame_ = alloc(h * r * 4);
  pinned_ = alloc(h * r);
  rep_norm_ = alloc(h * r * 4);
  if (options_.ann == AnnBackend::lsh) {
    const int64_t tables = options_.lsh_tables, nb = int64_t{1} << options_.lsh_bits;
    codes_ = alloc(h * r * tables * 4);
    bucket_offsets_ = alloc(h * tables * (nb + 1) * 4);
    bucket_ids_ = alloc(h * tables * r * 4);
    LshParams lsh;
    lsh.dim = head_dim;
    lsh.tables = options_.lsh_tables;
    lsh.bits = options_.lsh_bits;
    lsh.seed = options_.seed;
    const LshHasher hasher(lsh);  // the CPU's projections, so codes match TempCacheMemory's
    const int64_t count = tables * options_.lsh_bits * d;
    projections_ = alloc(count * 4);
    FASTAR_CUDA_CHECK(
        cudaMemcpy(projections_->data(), hasher.projections(), static_cast<size_t>(count) * 4, cudaMemcpyHostToDevice));
  } else {
    q8_ = alloc(h * r * d);
    q8_scale_ = alloc(h * r * 4);
  }
  stats_ = alloc(h * (8 + 8 + 4));

  TempCacheMergeParams p = params();
  const int64_t ws_bytes = static_cast<int64_t>(tempcache_workspace_bytes(p));
  const int64_t chunk_bytes = chunk_tokens * h * d * 2;
  if (scratch && scratch->workspace && scratch->workspace->nbytes() >= ws_bytes && scratch->chunk_k &&
      scratch->chunk_k->nbytes() >= chunk_bytes) {
    scratch_ = std::move(scratch);
  } else {
    scratch_ = std::make_shared<CudaTempCacheScratch>();
    scratch_->chunk_k = alloc(chunk_bytes);
    scratch_->chunk_v = alloc(chunk_bytes);
    scratch_->workspace = alloc(ws_bytes);
  }
  counts_.assign(static_cast<size_t>(h), 0);
  merges_.assign(static_cast<size_t>(h), 0);
  evicted_.assign(static_cast<size_t>(h), 0);
  // Bias: −inf everywhere but the first staged chunk (rows [0, chunk)).
  p = params();
  p.staged_tokens = chunk_tokens_;
  FASTAR_CUDA_CHECK(tempcache_finalize(p, nullptr));
  FASTAR_CUDA_CHECK(cudaDeviceSynchronize());
}

TempCacheMergeParams CudaTempCacheLayer::params() const {
  TempCacheMergeParams p;
  p.heads = heads_;
  p.head_dim = head_dim_;
  p.rows = rows_;
  p.k = static_cast<uint16_t*>(k_->data());
  p.v = static_cast<uint16_t*>(v_->data());
  p.v_lo = static_cast<uint16_t*>(v_lo_->data());
  p.row_stride = heads_ * head_dim_;
  p.head_stride = head_dim_;
  p.key_bias = static_cast<float*>(bias_->data());
  p.key_bias_head_stride = rows_;
  char* stats = static_cast<char*>(stats_->data());
  p.merges = reinterpret_cast<unsigned long long*>(stats);
  p.evicted = reinterpret_cast<unsigned long long*>(stats + heads_ * 8);
  p.size = reinterpret_cast<int32_t*>(stats + heads_ * 16);
  p.count = static_cast<int32_t*>(count_->data());
  p.rep_frame = static_cast<int32_t*>(rep_frame_->data());
  p.pinned = static_cast<uint8_t*>(pinned_->data());
  p.rep_norm = static_cast<float*>(rep_norm_->data());
  if (options_.ann == AnnBackend::lsh) {
    p.ann = TempCacheAnn::lsh;
    p.lsh_tables = options_.lsh_tables;
    p.lsh_bits = options_.lsh_bits;
    p.lsh_multi_probe = options_.lsh_multi_probe;
    p.lsh_bucket_cap = options_.lsh_bucket_cap;
    p.lsh_projections = static_cast<const float*>(projections_->data());
    p.codes = static_cast<uint32_t*>(codes_->data());
    p.bucket_offsets = static_cast<int32_t*>(bucket_offsets_->data());
    p.bucket_ids = static_cast<int32_t*>(bucket_ids_->data());
  } else {
    p.ann = TempCacheAnn::int8;
    p.q8 = static_cast<int8_t*>(q8_->data());
    p.q8_scale = static_cast<float*>(q8_scale_->data());
  }
  p.max_tokens = tokens_per_frame_;
  p.threshold = options_.threshold;
  if (scratch_) {
    p.workspace = scratch_->workspace->data();
    p.workspace_bytes = static_cast<size_t>(scratch_->workspace->nbytes());
  }
  return p;
}

void* CudaTempCacheLayer::stage_k() const {
  return static_cast<uint16_t*>(k_->data()) + max_count_ * row_stride();
}

void* CudaTempCacheLayer::stage_v() const {
  return static_cast<uint16_t*>(v_->data()) + max_count_ * row_stride();
}

void CudaTempCacheLayer::commit(int64_t frames, int64_t first_frame, cudaStream_t stream) {
  FASTAR_CHECK(!broken_, "tempcache (GPU): an earlier commit exceeded the capacity; " << kCapacityHint);
  FASTAR_CHECK(frames >= 1 && frames * tokens_per_frame_ <= chunk_tokens_,
               "tempcache (GPU): commit of " << frames << " frames; the layer stages at most "
                                             << chunk_tokens_ / tokens_per_frame_ << " frames per chunk");
  FASTAR_CHECK(first_frame >= next_frame_, "tempcache (GPU): frames must be committed in increasing order (got frame "
                                               << first_frame << " after " << next_frame_ - 1 << ")");
  FASTAR_CHECK(first_frame + frames - 1 <= INT32_MAX, "tempcache (GPU): frame index too large");
  if (first_frame_ < 0) first_frame_ = first_frame;
  const int64_t staged = frames * tokens_per_frame_;
  const size_t staged_bytes = static_cast<size_t>(staged * row_stride()) * 2;
  // The staged rows may be overwritten by appended representatives: merge from a copy.
  FASTAR_CUDA_CHECK(cudaMemcpyAsync(scratch_->chunk_k->data(), stage_k(), staged_bytes,
                                              cudaMemcpyDeviceToDevice, stream));
  FASTAR_CUDA_CHECK(cudaMemcpyAsync(scratch_->chunk_v->data(), stage_v(), staged_bytes,
                                              cudaMemcpyDeviceToDevice, stream));
  TempCacheMergeParams p = params();
  p.new_row_stride = row_stride();
  p.new_head_stride = head_dim_;
  p.tokens = tokens_per_frame_;
  for (int64_t f = 0; f < frames; ++f) {
    const int64_t frame = first_frame + f;
    p.new_k = static_cast<const uint16_t*>(scratch_->chunk_k->data()) + f * tokens_per_frame_ * row_stride();
    p.new_v = static_cast<const uint16_t*>(scratch_->chunk_v->data()) + f * tokens_per_frame_ * row_stride();
    p.frame = static_cast<int32_t>(frame);
    p.sink_frame = frame < first_frame_ + options_.sink;
    FASTAR_CUDA_CHECK(tempcache_commit_frame(p, stream));
  }
  const int64_t newest = first_frame + frames - 1;
  if (options_.window >= 0) {
    p.oldest_kept_frame = static_cast<int32_t>(std::max<int64_t>(newest - options_.window + 1, INT32_MIN));
    FASTAR_CUDA_CHECK(tempcache_evict_window(p, stream));
  }
  p.staged_tokens = chunk_tokens_;
  FASTAR_CUDA_CHECK(tempcache_finalize(p, stream));

  // Statistics: one copy, then the capacity check.
  std::vector<char> host(static_cast<size_t>(stats_->nbytes()));
  FASTAR_CUDA_CHECK(
      cudaMemcpyAsync(host.data(), stats_->data(), host.size(), cudaMemcpyDeviceToHost, stream));
  FASTAR_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::memcpy(merges_.data(), host.data(), static_cast<size_t>(heads_) * 8);
  std::memcpy(evicted_.data(), host.data() + heads_ * 8, static_cast<size_t>(heads_) * 8);
  std::memcpy(counts_.data(), host.data() + heads_ * 16, static_cast<size_t>(heads_) * 4);
  tokens_seen_ += staged;
  next_frame_ = newest + 1;
  const auto largest = std::max_element(counts_.begin(), counts_.end());
  max_count_ = *largest;
  if (max_count_ > capacity_) {
    broken_ = true;
    FASTAR_FAIL("tempcache (GPU): head " << (largest - counts_.begin()) << " holds " << max_count_
                                         << " representatives after frame " << newest << ", more than the capacity of "
                                         << capacity_ << " per head; " << kCapacityHint);
  }
}

int64_t CudaTempCacheLayer::merges() const {
  int64_t total = 0;
  for (unsigned long long m : merges_) total += static_cast<int64_t>(m);
  return total;
}

int64_t CudaTempCacheLayer::tokens_evicted() const {
  int64_t total = 0;
  for (unsigned long long e : evicted_) total += static_cast<int64_t>(e);
  return total;
}

double CudaTempCacheLayer::cached_tokens() const {
  double total = 0.0;
  for (int32_t c : counts_) total += c;
  return total / static_cast<double>(heads_);
}

int64_t CudaTempCacheLayer::bytes() const {
  int64_t total = 0;
  for (const auto* s : {&k_, &v_, &v_lo_, &bias_, &count_, &rep_frame_, &pinned_, &rep_norm_, &codes_,
                        &bucket_offsets_, &bucket_ids_, &projections_, &q8_, &q8_scale_, &stats_})
    if (*s) total += (*s)->nbytes();
  return total;
}

int64_t CudaTempCacheLayer::used_bytes() const {
  // Per representative: k, v, v_lo (bf16), bias, count, frame, norm (4 B), pinned (1 B), ANN entry.
  int64_t per_row = 3 * head_dim_ * 2 + 4 * 4 + 1;
  per_row += options_.ann == AnnBackend::lsh ? options_.lsh_tables * 8 : head_dim_ + 4;
  int64_t reps = 0;
  for (int32_t c : counts_) reps += c;
  return reps * per_row;
}

TempCacheHeadSnapshot CudaTempCacheLayer::download_head(int64_t head) const {
  FASTAR_CHECK(head >= 0 && head < heads_, "tempcache (GPU): head " << head << " out of range");
  const int64_t n = counts_[static_cast<size_t>(head)], d = head_dim_;
  TempCacheHeadSnapshot out;
  std::vector<uint16_t> k(static_cast<size_t>(n * d)), v(k.size()), lo(k.size());
  const size_t pitch = static_cast<size_t>(row_stride()) * 2, width = static_cast<size_t>(d) * 2;
  auto rows = [&](const std::shared_ptr<Storage>& s, std::vector<uint16_t>* dst) {
    if (n == 0) return;
    FASTAR_CUDA_CHECK(cudaMemcpy2D(dst->data(), width, static_cast<const uint16_t*>(s->data()) + head * d,
                                             pitch, width, static_cast<size_t>(n), cudaMemcpyDeviceToHost));
  };
  rows(k_, &k);
  rows(v_, &v);
  rows(v_lo_, &lo);
  out.keys.resize(k.size());
  out.values.resize(k.size());
  out.values_fp.resize(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    out.keys[i] = bf16_to_f32(k[i]);
    out.values[i] = bf16_to_f32(v[i]);
    out.values_fp[i] = bf16_to_f32(v[i]) + bf16_to_f32(lo[i]);
  }
  auto meta = [&](const std::shared_ptr<Storage>& s, auto* dst, int64_t count) {
    using T = typename std::remove_reference_t<decltype(*dst)>::value_type;
    dst->resize(static_cast<size_t>(count));
    if (count == 0) return;
    FASTAR_CUDA_CHECK(cudaMemcpy(dst->data(), static_cast<const T*>(s->data()) + head * rows_,
                                           static_cast<size_t>(count) * sizeof(T), cudaMemcpyDeviceToHost));
  };
  meta(count_, &out.counts, n);
  meta(rep_frame_, &out.rep_frames, n);
  meta(pinned_, &out.pinned, n);
  meta(bias_, &out.bias, rows_);
  return out;
}

}  // namespace fastar::cuda
