// bf16 test data shared by the GPU check programs (tests/cuda/*): bf16-exact random floats (so the CPU
// reference and the GPU see the same numbers), conversions, and a bf16 device copy of float data.
#pragma once

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "check_util.h"
#include "fastar/core/dtype.h"

// count normal(0, scale) floats, each rounded to bf16.
inline std::vector<float> random_bf16(size_t count, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(count);
  for (float& e : x) e = fastar::round_to_bf16(normal(rng));
  return x;
}

inline std::vector<uint16_t> to_bf16(const std::vector<float>& x) {
  std::vector<uint16_t> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = fastar::f32_to_bf16(x[i]);
  return out;
}

inline std::vector<float> from_bf16(const std::vector<uint16_t>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = fastar::bf16_to_f32(x[i]);
  return out;
}

// A bf16 device copy of float data.
struct DeviceBf16 {
  DeviceBuffer<uint16_t> buf;
  explicit DeviceBf16(const std::vector<float>& x) : buf(to_bf16(x)) {}
  explicit DeviceBf16(size_t n) : buf(n) {}
  __nv_bfloat16* get() const { return reinterpret_cast<__nv_bfloat16*>(buf.ptr); }
  std::vector<float> download() const { return from_bf16(buf.download()); }
};

inline double max_abs(const std::vector<float>& x) {
  double m = 0;
  for (float e : x) m = std::max(m, static_cast<double>(std::fabs(e)));
  return m;
}
