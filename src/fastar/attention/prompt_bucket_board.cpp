#include "fastar/attention/prompt_bucket_board.h"

#include "fastar/core/error.h"

namespace fastar {

void PromptBucketBoard::publish(int64_t layer, int64_t frame, int64_t oldest_needed, int64_t tokens_per_frame,
                                int64_t heads, const uint32_t* labels) {
  auto it = entries_.lower_bound({layer, INT64_MIN});
  while (it != entries_.end() && it->first.first == layer && it->first.second < oldest_needed) it = entries_.erase(it);
  Entry& entry = entries_[{layer, frame}];
  entry.tokens_per_frame = tokens_per_frame;
  entry.heads = heads;
  entry.labels.assign(labels, labels + tokens_per_frame * heads);
  for (uint32_t label : entry.labels)
    FASTAR_ASSERT(label < num_labels_, "prompt bucket label " << label << " >= " << num_labels_);
}

const uint32_t* PromptBucketBoard::frame_labels(int64_t layer, int64_t frame, int64_t tokens_per_frame,
                                                int64_t heads) const {
  const auto it = entries_.find({layer, frame});
  if (it == entries_.end() || it->second.tokens_per_frame != tokens_per_frame || it->second.heads != heads) return nullptr;
  return it->second.labels.data();
}

}  // namespace fastar
