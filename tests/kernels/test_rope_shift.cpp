// rope_time_shift against rope_3d_forward: shifting keys roped at time position p by δ must give
// the keys roped at p + δ (RoPE composes), on the time pairs only.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "fastar/kernels/cpu/ops.h"
#include "fastar/kernels/cpu/rope_shift.h"
#include "test_util.h"

namespace fastar {
namespace {

using testing::kF32AbsTol;
using testing::kF32RelTol;
using testing::max_scaled_error;
using testing::random_normal;

// Keys roped at frame p by rope_3d_forward.
std::vector<float> roped(const std::vector<float>& raw, int64_t frames, int64_t h, int64_t w, int64_t p, int64_t heads,
                         int64_t head_dim) {
  std::vector<float> out = raw;
  cpu::rope_3d_forward(out.data(), heads * head_dim, frames, h, w, p, heads, head_dim);
  return out;
}

double error(const std::vector<float>& actual, const std::vector<float>& expected) {
  return max_scaled_error(actual.data(), testing::to_double(expected).data(), static_cast<int64_t>(actual.size()),
                          kF32RelTol, kF32AbsTol);
}

struct Case {
  int64_t head_dim, p, delta;
};

TEST(RopeShift, ShiftOfRopeAtPEqualsRopeAtPPlusDelta) {
  const int64_t frames = 3, h = 2, w = 3, heads = 2;
  // head_dim 32: pairs 6/5/5; 128: Wan's 22/21/21; 20: 4/3/3 (time pairs ≠ c/3).
  const Case cases[] = {{32, 0, 3}, {32, 3, 6}, {32, 9, -6}, {128, 0, 18}, {128, 21, -18}, {20, 5, 1000}, {128, 1000, -997}};
  for (const Case& cs : cases) {
    const int64_t row = heads * cs.head_dim, tokens = frames * h * w;
    const std::vector<float> raw = random_normal(tokens * row, 17 + cs.head_dim);
    std::vector<float> shifted = roped(raw, frames, h, w, cs.p, heads, cs.head_dim);
    cpu::rope_time_shift(shifted.data(), row, tokens, heads, cs.head_dim, cs.delta);
    const std::vector<float> expected = roped(raw, frames, h, w, cs.p + cs.delta, heads, cs.head_dim);
    EXPECT_LE(error(shifted, expected), 1.0) << "head_dim " << cs.head_dim << " p " << cs.p << " delta " << cs.delta;
    // The comparison can fail: one frame more is far off.
    const std::vector<float> off_by_one = roped(raw, frames, h, w, cs.p + cs.delta + 1, heads, cs.head_dim);
    EXPECT_GT(error(shifted, off_by_one), 10.0);
  }
}

TEST(RopeShift, ZeroShiftIsIdentityAndStrideIsRespected) {
  const int64_t heads = 2, head_dim = 32, row = heads * head_dim, stride = row + 5, tokens = 4;
  std::vector<float> x = random_normal(tokens * stride, 3);
  const std::vector<float> before = x;
  cpu::rope_time_shift(x.data(), stride, tokens, heads, head_dim, 0);
  EXPECT_EQ(0, std::memcmp(x.data(), before.data(), x.size() * sizeof(float)));
  cpu::rope_time_shift(x.data(), stride, tokens, heads, head_dim, 7);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = row; e < stride; ++e)  // padding untouched
      EXPECT_EQ(x[t * stride + e], before[t * stride + e]);
    for (int64_t head = 0; head < heads; ++head)
      for (int64_t e = 12; e < head_dim; ++e)  // height / width pairs untouched (time = first 6 pairs)
        EXPECT_EQ(x[t * stride + head * head_dim + e], before[t * stride + head * head_dim + e]);
  }
  // Shifting back restores the keys within fp32 rounding.
  cpu::rope_time_shift(x.data(), stride, tokens, heads, head_dim, -7);
  EXPECT_LE(error(x, before), 1.0);
}

}  // namespace
}  // namespace fastar
