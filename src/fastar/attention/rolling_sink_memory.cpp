#include "fastar/attention/rolling_sink_memory.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"
#include "fastar/kernels/cpu/rope_shift.h"

namespace fastar {

RollingSinkMemory::RollingSinkMemory(int64_t layers, int64_t heads, int64_t head_dim, int64_t sink_frames,
                                     int64_t cap_frames, int64_t max_attention_frames)
    : heads_(heads),
      head_dim_(head_dim),
      sink_frames_(sink_frames),
      cap_frames_(cap_frames),
      max_attention_frames_(max_attention_frames),
      layers_(static_cast<size_t>(layers)) {
  FASTAR_CHECK(sink_frames >= 0, "rolling memory: sink frames must be >= 0, got " << sink_frames);
  FASTAR_CHECK(cap_frames >= sink_frames && cap_frames > 0,
               "rolling memory: cap (" << cap_frames << " frames) must be positive and hold the sink (" << sink_frames
                                       << " frames)");
  FASTAR_CHECK(max_attention_frames > 0,
               "rolling memory: max attention must be positive, got " << max_attention_frames << " frames");
}

void RollingSinkMemory::check_call(const MemoryCall& call) const {
  FASTAR_CHECK(call.num_frames > 0 && call.tokens_per_frame > 0, "rolling memory: empty call");
  FASTAR_CHECK(tokens_per_frame_ == 0 || tokens_per_frame_ == call.tokens_per_frame,
               "rolling memory: " << call.tokens_per_frame << " tokens per frame after " << tokens_per_frame_);
}

RollingSinkMemory::Selection RollingSinkMemory::select(const Layer& layer, const MemoryCall& call) const {
  Selection s;
  // Only frames before this call are context; a held frame at or after frame_start is one this
  // call overwrites (the reference's "slot being written").
  while (s.sink_end < static_cast<int64_t>(layer.sink.size()) &&
         layer.sink[static_cast<size_t>(s.sink_end)].id < call.frame_start)
    ++s.sink_end;
  std::vector<int64_t> eligible;
  for (size_t i = 0; i < layer.working.size(); ++i)
    if (layer.working[i].id < call.frame_start) eligible.push_back(static_cast<int64_t>(i));
  const int64_t n = call.num_frames;

  if (!call.commit) {
    const int64_t budget = max_attention_frames_ - n - s.sink_end;
    FASTAR_CHECK(budget >= 0, "rolling memory: a call of " << n << " frames plus the " << s.sink_end
                                                            << "-frame sink exceeds max attention of "
                                                            << max_attention_frames_ << " frames");
    const int64_t keep = std::min<int64_t>(budget, static_cast<int64_t>(eligible.size()));
    s.working.assign(eligible.end() - keep, eligible.end());
    if (s.sink_end > 0) {
      const int64_t after = s.working.empty() ? call.frame_start : layer.working[static_cast<size_t>(s.working.front())].id;
      s.sink_shift = (after - s.sink_end) - layer.sink.front().id;
    }
    return s;
  }

  // Commit: the reference first evicts to make room for this call within the cap (sink pinned),
  // then reads the last max_attention frames of [cache + this call] with everything at its
  // stored position.
  FASTAR_CHECK(n <= max_attention_frames_, "rolling memory: a commit of " << n << " frames exceeds max attention of "
                                                                           << max_attention_frames_ << " frames");
  size_t first = 0;
  while (first < eligible.size() && s.sink_end + static_cast<int64_t>(eligible.size() - first) + n > cap_frames_) ++first;
  int64_t total = s.sink_end + static_cast<int64_t>(eligible.size() - first) + n;
  while (total > max_attention_frames_ && s.sink_begin < s.sink_end) ++s.sink_begin, --total;
  while (total > max_attention_frames_ && first < eligible.size()) ++first, --total;
  s.working.assign(eligible.begin() + static_cast<std::ptrdiff_t>(first), eligible.end());
  return s;
}

RollingSinkMemory::Plan RollingSinkMemory::plan(int64_t layer, const MemoryCall& call) const {
  const Layer& l = layers_[static_cast<size_t>(layer)];
  const Selection s = select(l, call);
  Plan p;
  for (int64_t i = s.sink_begin; i < s.sink_end; ++i) {
    const int64_t id = l.sink[static_cast<size_t>(i)].id;
    p.frame_ids.push_back(id);
    p.positions.push_back(id + s.sink_shift);
    p.is_sink.push_back(true);
  }
  for (int64_t i : s.working) {
    const int64_t id = l.working[static_cast<size_t>(i)].id;
    p.frame_ids.push_back(id);
    p.positions.push_back(id);
    p.is_sink.push_back(false);
  }
  return p;
}

std::vector<float> RollingSinkMemory::presented_keys(int64_t layer, const MemoryCall& call) const {
  const Layer& l = layers_[static_cast<size_t>(layer)];
  const Selection s = select(l, call);
  const int64_t row = heads_ * head_dim_;
  std::vector<float> out;
  for (int64_t i = s.sink_begin; i < s.sink_end; ++i) {
    const auto& k = l.sink[static_cast<size_t>(i)].k;
    out.insert(out.end(), k.begin(), k.end());
  }
  const int64_t sink_tokens = static_cast<int64_t>(out.size()) / row;
  cpu::rope_time_shift(out.data(), row, sink_tokens, heads_, head_dim_, s.sink_shift);
  for (int64_t i : s.working) {
    const auto& k = l.working[static_cast<size_t>(i)].k;
    out.insert(out.end(), k.begin(), k.end());
  }
  return out;
}

void RollingSinkMemory::attend(int64_t layer_index, const MemoryCall& call, const float* q, const float* k,
                               const float* v, float* out) {
  check_call(call);
  tokens_per_frame_ = call.tokens_per_frame;
  Layer& layer = layers_[static_cast<size_t>(layer_index)];
  const Selection s = select(layer, call);
  const int64_t row = heads_ * head_dim_;
  const int64_t tpf = call.tokens_per_frame;
  const int64_t frame_elems = tpf * row;
  const int64_t memory_frames = (s.sink_end - s.sink_begin) + static_cast<int64_t>(s.working.size());
  const int64_t kv_frames = memory_frames + call.num_frames;
  const size_t needed = static_cast<size_t>(kv_frames * frame_elems);
  if (k_scratch_.size() < needed) {
    k_scratch_.resize(needed);
    v_scratch_.resize(needed);
  }
  // [sink (re-positioned), working, this call] contiguous, as FrameKvStore lays out [cache, call].
  float* kp = k_scratch_.data();
  float* vp = v_scratch_.data();
  for (int64_t i = s.sink_begin; i < s.sink_end; ++i) {
    const Frame& f = layer.sink[static_cast<size_t>(i)];
    std::memcpy(kp, f.k.data(), static_cast<size_t>(frame_elems) * sizeof(float));
    std::memcpy(vp, f.v.data(), static_cast<size_t>(frame_elems) * sizeof(float));
    kp += frame_elems;
    vp += frame_elems;
  }
  cpu::rope_time_shift(k_scratch_.data(), row, (s.sink_end - s.sink_begin) * tpf, heads_, head_dim_, s.sink_shift);
  for (int64_t i : s.working) {
    const Frame& f = layer.working[static_cast<size_t>(i)];
    std::memcpy(kp, f.k.data(), static_cast<size_t>(frame_elems) * sizeof(float));
    std::memcpy(vp, f.v.data(), static_cast<size_t>(frame_elems) * sizeof(float));
    kp += frame_elems;
    vp += frame_elems;
  }
  const int64_t q_tokens = call.num_frames * tpf;
  std::memcpy(kp, k, static_cast<size_t>(q_tokens * row) * sizeof(float));
  std::memcpy(vp, v, static_cast<size_t>(q_tokens * row) * sizeof(float));

  const AttentionParams p = packed_attention_params(q, k_scratch_.data(), v_scratch_.data(), out, q_tokens, kv_frames * tpf, heads_, head_dim_);
  cpu::attention_forward(p);
  last_attention_frames_ = kv_frames;
  max_attention_frames_seen_ = std::max(max_attention_frames_seen_, kv_frames);

  if (!call.commit) return;
  // Replace anything held at or after frame_start, append the call, evict to the cap.
  while (!layer.working.empty() && layer.working.back().id >= call.frame_start) layer.working.pop_back();
  if (layer.working.empty())
    while (!layer.sink.empty() && layer.sink.back().id >= call.frame_start) layer.sink.pop_back();
  for (int64_t f = 0; f < call.num_frames; ++f) {
    Frame frame;
    frame.id = call.frame_start + f;
    frame.k.assign(k + f * frame_elems, k + (f + 1) * frame_elems);
    frame.v.assign(v + f * frame_elems, v + (f + 1) * frame_elems);
    if (static_cast<int64_t>(layer.sink.size()) < sink_frames_ && layer.working.empty())
      layer.sink.push_back(std::move(frame));
    else
      layer.working.push_back(std::move(frame));
  }
  while (!layer.working.empty() &&
         static_cast<int64_t>(layer.sink.size() + layer.working.size()) > cap_frames_)
    layer.working.pop_front();
  FASTAR_CHECK(static_cast<int64_t>(layer.sink.size() + layer.working.size()) <= cap_frames_,
               "rolling memory: a commit of " << call.num_frames << " frames does not fit the cap of " << cap_frames_
                                               << " frames beside the sink");
}

int64_t RollingSinkMemory::cached_frames(int64_t layer) const {
  const Layer& l = layers_[static_cast<size_t>(layer)];
  return static_cast<int64_t>(l.sink.size() + l.working.size());
}

std::vector<int64_t> RollingSinkMemory::frame_ids(int64_t layer) const {
  const Layer& l = layers_[static_cast<size_t>(layer)];
  std::vector<int64_t> ids;
  for (const Frame& f : l.sink) ids.push_back(f.id);
  for (const Frame& f : l.working) ids.push_back(f.id);
  return ids;
}

int64_t RollingSinkMemory::bytes() const {
  int64_t total = 0;
  for (const Layer& l : layers_) {
    for (const Frame& f : l.sink) total += static_cast<int64_t>((f.k.size() + f.v.size()) * sizeof(float));
    for (const Frame& f : l.working) total += static_cast<int64_t>((f.k.size() + f.v.size()) * sizeof(float));
  }
  return total;
}

std::string RollingSinkMemory::describe() const {
  std::ostringstream out;
  out << "rolling sink (" << sink_frames_ << " sink frames, cap " << cap_frames_ << " frames, attention <= "
      << max_attention_frames_ << " frames)";
  return out.str();
}

}  // namespace fastar
