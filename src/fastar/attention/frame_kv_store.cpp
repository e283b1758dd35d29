#include "fastar/attention/frame_kv_store.h"

#include <algorithm>
#include <cstring>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"

namespace fastar {

void FrameKvStore::attend(const float* q, const float* k, const float* v, int64_t tokens, float* out) {
  const int64_t row = heads_ * head_dim_;
  const size_t needed = static_cast<size_t>((tokens_ + tokens) * row);
  if (k_.size() < needed) {  // grow geometrically: appends stay amortised O(1)
    const size_t capacity = std::max(needed, k_.size() * 3 / 2);
    k_.resize(capacity);
    v_.resize(capacity);
  }
  std::memcpy(k_.data() + tokens_ * row, k, static_cast<size_t>(tokens * row) * sizeof(float));
  std::memcpy(v_.data() + tokens_ * row, v, static_cast<size_t>(tokens * row) * sizeof(float));
  staged_tokens_ = tokens;
  if (!out) return;

  const AttentionParams p = packed_attention_params(q, k_.data(), v_.data(), out, tokens, tokens_ + tokens, heads_, head_dim_);
  cpu::attention_forward(p);
}

void FrameKvStore::commit_staged(int64_t frame_start, int64_t frames, int64_t tokens_per_frame) {
  FASTAR_ASSERT(staged_tokens_ == frames * tokens_per_frame,
                "commit of " << frames << " frames but " << staged_tokens_ << " tokens staged");
  FASTAR_ASSERT(frame_ids_.empty() || frame_start > frame_ids_.back(),
                "commit of frame " << frame_start << " after frame " << frame_ids_.back());
  for (int64_t f = 0; f < frames; ++f) {
    frame_ids_.push_back(frame_start + f);
    frame_tokens_.push_back(tokens_per_frame);
  }
  tokens_ += staged_tokens_;
  staged_tokens_ = 0;
}

void FrameKvStore::erase_frame(int64_t index) {
  FASTAR_ASSERT(index >= 0 && index < frames(), "erase_frame " << index << " of " << frames());
  const int64_t row = heads_ * head_dim_;
  int64_t begin = 0;
  for (int64_t i = 0; i < index; ++i) begin += frame_tokens_[static_cast<size_t>(i)];
  const int64_t count = frame_tokens_[static_cast<size_t>(index)];
  const int64_t tail = tokens_ - begin - count;
  std::memmove(k_.data() + begin * row, k_.data() + (begin + count) * row, static_cast<size_t>(tail * row) * sizeof(float));
  std::memmove(v_.data() + begin * row, v_.data() + (begin + count) * row, static_cast<size_t>(tail * row) * sizeof(float));
  tokens_ -= count;
  staged_tokens_ = 0;
  frame_ids_.erase(frame_ids_.begin() + index);
  frame_tokens_.erase(frame_tokens_.begin() + index);
}

}  // namespace fastar
