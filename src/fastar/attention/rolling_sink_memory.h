// Rolling Forcing's cross-frame memory (wan-spec.md §5 "Cache" / "Attention sink"), with the
// reference's hard-coded sizes turned into parameters. All sizes are in token-frames (latent
// frames / patch_t; Wan: patch_t = 1, so latent frames), one frame = tokens_per_frame tokens
// (1560 at 480×832).
//
//   sink_frames S           the first S committed frames, pinned forever.          [RF] 1 block = 3
//   cap_frames C            at most C frames kept (sink included); on commit the   [RF] 24 = 37440 / 1560
//                           oldest non-sink frames are evicted.                         (kv_cache_size)
//   max_attention_frames A  at most A frames of keys per attention.               [RF] 21 = 32760 / 1560
//                                                                                      (max_attention_size)
// The reference's working-cache bound "32760 − Nq − 4680 tokens" is A − n − S frames here
// (n = frames of the current call, 4680 = one 3-frame block = the sink), and its
// `block_length` = 3 is S (the sink and the commit are both one block in [RF]).
//
// Reading (every call), the keys are, in this order:
//   denoising call (commit = false):
//     [sink re-positioned, working cache, this call]
//     working cache = the most recent committed non-sink frames, at most A − n − S of them,
//                     never a frame at or after call.frame_start (frames this call overwrites);
//     the sink is re-roped (rope_time_shift on a scratch copy) so that its last frame sits just
//     before the working cache's first frame (or before call.frame_start when the working cache
//     is empty): presented start = first working frame − S.
//   commit call (the clean context pass):
//     the last A frames of [sink, kept frames (evicted to fit C with this call), this call], the
//     sink at its original position ("re-roped at 0 only if the slice starts at 0": a slice that
//     does not start at the cache's front does not contain the sink at all).
//   Working frames and the call keep their global RoPE positions.
// Committing appends the call's frames (the first S ever committed become the sink; frames at or
// after call.frame_start that are already held are replaced), then evicts to C.
//
// Stored keys are post-RoPE at their original global index (the reference stores the sink
// un-roped and ropes it when read; by RoPE's composition the two agree up to fp32 rounding, and
// exactly when the shift is 0).
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "fastar/model/cross_frame_memory.h"

namespace fastar {

class RollingSinkMemory : public CrossFrameMemory {
 public:
  RollingSinkMemory(int64_t layers, int64_t heads, int64_t head_dim, int64_t sink_frames, int64_t cap_frames,
                    int64_t max_attention_frames);

  void attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v,
              float* out) override;
  int64_t cached_frames(int64_t layer) const override;
  int64_t bytes() const override;
  std::string describe() const override;

  // What a call would attend to, before its own frames: the held frames in key order, the global
  // index each was committed at and the RoPE time position it is presented at.
  struct Plan {
    std::vector<int64_t> frame_ids;
    std::vector<int64_t> positions;
    std::vector<bool> is_sink;
  };
  Plan plan(int64_t layer, const MemoryCall& call) const;
  // The memory keys of `plan(layer, call)` as attention sees them (sink re-roped),
  // [frames · tokens_per_frame, heads · head_dim].
  std::vector<float> presented_keys(int64_t layer, const MemoryCall& call) const;

  // Frame ids held by one layer (sink first, then the rest, oldest first).
  std::vector<int64_t> frame_ids(int64_t layer) const;
  // Key length, in frames, of the last attend() and the largest seen so far.
  int64_t last_attention_frames() const { return last_attention_frames_; }
  int64_t max_attention_frames_seen() const { return max_attention_frames_seen_; }

  int64_t sink_frames() const { return sink_frames_; }
  int64_t cap_frames() const { return cap_frames_; }
  int64_t max_attention_frames() const { return max_attention_frames_; }

 private:
  struct Frame {
    int64_t id = 0;
    std::vector<float> k, v;  // [tokens_per_frame, heads · head_dim]
  };
  struct Layer {
    std::deque<Frame> sink;     // the first sink_frames_ committed frames
    std::deque<Frame> working;  // later committed frames, oldest first
  };
  // Indices into sink / working of the frames a call reads, in key order, and the sink's shift.
  struct Selection {
    int64_t sink_begin = 0, sink_end = 0;        // range in Layer::sink
    std::vector<int64_t> working;                // indices into Layer::working
    int64_t sink_shift = 0;                      // frames added to the sink's RoPE time position
  };
  Selection select(const Layer& layer, const MemoryCall& call) const;
  void check_call(const MemoryCall& call) const;

  int64_t heads_, head_dim_;
  int64_t sink_frames_, cap_frames_, max_attention_frames_;
  int64_t tokens_per_frame_ = 0;  // fixed by the first call
  std::vector<Layer> layers_;
  std::vector<float> k_scratch_, v_scratch_;
  int64_t last_attention_frames_ = 0, max_attention_frames_seen_ = 0;
};

}  // namespace fastar
