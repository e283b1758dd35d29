// One layer's cached keys and values, frame by frame, in one contiguous buffer so attention runs
// over [cached frames + current chunk] without gathering. Policies (dense, window, ...) decide
// what to keep; this class only stores, appends and erases whole frames.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

namespace fastar {

class FrameKvStore {
 public:
  FrameKvStore(int64_t heads, int64_t head_dim) : heads_(heads), head_dim_(head_dim) {}

  // Softmax attention of q over [cached keys + this chunk's keys]; the chunk is staged in the
  // buffer's tail (not kept unless commit_staged() follows). q/k/v/out: [tokens, heads·head_dim].
  // out == nullptr stages the chunk without computing attention.
  void attend(const float* q, const float* k, const float* v, int64_t tokens, float* out);
  // Keeps the chunk staged by the last attend() as frames [frame_start, frame_start + frames).
  void commit_staged(int64_t frame_start, int64_t frames, int64_t tokens_per_frame);
  // Erases cached frame number `index` (0 = oldest kept), shifting the later ones down.
  void erase_frame(int64_t index);

  int64_t frames() const { return static_cast<int64_t>(frame_ids_.size()); }
  const std::deque<int64_t>& frame_ids() const { return frame_ids_; }  // global frame index of each kept frame
  int64_t tokens() const { return tokens_; }
  const float* keys() const { return k_.data(); }    // [tokens(), heads·head_dim], committed frames in order
  const float* values() const { return v_.data(); }  // [tokens(), heads·head_dim]
  int64_t bytes() const { return 2 * tokens_ * heads_ * head_dim_ * static_cast<int64_t>(sizeof(float)); }

 private:
  int64_t heads_, head_dim_;
  std::vector<float> k_, v_;          // [capacity tokens, heads·head_dim]
  int64_t tokens_ = 0;                // committed tokens at the front
  int64_t staged_tokens_ = 0;         // tokens staged behind them by the last attend()
  std::deque<int64_t> frame_ids_;
  std::deque<int64_t> frame_tokens_;  // tokens of each kept frame
};

}  // namespace fastar
