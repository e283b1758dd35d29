#include "fastar/attention/kv_policies.h"

#include <sstream>

#include "fastar/core/error.h"

namespace fastar {

DenseMemory::DenseMemory(int64_t layers, int64_t heads, int64_t head_dim) : heads_(heads), head_dim_(head_dim) {
  stores_.reserve(static_cast<size_t>(layers));
  for (int64_t i = 0; i < layers; ++i) stores_.emplace_back(heads, head_dim);
}

void DenseMemory::attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v,
                         float* out) {
  FrameKvStore& store = stores_[static_cast<size_t>(layer)];
  store.attend(q, k, v, call.num_frames * call.tokens_per_frame, out);
  if (call.commit) store.commit_staged(call.frame_start, call.num_frames, call.tokens_per_frame);
}

int64_t DenseMemory::cached_frames(int64_t layer) const { return stores_[static_cast<size_t>(layer)].frames(); }

int64_t DenseMemory::bytes() const {
  int64_t total = 0;
  for (const FrameKvStore& store : stores_) total += store.bytes();
  return total;
}

std::string DenseMemory::describe() const { return "dense (all frames)"; }

bool DenseMemory::cached_kv(int64_t layer, int64_t head, CachedKvHead* out) const {
  const FrameKvStore& store = stores_[static_cast<size_t>(layer)];
  out->k = store.keys() + head * head_dim_;
  out->v = store.values() + head * head_dim_;
  out->k_row_stride = out->v_row_stride = heads_ * head_dim_;
  out->key_bias = nullptr;
  out->tokens = store.tokens();
  return true;
}

WindowMemory::WindowMemory(int64_t layers, int64_t heads, int64_t head_dim, int64_t window, int64_t sink)
    : DenseMemory(layers, heads, head_dim), window_(window), sink_(sink) {
  FASTAR_CHECK(window >= 0 && sink >= 0, "window policy: --window and --sink must be >= 0 (got " << window << ", "
                                                                                               << sink << ")");
}

void WindowMemory::attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v,
                          float* out) {
  DenseMemory::attend(layer, call, q, k, v, out);
  if (!call.commit) return;
  FrameKvStore& store = stores_[static_cast<size_t>(layer)];
  // The sink is the first S frames ever committed; they sit at the front and are never evicted.
  while (store.frames() > sink_ + window_) {
    const int64_t pinned = std::min<int64_t>(sink_, store.frames());
    store.erase_frame(pinned);  // the oldest frame after the sink
  }
}

std::string WindowMemory::describe() const {
  std::ostringstream out;
  out << "window (last " << window_ << " frames + " << sink_ << " sink frames)";
  return out.str();
}

}  // namespace fastar
