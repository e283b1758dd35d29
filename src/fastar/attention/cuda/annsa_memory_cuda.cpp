#include "fastar/attention/cuda/annsa_memory_cuda.h"

#include <cmath>
#include <sstream>

#include "fastar/attention/ann_lsh.h"
#include "fastar/attention/cuda/sparse_counters_cuda.h"
#include "fastar/core/error.h"
#include "fastar/kernels/cuda/ann_bucket_ops.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/flash_attention.h"
#include "fastar/kernels/cuda/cuda_check.h"

namespace fastar::cuda {

namespace {

constexpr const char* kMemoryHint =
    "AnnSA keeps a bucket-sorted copy of each sparse layer's cache: bound the cache with --window, lower --frames "
    "or sparsify fewer layers (generate: --ann-layers)";

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

}  // namespace

CudaAnnSaMemory::CudaAnnSaMemory(std::unique_ptr<CudaCrossFrameMemory> inner, int64_t layers, int64_t heads,
                                 int64_t head_dim, int64_t max_call_tokens, AnnSaOptions options)
    : inner_(std::move(inner)), layers_(layers), heads_(heads), head_dim_(head_dim), max_call_tokens_(max_call_tokens),
      options_(std::move(options)) {
  FASTAR_ASSERT(inner_, "CudaAnnSaMemory needs a cache policy to wrap");
  options_.validate();
  FASTAR_CHECK(options_.buckets == AnnSaBuckets::lsh,
               "annsa (GPU): only LSH buckets run on the GPU (--annsa-buckets lsh); use --device cpu for prompt buckets");
  FASTAR_CHECK(options_.bits <= kAnnMaxLshBits,
               "annsa (GPU): --annsa-bits must be <= " << kAnnMaxLshBits << " on the GPU (got " << options_.bits << ")");
  FASTAR_CHECK(!options_.diagnostics, "annsa (GPU): the recall diagnostic (--ann-stats) runs on the CPU only");
  FASTAR_CHECK(head_dim == 64 || head_dim == 128, "annsa (GPU): head_dim must be 64 or 128 (got " << head_dim << ")");
  FASTAR_CHECK(options_.block_q == 64 || options_.block_q == 128,
               "annsa (GPU): block_q must be 64 or 128 (got " << options_.block_q << ")");
  FASTAR_CHECK(options_.block_k > 0 && options_.block_k % 64 == 0,
               "annsa (GPU): block_k must be a positive multiple of 64 (got " << options_.block_k << ")");
  FASTAR_CHECK(layers > 0 && heads > 0 && max_call_tokens > 0, "annsa (GPU): bad shape");
  for (int64_t layer : options_.schedule.layers)
    FASTAR_CHECK(layer >= 0 && layer < layers, "annsa (GPU): sparse layer " << layer << " out of range");
  CudaCachedKeys probe;
  FASTAR_CHECK(inner_->cached_keys(0, &probe),
               "annsa cannot wrap the GPU memory policy '" << inner_->describe()
                                                           << "': it does not expose its cached keys; combine annsa with "
                                                              "dense, window or tempcache");
  num_buckets_ = 1 << options_.bits;
  max_key_rows_ = probe.capacity_rows;
  FASTAR_CHECK(max_key_rows_ >= max_call_tokens, "annsa (GPU): the wrapped cache holds fewer rows than one call");
  const int64_t nbt = num_buckets_ + 1;  // + the excluded keys' label
  const bool own_dense = options_.own_keys == AnnSaOwnKeys::dense;
  own_pad_ = own_dense ? 0 : round_up(max_call_tokens, options_.block_k);
  const int64_t q_pad = round_up(max_call_tokens, options_.block_q),
                k_pad = round_up(max_key_rows_, options_.block_k) + own_pad_;  // per head, both segments
  const int64_t q_blocks = q_pad / options_.block_q, k_blocks = k_pad / options_.block_k;
  FASTAR_CHECK(heads * k_pad < (int64_t{1} << 31) && heads * q_pad < (int64_t{1} << 31),
               "annsa (GPU): too many rows for the stacked layout; " << kMemoryHint);
  auto alloc = [&](int64_t bytes) {
    buffers_.push_back(allocate_device(std::max<int64_t>(bytes, 256), kMemoryHint));
    FASTAR_CUDA_CHECK(cudaMemset(buffers_.back()->data(), 0, static_cast<size_t>(buffers_.back()->nbytes())));
    return buffers_.back()->data();
  };
  const int64_t hd = head_dim;
  projections_ = static_cast<float*>(alloc(options_.bits * hd * 4));
  own_lse_ = static_cast<float*>(alloc(heads * max_call_tokens * 4));
  q_labels_ = static_cast<uint32_t*>(alloc(heads * max_call_tokens * 4));
  k_labels_ = static_cast<uint32_t*>(alloc(heads * max_key_rows_ * 4));
  q_order_ = static_cast<int32_t*>(alloc(heads * max_call_tokens * 4));
  k_order_ = static_cast<int32_t*>(alloc(heads * max_key_rows_ * 4));
  q_offsets_ = static_cast<int32_t*>(alloc(heads * (nbt + 1) * 4));
  own_offsets_ = static_cast<int32_t*>(alloc(heads * (nbt + 1) * 4));
  q_sorted_ = static_cast<__nv_bfloat16*>(alloc(heads * q_pad * hd * 2));
  o_sorted_ = static_cast<__nv_bfloat16*>(alloc(heads * q_pad * hd * 2));
  lse_sorted_ = static_cast<float*>(alloc(heads * q_pad * 4));
  block_offsets_ = static_cast<int32_t*>(alloc((heads * q_blocks + 1) * 4));
  block_index_ = static_cast<int32_t*>(alloc(heads * q_blocks * k_blocks * 4));
  counters_ = static_cast<unsigned long long*>(alloc(layers * 2 * 8));
  // Sorted copies of the keys: one per sparse layer (the cache changes only at commits), sized for the
  // wrapped cache's capacity rows (its staged chunk included: after the last commit a full cache holds
  // that many) + the room for the call's own keys when they are bucketed.
  sorted_.resize(static_cast<size_t>(layers));
  for (int64_t i = 0; i < layers; ++i) {
    if (!options_.schedule.layer_is_sparse(i)) continue;
    SortedKeys& sk = sorted_[static_cast<size_t>(i)];
    sk.k = static_cast<__nv_bfloat16*>(alloc(heads * k_pad * hd * 2));
    sk.v = static_cast<__nv_bfloat16*>(alloc(heads * k_pad * hd * 2));
    sk.bias = static_cast<float*>(alloc(heads * k_pad * 4));
    sk.offsets = static_cast<int32_t*>(alloc(heads * (nbt + 1) * 4));
  }

  // The CPU's projections (AnnSaMemory's hasher).
  const LshHasher hasher(annsa_lsh_params(options_, hd));
  FASTAR_CUDA_CHECK(cudaMemcpy(projections_, hasher.projections(), static_cast<size_t>(options_.bits * hd * 4),
                                  cudaMemcpyHostToDevice));
  sparse_calls_.assign(static_cast<size_t>(layers), 0);
  dense_calls_.assign(static_cast<size_t>(layers), 0);
  version_ = next_memory_layout_version();
  seen_inner_version_ = inner_->layout_version();
  sort_cached_keys(nullptr);  // the cache as it is now (normally empty)
  FASTAR_CUDA_CHECK(cudaStreamSynchronize(nullptr));
}

int64_t CudaAnnSaMemory::bytes() const {
  // The sorted copies count as the rows they hold now (k, v, bias per head; padded to block_k; with own
  // keys bucketed + the room for a call's own keys), like the wrapped cache's rows in use.
  int64_t sorted = 0;
  for (const SortedKeys& sk : sorted_)
    if (sk.k) sorted += heads_ * sk.head_rows * (4 * head_dim_ + 4);
  return inner_->bytes() + sorted;
}

int64_t CudaAnnSaMemory::scratch_bytes() const {
  int64_t total = 0;
  for (const auto& b : buffers_) total += b->nbytes();
  return total;
}

std::string CudaAnnSaMemory::describe() const {
  std::ostringstream out;
  out << inner_->describe() << " + annsa (lsh buckets, " << num_buckets_ << " per head, own keys "
      << (options_.own_keys == AnnSaOwnKeys::dense ? "dense" : "sparse") << ", blocks " << options_.block_q << "x"
      << options_.block_k << ", " << options_.schedule.describe() << ", GPU)";
  return out.str();
}

void CudaAnnSaMemory::refresh_version() {
  const uint64_t inner = inner_->layout_version();
  if (inner != seen_inner_version_ || sparse_call_ != seen_sparse_) {
    version_ = next_memory_layout_version();
    seen_inner_version_ = inner;
    seen_sparse_ = sparse_call_;
  }
}

void CudaAnnSaMemory::begin(const CudaMemoryCall& call) {
  inner_->begin(call);
  const int64_t n = call.num_frames * call.tokens_per_frame;
  FASTAR_CHECK(n <= max_call_tokens_, "annsa (GPU): a call of " << n << " tokens; sized for " << max_call_tokens_);
  call_ = call;
  call_.timesteps = nullptr;  // valid only during begin()
  sparse_call_ = options_.schedule.frames_are_sparse(call.timesteps, call.num_frames);
  // Counted here, per forward, because graph replays do not call attend() on the host.
  for (int64_t layer = 0; layer < layers_; ++layer)
    ++(sparse_call_ && options_.schedule.layer_is_sparse(layer) ? sparse_calls_ : dense_calls_)[static_cast<size_t>(layer)];
  refresh_version();
}

void CudaAnnSaMemory::commit(cudaStream_t stream) {
  inner_->commit(stream);
  sort_cached_keys(stream);
  refresh_version();
}

void CudaAnnSaMemory::sort_cached_keys(cudaStream_t stream) {
  const int64_t bk = options_.block_k;
  for (int64_t layer = 0; layer < layers_; ++layer) {
    if (!options_.schedule.layer_is_sparse(layer)) continue;
    CudaCachedKeys c;
    FASTAR_ASSERT(inner_->cached_keys(layer, &c), "annsa (GPU): the wrapped memory stopped exposing its cache");
    FASTAR_ASSERT(c.rows <= max_key_rows_, "annsa (GPU): the wrapped cache outgrew its capacity");
    SortedKeys& sk = sorted_[static_cast<size_t>(layer)];
    sk.rows = c.rows;
    sk.head_rows = round_up(c.rows, bk) + own_pad_;
    bucket_keys({c.k, c.v, c.row_stride, c.key_bias, c.key_bias_head_stride, c.rows}, sk.offsets, sk, 0,
                round_up(c.rows, bk), stream);
  }
}

void CudaAnnSaMemory::sort_own_keys(int64_t layer, int64_t n, SortedKeys& dst, cudaStream_t stream) {
  FASTAR_ASSERT(n <= own_pad_ && n <= max_key_rows_, "annsa (GPU): a call larger than sized for");
  // The chunk's own keys: [n, heads·hd], after the cached segment (padded to block_k).
  bucket_keys({inner_->chunk_k(layer), inner_->chunk_v(layer), heads_ * head_dim_, nullptr, 0, n}, own_offsets_, dst,
              round_up(dst.rows, options_.block_k), own_pad_, stream);
}

void CudaAnnSaMemory::bucket_keys(const KeySource& src, int32_t* offsets, SortedKeys& dst, int64_t first_row,
                                  int64_t rows_pad, cudaStream_t stream) {
  const int nb = num_buckets_, nbt = nb + 1;
  const int64_t hd = head_dim_;
  FASTAR_CUDA_CHECK(ann_lsh_labels_bf16(src.k, src.rows, heads_, hd, src.row_stride, hd, projections_, 0, options_.bits,
                                           src.bias, src.bias_head_stride, static_cast<uint32_t>(nb), k_labels_,
                                           max_key_rows_, stream));
  FASTAR_CUDA_CHECK(ann_bucket_sort(k_labels_, max_key_rows_, src.rows, heads_, nbt, k_order_, max_key_rows_, offsets, stream));
  AnnGatherArgs gk;
  gk.src[0] = src.k;
  gk.src[1] = src.v;
  gk.dst[0] = dst.k + first_row * hd;  // head 0's segment; head h at + h·head_rows rows
  gk.dst[1] = dst.v + first_row * hd;
  gk.src_row_stride = src.row_stride;
  gk.src_head_stride = hd;
  gk.order = k_order_;
  gk.order_head_stride = max_key_rows_;
  gk.valid = offsets + nb;  // the real buckets' end: excluded keys are not gathered
  gk.valid_head_stride = nbt + 1;
  gk.src_bias = src.bias;
  gk.src_bias_head_stride = src.bias_head_stride;
  gk.dst_bias = dst.bias + first_row;
  gk.rows = src.rows;
  gk.rows_pad = rows_pad;
  gk.heads = heads_;
  gk.head_dim = hd;
  gk.dst_head_stride = dst.head_rows;
  FASTAR_CUDA_CHECK(ann_gather_rows_bf16(gk, stream));
}

void CudaAnnSaMemory::attend(int64_t layer, const __nv_bfloat16* q, __nv_bfloat16* out, cudaStream_t stream,
                             const CudaLayerInputs* inputs) {
  if (!sparse_call_ || !options_.schedule.layer_is_sparse(layer)) {
    inner_->attend(layer, q, out, stream, inputs);
    return;
  }
  CudaCachedKeys c;
  FASTAR_ASSERT(inner_->cached_keys(layer, &c), "annsa (GPU): the wrapped memory stopped exposing its cache");
  const int64_t n = call_.num_frames * call_.tokens_per_frame, hd = head_dim_, d = heads_ * hd;
  const bool own_dense = options_.own_keys == AnnSaOwnKeys::dense;
  const int64_t keys = c.rows;  // cached
  FASTAR_ASSERT(keys <= max_key_rows_, "annsa (GPU): the wrapped cache outgrew its capacity");
  const int64_t bq = options_.block_q, bk = options_.block_k;
  const int64_t q_pad = round_up(n, bq);
  const int nb = num_buckets_, nbt = nb + 1;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));

  if (own_dense) {  // the chunk over its own keys, all heads → out, lse → own_lse_ [heads, n]
    AttentionParams p = packed_attention_params(q, inner_->chunk_k(layer), inner_->chunk_v(layer), out, n, n, heads_, hd);
    p.lse = own_lse_;
    FASTAR_CUDA_CHECK(attention_forward_bf16(p, stream));
  }
  FASTAR_CUDA_CHECK(ann_lsh_labels_bf16(q, n, heads_, hd, d, hd, projections_, 0, options_.bits, nullptr, 0,
                                           static_cast<uint32_t>(nb), q_labels_, max_call_tokens_, stream));
  FASTAR_CUDA_CHECK(ann_bucket_sort(q_labels_, max_call_tokens_, n, heads_, nbt, q_order_, max_call_tokens_, q_offsets_, stream));
  AnnGatherArgs gq;
  gq.src[0] = q;
  gq.dst[0] = q_sorted_;
  gq.src_row_stride = d;
  gq.src_head_stride = hd;
  gq.order = q_order_;
  gq.order_head_stride = max_call_tokens_;
  gq.rows = n;
  gq.rows_pad = q_pad;
  gq.heads = heads_;
  gq.head_dim = hd;
  FASTAR_CUDA_CHECK(ann_gather_rows_bf16(gq, stream));
  // The keys in bucket order: the layer's copy of its cache sorted at the last commit, and (own keys
  // bucketed) the call's own keys sorted now into the copy's second segment.
  SortedKeys& sk = sorted_[static_cast<size_t>(layer)];
  FASTAR_ASSERT(sk.rows == keys, "annsa (GPU): the cache changed since its keys were sorted (" << sk.rows << " sorted, "
                                                                                               << keys << " now)");
  if (!own_dense) sort_own_keys(layer, n, sk, stream);

  AnnPlanArgs plan;
  plan.q_offsets = q_offsets_;
  plan.k_offsets = sk.offsets;
  plan.offsets_head_stride = nbt + 1;
  plan.num_buckets = nb;
  plan.heads = heads_;
  plan.q_blocks = q_pad / bq;
  plan.k_blocks = sk.head_rows / bk;
  plan.k2_offsets = own_dense ? nullptr : own_offsets_;
  plan.k2_first_block = round_up(keys, bk) / bk;
  plan.block_q = bq;
  plan.block_k = bk;
  plan.block_offsets = block_offsets_;
  plan.block_index = block_index_;
  plan.counters = counters_ + 2 * layer;
  plan.extra_pairs_per_head = own_dense ? n * n : 0;
  plan.extra_keys_per_head = own_dense ? n : 0;
  FASTAR_CUDA_CHECK(ann_block_plan(plan, stream));

  // One block-sparse launch over the stacked heads: one "head" of heads·q_pad queries and heads·head_rows keys.
  AttentionParams p;
  p.q = q_sorted_;
  p.k = sk.k;
  p.v = sk.v;
  p.o = o_sorted_;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = hd;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = hd;
  p.num_heads = 1;
  p.head_dim = hd;
  p.q_len = heads_ * q_pad;
  p.kv_len = heads_ * sk.head_rows;
  p.scale = scale;
  p.lse = lse_sorted_;
  p.key_bias = sk.bias;
  p.block_offsets = block_offsets_;
  p.block_index = block_index_;
  p.block_q = bq;
  p.block_k = bk;
  FASTAR_CUDA_CHECK(attention_forward_bf16(p, stream));

  AnnScatterArgs s;
  s.sorted_o = o_sorted_;
  s.sorted_lse = lse_sorted_;
  s.order = q_order_;
  s.order_head_stride = max_call_tokens_;
  s.out = out;
  s.out_row_stride = d;
  s.out_head_stride = hd;
  s.own_lse = own_dense ? own_lse_ : nullptr;
  s.lse_head_stride = n;
  s.rows = n;
  s.rows_pad = q_pad;
  s.heads = heads_;
  s.head_dim = hd;
  FASTAR_CUDA_CHECK(ann_scatter_merge_bf16(s, stream));
}

SparseStats CudaAnnSaMemory::stats() const { return sparse_stats_from_device(counters_, sparse_calls_, dense_calls_); }

MemoryStats CudaAnnSaMemory::summary() const {
  MemoryStats s = inner_->summary();
  s.bytes = bytes();
  s.density = stats().total().density();
  return s;
}

std::string CudaAnnSaMemory::report() const { return inner_->report() + stats().report("annsa (self-attention, GPU):"); }

}  // namespace fastar::cuda
