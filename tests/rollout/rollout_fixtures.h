// Fixtures shared by the rollout tests: a tiny Wan config and seeded random tensors.
#pragma once

#include <cstring>

#include "fastar/core/tensor.h"
#include "fastar/model/wan_config.h"
#include "test_util.h"

namespace fastar::testing {

inline WanConfig tiny_config() {
  WanConfig c;
  c.dim = 64;
  c.num_heads = 2;  // head dim 32: RoPE pairs split 6 / 5 / 5
  c.num_layers = 2;
  c.ffn_dim = 128;
  c.in_dim = c.out_dim = 4;
  c.text_dim = 16;
  c.text_len = 8;
  c.validate("tiny");
  return c;
}

inline Tensor random_tensor(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::zeros(shape);
  auto values = random_normal(t.numel(), seed);
  std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
  return t;
}

}  // namespace fastar::testing
