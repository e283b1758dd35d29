#include "fastar/attention/bucket_block_plan.h"

#include <algorithm>

#include "fastar/core/error.h"

namespace fastar {

void bucket_sort(const uint32_t* labels, int64_t rows, int64_t label_stride, uint32_t num_buckets, BucketOrder* out) {
  FASTAR_ASSERT(rows >= 0 && rows < (int64_t{1} << 31) && num_buckets > 0, "bucket_sort: bad sizes");
  out->offsets.assign(static_cast<size_t>(num_buckets) + 1, 0);
  for (int64_t r = 0; r < rows; ++r) {
    const uint32_t b = labels[r * label_stride];
    FASTAR_CHECK(b < num_buckets, "bucket_sort: row " << r << " has bucket " << b << " but there are only "
                                                      << num_buckets << " buckets");
    ++out->offsets[b + 1];
  }
  for (uint32_t b = 0; b < num_buckets; ++b) out->offsets[b + 1] += out->offsets[b];
  out->order.resize(static_cast<size_t>(rows));
  std::vector<int32_t> next(out->offsets.begin(), out->offsets.end() - 1);
  for (int64_t r = 0; r < rows; ++r) out->order[static_cast<size_t>(next[labels[r * label_stride]]++)] = static_cast<int32_t>(r);
}

void bucket_block_plan(const int32_t* q_offsets, const int32_t* k_offsets, uint32_t num_buckets, int64_t block_q,
                       int64_t block_k, BucketBlockPlan* out) {
  const KeySegmentOffsets one{k_offsets, 0};
  bucket_block_plan(q_offsets, &one, 1, num_buckets, block_q, block_k, out);
}

void bucket_block_plan(const int32_t* q_offsets, const KeySegmentOffsets* segments, int num_segments,
                       uint32_t num_buckets, int64_t block_q, int64_t block_k, BucketBlockPlan* out) {
  FASTAR_ASSERT(block_q > 0 && block_k > 0 && num_buckets > 0 && num_segments >= 1, "bucket_block_plan: bad sizes");
  for (int s = 1; s < num_segments; ++s) {
    const int64_t prev_rows = segments[s - 1].offsets[num_buckets];
    FASTAR_ASSERT(segments[s].first_block >= segments[s - 1].first_block + (prev_rows + block_k - 1) / block_k,
                  "bucket_block_plan: key segment " << s << " overlaps the one before");
  }
  const int64_t q_rows = q_offsets[num_buckets];
  const int64_t q_blocks = (q_rows + block_q - 1) / block_q;
  out->block_q = block_q;
  out->block_k = block_k;
  out->block_offsets.assign(1, 0);
  out->block_index.clear();
  out->executed_pairs = 0;
  out->bucket_pairs = 0;
  for (int s = 0; s < num_segments; ++s)
    for (uint32_t b = 0; b < num_buckets; ++b)
      out->bucket_pairs +=
          int64_t{q_offsets[b + 1] - q_offsets[b]} * (segments[s].offsets[b + 1] - segments[s].offsets[b]);

  uint32_t first_bucket = 0;  // the bucket holding the first row of the current query block
  for (int64_t qb = 0; qb < q_blocks; ++qb) {
    const int64_t row_begin = qb * block_q, row_end = std::min(q_rows, row_begin + block_q);
    while (q_offsets[first_bucket + 1] <= row_begin) ++first_bucket;
    const size_t list_begin = out->block_index.size();
    // Per segment, buckets overlap the block in increasing order and their key ranges increase too,
    // so the key blocks come out ascending; only the last one can repeat. Segments follow each other.
    for (int s = 0; s < num_segments; ++s) {
      const int32_t* k_offsets = segments[s].offsets;
      const int64_t k_rows = k_offsets[num_buckets], base = segments[s].first_block;
      for (uint32_t b = first_bucket; b < num_buckets && q_offsets[b] < row_end; ++b) {
        if (q_offsets[b + 1] <= row_begin || q_offsets[b] == q_offsets[b + 1] || k_offsets[b] == k_offsets[b + 1]) continue;
        const int64_t kb_first = k_offsets[b] / block_k, kb_last = (k_offsets[b + 1] - 1) / block_k;
        for (int64_t kb = kb_first; kb <= kb_last; ++kb) {
          if (out->block_index.size() != list_begin && out->block_index.back() >= base + kb) continue;
          out->block_index.push_back(static_cast<int32_t>(base + kb));
          out->executed_pairs += (row_end - row_begin) * (std::min(k_rows, (kb + 1) * block_k) - kb * block_k);
        }
      }
    }
    out->block_offsets.push_back(static_cast<int32_t>(out->block_index.size()));
  }
}

}  // namespace fastar
