// The prompt-induced bucket of each latent token, handed from AnnCA to AnnSA (papers.md §1.6,
// reading A: "reusing the semantic buckets discovered during cross-attention pruning").
//
// AnnCA publishes, for every frame it processes at a layer, the bucket label of each token's
// cross-attention query per head; AnnSA reads the labels of the frames of its call at the same
// layer. Within one forward a layer's self-attention runs before its cross-attention, so AnnSA sees
// the labels of the latest earlier forward over the same frames (the previous denoising step, or
// the last step before the clean pass); the first steps of a chunk have none and run dense, which
// the dense phase of the schedule (sparse_schedule.h) covers anyway.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace fastar {

class PromptBucketBoard {
 public:
  // num_labels: labels are in [0, num_labels).
  explicit PromptBucketBoard(uint32_t num_labels = 0) : num_labels_(num_labels) {}
  void set_num_labels(uint32_t num_labels) { num_labels_ = num_labels; }
  uint32_t num_labels() const { return num_labels_; }

  // labels: [tokens_per_frame, heads] of global frame `frame` at `layer`. Forgets this layer's
  // frames before `oldest_needed` (the calls only move forward in time).
  void publish(int64_t layer, int64_t frame, int64_t oldest_needed, int64_t tokens_per_frame, int64_t heads,
               const uint32_t* labels);

  // [tokens_per_frame, heads] labels of `frame` at `layer`, or nullptr when none were published
  // with that shape.
  const uint32_t* frame_labels(int64_t layer, int64_t frame, int64_t tokens_per_frame, int64_t heads) const;

 private:
  struct Entry {
    int64_t tokens_per_frame = 0, heads = 0;
    std::vector<uint32_t> labels;
  };
  uint32_t num_labels_;
  std::map<std::pair<int64_t, int64_t>, Entry> entries_;  // (layer, frame) → labels
};

}  // namespace fastar
