// Locality-sensitive hashing for the ANN toolkit of FAST-AR (papers.md §1.3), shared by TempCache,
// AnnCA and AnnSA.
//
// Signed random projections: table t has `bits` Gaussian directions r[t][b] ∈ R^dim; the code of a
// row x in table t is Σ_b [r[t][b]·x ≥ 0] · 2^b, a bucket id in [0, 2^bits). Two rows at angle θ
// agree on one bit with probability 1 − θ/π, so rows of high cosine similarity share buckets.
// Several independent tables (and optionally multi-probe, visiting the buckets one bit flip away)
// raise the chance that true neighbours meet in at least one bucket.
//
// Pieces:
//   LshHasher   the seeded projections and hash();
//   LshBuckets  a CSR bucket table over a fixed set of hashed rows (rebuilt when the rows change);
//   lsh_candidates / lsh_top1   candidate retrieval, and top-1 with exact re-ranking of the
//               candidates (dot product or cosine), never forming the full Q·Kᵀ.
// Everything is deterministic for a given seed (no dependence on thread count).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace fastar {

struct LshParams {
  int64_t dim = 0;     // length of the hashed rows (> 0)
  int tables = 4;      // independent hash tables (1..64)
  int bits = 8;        // sign bits per table (1..24); buckets per table = 2^bits
  uint64_t seed = 0;   // seeds the Gaussian projections
};

class LshHasher {
 public:
  // Draws the projections [tables, bits, dim] from a seeded normal distribution. Throws
  // fastar::Error on dim <= 0 or tables/bits out of range.
  explicit LshHasher(const LshParams& params);

  // codes[row · tables() + t] = bucket id in [0, 2^bits) of row x[row·row_stride .. +dim) in table t.
  // x: [rows, row_stride] floats (row_stride >= dim); codes: [rows, tables]. Threads over rows.
  void hash(const float* x, int64_t rows, int64_t row_stride, uint32_t* codes) const;

  int tables() const { return params_.tables; }
  int bits() const { return params_.bits; }
  int64_t dim() const { return params_.dim; }
  uint64_t seed() const { return params_.seed; }
  const float* projections() const { return projections_.data(); }  // [tables, bits, dim]

 private:
  LshParams params_;
  std::vector<float> projections_;
};

// CSR bucket tables of a set of hashed rows: for table t and bucket b, the row ids whose code is b.
// Memory: tables · (2^bits + 1) offsets + tables · rows ids.
class LshBuckets {
 public:
  // codes: [rows, tables] as written by LshHasher::hash (every code < 2^bits).
  // Order inside a bucket: without `priority`, row ids ascending; with priority ([rows]), the
  // preferred rows first = priority descending, ties → the higher row id first. A per-bucket
  // candidate cap (LshSearchOptions::max_candidates_per_bucket) keeps the first entries of a bucket,
  // so the priority says which rows survive a crowded bucket (TempCache: the representative's frame,
  // i.e. the newest representatives).
  void build(const uint32_t* codes, int64_t rows, int tables, int bits, std::span<const int64_t> priority = {});

  // Row ids in bucket `bucket` of table `table`, in the order above.
  std::span<const int32_t> bucket(int table, uint32_t bucket) const;

  int64_t rows() const { return rows_; }
  int tables() const { return tables_; }
  int bits() const { return bits_; }

 private:
  int64_t rows_ = 0;
  int tables_ = 0;
  int bits_ = 0;
  std::vector<int32_t> offsets_;  // [tables, 2^bits + 1]
  std::vector<int32_t> ids_;      // [tables, rows]
};

// Candidates of one query: the union over tables of the rows in the query's bucket, plus, with
// multi_probe = 1, the rows of the `bits` buckets one bit flip away in each table. Sorted ascending,
// unique. With max_per_bucket > 0 only the first max_per_bucket rows of each probed bucket are taken
// (LshBuckets' order), so a query has at most tables · (1 + bits·multi_probe) · max_per_bucket
// candidates however crowded the buckets are; 0 = every row. query_codes: [tables]. `seen` is scratch
// of at least buckets.rows() bytes, all zero on entry and on return.
void lsh_candidates(const LshBuckets& buckets, const uint32_t* query_codes, int multi_probe,
                    std::vector<int32_t>* out, std::vector<uint8_t>* seen, int64_t max_per_bucket = 0);

enum class SimilarityMetric {
  dot,     // x·y
  cosine,  // x·y / (|x|·|y|); a zero row has similarity 0 with everything
};

struct LshSearchOptions {
  int multi_probe = 0;                            // 0: own bucket only; 1: also one-bit-flip buckets
  int64_t max_candidates_per_bucket = 0;          // > 0: re-rank at most this many rows of each probed
                                                  // bucket (the first, LshBuckets' order); 0 = all
  SimilarityMetric metric = SimilarityMetric::cosine;
};

// Approximate top-1: for each query row i, best[i] = the candidate database row (lsh_candidates) of
// the highest exact similarity (ties → lowest index), score[i] its similarity; best[i] = −1 and
// score[i] = −inf when no candidate shares a bucket.
// queries: [q_rows, q_stride], database: [buckets.rows(), db_stride], both rows of hasher.dim()
// floats; query_codes: [q_rows, tables] (hasher.hash of the queries). Threads over queries.
void lsh_top1(const LshBuckets& buckets, const uint32_t* query_codes, const float* queries, int64_t q_rows,
              int64_t q_stride, const float* database, int64_t db_stride, int64_t dim,
              const LshSearchOptions& options, int32_t* best, float* score);

// Exact top-1 by brute force (the reference for tests and the recall diagnostic), same contract as
// lsh_top1 with every database row a candidate.
void brute_force_top1(const float* queries, int64_t q_rows, int64_t q_stride, const float* database,
                      int64_t db_rows, int64_t db_stride, int64_t dim, SimilarityMetric metric, int32_t* best,
                      float* score);

}  // namespace fastar
