// Seeded Gaussian noise from a counter-based generator (Philox-4x32-10), so that the value at
// (seed, stream, index) is the same on any backend, thread count or chunk order: CUDA frames can
// be compared with CPU frames, and a rollout can be resumed from any chunk.
#pragma once

#include <cstdint>

namespace fastar {

// out[i] = N(0, 1) sample number i of `stream` under `seed`, for i in [0, count).
void gaussian_noise(float* out, int64_t count, uint64_t seed, uint64_t stream);

}  // namespace fastar
