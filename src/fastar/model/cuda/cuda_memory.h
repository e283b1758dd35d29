// The seam of docs/design.md on the GPU: each layer's cross-frame memory behind one interface, as
// CrossFrameMemory (../cross_frame_memory.h) is on the CPU. Policies live in src/fastar/attention/cuda/.
//
// One forward of the CUDA DiT calls, per call:
//   begin(call)                          — checks capacity and prepares this call's staging rows;
//   per layer: chunk_k(layer)/chunk_v(layer) — where the DiT writes the call's post-RoPE K and V
//              ([tokens, heads·head_dim] bf16, row stride heads·head_dim);
//              attend(layer, q, out)      — self-attention of the call's queries over [memory + call];
//   after the layers, on a commit call: commit() — the call's K/V become memory.
// All device work is asynchronous on the given stream. attend() launches must depend only on state
// that layout_version() summarises: the DiT captures forwards in CUDA graphs keyed by it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "fastar/model/memory_stats.h"

namespace fastar::cuda {

struct CudaMemoryCall {
  int64_t frame_start = 0;       // global token-frame index of the call's first frame
  int64_t num_frames = 0;        // token-frames in this call
  int64_t tokens_per_frame = 0;
  bool commit = false;           // the clean context pass: the call becomes memory after the forward
  const float* timesteps = nullptr;  // host [num_frames]: each token-frame's timestep (valid during begin()); nullptr = unknown
};

// A layer's cached keys/values as attend() reads them besides the call's own tokens (for wrapping
// policies, AnnSA; the GPU twin of CachedKvHead). Rows [0, rows) of every head; the call's staged K/V
// follow at rows [rows, rows + call tokens).
struct CudaCachedKeys {
  const __nv_bfloat16* k = nullptr;  // [capacity_rows, heads·head_dim], head h at + h·head_dim
  const __nv_bfloat16* v = nullptr;
  int64_t row_stride = 0;
  int64_t rows = 0;                  // the most rows of any head; a head's rows past its own count have bias −inf
  int64_t capacity_rows = 0;         // rows the buffers hold, staged chunk included (the most rows + call tokens)
  const float* key_bias = nullptr;   // bias[h·key_bias_head_stride + row] (TempCache's log m, −inf = no key); nullptr = none
  int64_t key_bias_head_stride = 0;
};

// Inputs only some policies read (ARL² hybrid layers), set by the DiT for layers where
// wants_layer_inputs(layer) is true.
struct CudaLayerInputs {
  const __nv_bfloat16* x = nullptr;         // [tokens, dim]: the self-attention's adaLN-modulated input
  const __nv_bfloat16* q_normed = nullptr;  // [tokens, dim]: q after qk-norm, before RoPE
  const __nv_bfloat16* k_normed = nullptr;  // [tokens, dim]: k after qk-norm, before RoPE
  int64_t grid_height = 0, grid_width = 0;  // token grid of one frame
};

class CudaCrossFrameMemory {
 public:
  virtual ~CudaCrossFrameMemory() = default;

  virtual void begin(const CudaMemoryCall& call) = 0;
  virtual __nv_bfloat16* chunk_k(int64_t layer) = 0;
  virtual __nv_bfloat16* chunk_v(int64_t layer) = 0;
  // q, out: [call tokens, heads·head_dim] bf16, contiguous. inputs: non-null exactly when
  // wants_layer_inputs(layer).
  virtual void attend(int64_t layer, const __nv_bfloat16* q, __nv_bfloat16* out, cudaStream_t stream,
                      const CudaLayerInputs* inputs) = 0;
  virtual bool wants_layer_inputs(int64_t /*layer*/) const { return false; }
  // Optional, for wrapping policies: layer `layer`'s cached keys now; false = not exposed (default).
  virtual bool cached_keys(int64_t /*layer*/, CudaCachedKeys* /*out*/) const { return false; }
  virtual void commit(cudaStream_t stream) = 0;

  // Changes whenever what attend() launches changes (sizes, pointers): part of the DiT's graph key.
  virtual uint64_t layout_version() const = 0;
  virtual int64_t tokens_per_frame() const = 0;
  // Frames a layer holds now (for progress lines), bytes of memory held now (all layers).
  virtual int64_t cached_frames() const = 0;
  virtual int64_t bytes() const = 0;
  virtual std::string describe() const = 0;

  // Statistics and an end-of-run report through the seam, as CrossFrameMemory's (memory_stats.h).
  // May synchronize the device (counters are copied back).
  virtual MemoryStats summary() const {
    MemoryStats s;
    s.bytes = bytes();
    s.cached_frames = cached_frames();
    return s;
  }
  virtual std::string report() const { return ""; }
};

// A process-wide counter for layout versions, so that two memories never share one.
uint64_t next_memory_layout_version();

}  // namespace fastar::cuda
