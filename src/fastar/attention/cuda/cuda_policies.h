// Builds the GPU cross-frame memory for a policy (the GPU twin of the policy choice in
// `fastar generate`): dense | window (sink + window) | tempcache (optionally bounded by window/sink)
// | arl2 (hybrid layers; the others dense, or window when window >= 0); "+annsa" after dense, window or
// tempcache wraps it in AnnSA (spec.annsa); and the cross-attention policy (AnnCA, spec.annca).
#pragma once

#include <memory>
#include <string>

#include "fastar/attention/ann_cross_attention.h"
#include "fastar/attention/ann_self_attention.h"
#include "fastar/attention/tempcache.h"
#include "fastar/model/cuda/cuda_cross_attention.h"
#include "fastar/model/cuda/cuda_memory.h"
#include "fastar/model/wan_dit.h"

namespace fastar::cuda {

struct CudaPolicySpec {
  std::string policy = "dense";
  int64_t window = -1;            // window (and arl2's inner, tempcache's bound): recent latent frames; −1 = none
  int64_t sink = 0;
  TempCacheOptions tempcache;     // policy "tempcache"
  int64_t tempcache_capacity = 0; // representatives per head per layer; 0 = enough for the whole run without merges
  AnnSaOptions annsa;             // policy "<base>+annsa" (dense, window or tempcache + AnnSA, annsa_memory_cuda.h)
  bool annca = false;             // AnnCA as the cross-attention (annca_cuda.h), with these options
  AnnCaOptions annca_options;
};

// tokens_per_frame, chunk_frames (token-frames per call) and total_frames (token-frames of the whole
// run) size the preallocated memory. Throws fastar::Error for unknown policies, unsupported options or
// memory that does not fit (saying which option lowers it).
std::unique_ptr<CudaCrossFrameMemory> make_cuda_memory(const WanModel& model, const CudaPolicySpec& spec,
                                                       int64_t tokens_per_frame, int64_t chunk_frames, int64_t total_frames);

// The cross-attention policy: AnnCA when spec.annca, else nullptr (dense over the prompt). Throws
// fastar::Error for options the GPU path lacks. Give it to CudaWanModel::set_cross_attention.
std::unique_ptr<CudaCrossAttentionPolicy> make_cuda_cross_attention(const WanModel& model, const CudaPolicySpec& spec,
                                                                   int64_t tokens_per_frame, int64_t chunk_frames);

// The end-of-run density tables of the GPU ANN modules: AnnSA (when `memory` is one) and AnnCA (when
// `cross` is one); "" when neither. Synchronizes the device.
std::string cuda_ann_report(const CudaCrossFrameMemory& memory, const CudaCrossAttentionPolicy* cross);

}  // namespace fastar::cuda
