// Bucketed attention as block-sparse attention (AnnSA, papers.md §1.6 "Execution"): the pieces the
// CPU and GPU paths share.
//
//   1. bucket_sort:   a stable counting sort of rows by bucket label → a permutation `order` (sorted
//                     position → original row) and each bucket's range of sorted positions;
//   2. bucket_block_plan: with queries and keys each sorted by bucket, the CSR list of key blocks
//                     every query block must visit so that every (query, key) pair of a shared
//                     bucket is computed — AttentionParams' block_offsets / block_index.
//
// Blocks are fixed-size (block_q × block_k, what the kernels accept) and buckets are not padded to
// block boundaries, so a block that straddles two buckets also computes the pairs of neighbouring
// buckets at its edges: the executed pattern is a superset of the bucket pattern (more recall, a
// little more density). BucketBlockPlan counts both so statistics can report either.
#pragma once

#include <cstdint>
#include <vector>

namespace fastar {

struct BucketOrder {
  std::vector<int32_t> order;    // [rows]: order[i] = original row at sorted position i
  std::vector<int32_t> offsets;  // [num_buckets + 1]: bucket b holds sorted positions [offsets[b], offsets[b+1])
};

// labels[row · label_stride] in [0, num_buckets) for row in [0, rows). Rows of one bucket keep
// their original relative order (stable). Throws fastar::Error on a label >= num_buckets.
void bucket_sort(const uint32_t* labels, int64_t rows, int64_t label_stride, uint32_t num_buckets, BucketOrder* out);

struct BucketBlockPlan {
  int64_t block_q = 0, block_k = 0;
  std::vector<int32_t> block_offsets;  // [ceil(q_rows / block_q) + 1]
  std::vector<int32_t> block_index;    // key blocks, ascending within each query block
  int64_t executed_pairs = 0;          // query–key products the blocks compute (clipped to the lengths)
  int64_t bucket_pairs = 0;            // query–key pairs that share a bucket: Σ_b |Q_b|·|K_b|
};

// q_offsets / k_offsets: [num_buckets + 1] bucket ranges of the sorted queries / keys (BucketOrder
// offsets; the same label set on both sides). Query block qb visits key block kb iff some query of
// qb and some key of kb share a bucket. block_q, block_k > 0.
void bucket_block_plan(const int32_t* q_offsets, const int32_t* k_offsets, uint32_t num_buckets, int64_t block_q,
                       int64_t block_k, BucketBlockPlan* out);

// Keys in segments, each sorted by bucket on its own and starting on a key-block boundary: segment s
// holds key rows [first_block·block_k, first_block·block_k + offsets[num_buckets]) (AnnSA with the
// call's own keys bucketed: the cached keys, sorted once per commit, then the chunk's own keys, sorted
// per call; the rows between segments are padding that the attention masks with a −inf bias).
struct KeySegmentOffsets {
  const int32_t* offsets = nullptr;  // [num_buckets + 1] bucket ranges within the segment
  int64_t first_block = 0;           // ≥ the previous segment's first_block + its ⌈rows / block_k⌉
};

// The plan over several key segments: query block qb visits key block kb iff some query of qb and some
// key of kb share a bucket; key blocks ascending per query block; executed_pairs counts each visited
// block's rows of its segment (padding excluded), bucket_pairs Σ_s Σ_b |Q_b|·|K_{s,b}|. One segment at
// first_block 0 is exactly the plan above.
void bucket_block_plan(const int32_t* q_offsets, const KeySegmentOffsets* segments, int num_segments,
                       uint32_t num_buckets, int64_t block_q, int64_t block_k, BucketBlockPlan* out);

}  // namespace fastar
