// The world's random numbers: SplitMix64 streams, fully specified so that the same (seed, stream)
// gives the same values on every platform and compiler (std::*_distribution is implementation-defined).
#pragma once

#include <cstdint>

namespace fastar::world {

// One SplitMix64 output step (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A reproducible stream of numbers, keyed by a seed and a stream id (e.g. "object 2", "actions").
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : state_(mix64(seed ^ mix64(stream + 0x5EEDull))) {}

  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [lo, hi] (inclusive); the tiny modulo bias is irrelevant here.
  int64_t integer(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool chance(double p) { return uniform() < p; }

 private:
  uint64_t state_;
};

// Stream ids of the world's random decisions (kept apart so that, e.g., adding an object to a
// prompt does not move the others).
enum Stream : uint64_t {
  kStreamPrompt = 1,
  kStreamActions = 2,
  kStreamBackground = 3,
  kStreamPlayer = 4,
  kStreamObject0 = 16,  // + object index
};

}  // namespace fastar::world
