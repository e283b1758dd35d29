// The statistics of a GPU ANN module (AnnSA, AnnCA): its kernels accumulate the executed and dense
// query–key products per layer in device counters (graph replays included), the host counts the
// sparse and dense calls; this turns both into the CPU modules' SparseStats.
#pragma once

#include <cstdint>
#include <vector>

#include "fastar/attention/sparse_schedule.h"

namespace fastar::cuda {

// counters: device u64 [layers, 2] (executed, dense); sparse_calls/dense_calls: [layers]. Synchronizes the
// device; throws fastar::Error if the copy fails.
SparseStats sparse_stats_from_device(const unsigned long long* counters, const std::vector<int64_t>& sparse_calls,
                                     const std::vector<int64_t>& dense_calls);

}  // namespace fastar::cuda
