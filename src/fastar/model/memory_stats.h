// What a memory seam reports about itself (docs/design.md, "the seam"): one struct for the CPU and
// the GPU seams, the cross-frame memory and the cross-attention policy alike, so that statistics
// leave a policy through the seam and never through a cast to its concrete class.
#pragma once

#include <cstdint>

namespace fastar {

struct MemoryStats {
  int64_t bytes = 0;          // memory the policy holds now (KV rows, representatives, recurrent states)
  int64_t cached_frames = 0;  // frames a layer holds now (for progress lines)
  // TempCache (FAST-AR §5.2): cached tokens / dense tokens, and merges so far; −1 = not a TempCache policy.
  double kv_density = -1;
  int64_t merges = -1;
  // Sparse attention (AnnSA on the self-attention seam, AnnCA on the cross-attention seam): executed /
  // dense query–key products and the kept share of the dense softmax mass; −1 = not measured / not sparse.
  double density = -1;
  double recall = -1;
  // AnnCA's density / recall when a Session merges its cross-attention seam into its memory's stats.
  double cross_density = -1;
  double cross_recall = -1;
};

}  // namespace fastar
