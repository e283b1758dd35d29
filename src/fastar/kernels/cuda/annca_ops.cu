// AnnCA's LSH keep-test kernels (annca_ops.h). CPU twins: annca_keep_lsh (occupied buckets, kept keys)
// and the padding rule of AnnCrossAttention::attend.
#include "fastar/kernels/cuda/annca_ops.h"

#include <cmath>

namespace fastar::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWords = kAnnCaOccupancyWords;

// ---- (a) occupancy ------------------------------------------------------------------------------------

// grid (frames, heads, tables): one CTA ORs its frame's codes into a shared bitmap, then writes all of it.
__global__ void occupancy_kernel(AnnCaOccupancyArgs a) {
  __shared__ uint32_t words[kWords];
  const int64_t f = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
  if (threadIdx.x < kWords) words[threadIdx.x] = 0u;
  __syncthreads();
  const uint32_t num_buckets = 1u << a.bits;
  const uint32_t* codes = a.codes + t * a.code_table_stride + h * a.code_head_stride + f * a.rows_per_frame;
  for (int64_t r = threadIdx.x; r < a.rows_per_frame; r += blockDim.x) {
    const uint32_t code = codes[r];
    if (code < num_buckets) atomicOr(&words[code >> 5], 1u << (code & 31u));
  }
  __syncthreads();
  if (threadIdx.x < kWords)
    a.occupancy[((f * a.heads + h) * a.tables + t) * kWords + threadIdx.x] = words[threadIdx.x];
}

// ---- (b) key bias ----------------------------------------------------------------------------------------

// grid (frames, heads): the (frame, head)'s occupancy of every table in shared memory, one thread per
// prompt row (strided), the kept count reduced in shared memory for the density counters.
__global__ void key_bias_kernel(AnnCaKeyBiasArgs a) {
  __shared__ uint32_t occupied[kAnnCaMaxTables * kWords];
  __shared__ unsigned int kept_rows;
  const int64_t f = blockIdx.x, h = blockIdx.y;
  const int words = a.tables * kWords;
  const uint32_t* occ = a.occupancy + (f * a.heads + h) * words;
  for (int i = threadIdx.x; i < words; i += blockDim.x) occupied[i] = occ[i];
  if (threadIdx.x == 0) kept_rows = 0u;
  __syncthreads();
  const uint32_t num_buckets = 1u << a.bits;
  const uint32_t* keys = a.key_codes + h * a.key_code_head_stride;  // not read when valid_rows == 0
  float* bias = a.bias + f * a.bias_frame_stride + h * a.bias_head_stride;
  unsigned int kept = 0;
  for (int64_t p = threadIdx.x; p < a.prompt_rows; p += blockDim.x) {
    bool keep = false;
    float value = -INFINITY;
    if (p < a.valid_rows) {
      for (int t = 0; t < a.tables && !keep; ++t) {
        const uint32_t code = keys[p * a.tables + t];
        keep = code < num_buckets && ((occupied[t * kWords + (code >> 5)] >> (code & 31u)) & 1u);
      }
      if (keep) value = 0.0f;
    } else if (a.padding_sink && p == a.valid_rows) {
      keep = true;
      value = a.sink_bias;
    }
    bias[p] = value;
    kept += keep ? 1u : 0u;
  }
  if (kept) atomicAdd(&kept_rows, kept);
  __syncthreads();
  if (threadIdx.x == 0 && a.counters && ((a.counted_frames >> f) & 1u)) {
    const auto tpf = static_cast<unsigned long long>(a.tokens_per_frame);
    atomicAdd(&a.counters[0], tpf * kept_rows);
    if (h == 0) atomicAdd(&a.counters[1], tpf * static_cast<unsigned long long>(a.prompt_rows * a.heads));
  }
}

}  // namespace

cudaError_t annca_occupancy(const AnnCaOccupancyArgs& a, cudaStream_t stream) {
  if (a.bits < 1 || a.bits > kAnnCaMaxBits || a.tables < 1 || a.tables > kAnnCaMaxTables || a.heads < 1 ||
      a.heads > 65535 || a.frames < 0 || a.frames > 0x7fffffff || a.rows_per_frame < 0 || a.code_table_stride < 0 ||
      a.code_head_stride < 0)
    return cudaErrorInvalidValue;
  if (a.frames == 0) return cudaSuccess;
  if (!a.occupancy || (a.rows_per_frame > 0 && !a.codes)) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(a.frames), static_cast<unsigned>(a.heads), static_cast<unsigned>(a.tables));
  occupancy_kernel<<<grid, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t annca_key_bias(const AnnCaKeyBiasArgs& a, cudaStream_t stream) {
  if (a.bits < 1 || a.bits > kAnnCaMaxBits || a.tables < 1 || a.tables > kAnnCaMaxTables || a.heads < 1 ||
      a.heads > 65535 || a.frames < 0 || a.frames > 0x7fffffff || (a.counters && a.frames > 64) || a.valid_rows < 0 ||
      a.prompt_rows < a.valid_rows || (a.padding_sink && a.valid_rows >= a.prompt_rows) || a.tokens_per_frame < 0 ||
      a.bias_head_stride < a.prompt_rows || (a.frames > 1 && a.bias_frame_stride < a.heads * a.bias_head_stride) ||
      (a.heads > 1 && a.key_code_head_stride < a.valid_rows * a.tables))
    return cudaErrorInvalidValue;
  if (a.frames == 0) return cudaSuccess;
  if (!a.occupancy || !a.bias || (a.valid_rows > 0 && !a.key_codes)) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(a.frames), static_cast<unsigned>(a.heads));
  key_bias_kernel<<<grid, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace fastar::cuda
