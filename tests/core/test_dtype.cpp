// bf16 / fp16 <-> fp32 conversions (core/dtype.h) against a reference computed here by arithmetic
// on doubles instead of bit manipulation: a value's neighbours in the narrow format are multiples of
// its ulp there, the nearer one wins and a tie goes to the even multiple (IEEE 754 round to nearest,
// ties to even); past the largest finite value the result is an infinity; NaN stays NaN.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "fastar/core/dtype.h"

namespace fastar {
namespace {

// A narrow binary floating-point format: `mantissa_bits` stored fraction bits, normal exponents
// from `min_exponent` (value 2^min_exponent is the smallest normal) to `max_exponent`.
struct Format {
  int mantissa_bits;
  int min_exponent;
  int max_exponent;
};
constexpr Format kBf16{7, -126, 127};
constexpr Format kF16{10, -14, 15};

float from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

// The value `x` (not NaN) rounds to in `format`, in double (exact: every result is a double).
double reference_round(double x, const Format& format) {
  if (x == 0.0 || std::isinf(x)) return x;
  const double magnitude = std::fabs(x);
  int exponent = std::ilogb(magnitude);                             // magnitude in [2^e, 2^(e+1))
  if (exponent < format.min_exponent) exponent = format.min_exponent;  // subnormal: fixed ulp
  const double ulp = std::ldexp(1.0, exponent - format.mantissa_bits);
  const double below = std::floor(magnitude / ulp);  // exact: magnitude/ulp is a power-of-two scaling
  const double remainder = magnitude / ulp - below;
  double multiple = below;
  if (remainder > 0.5 || (remainder == 0.5 && std::fmod(below, 2.0) == 1.0)) multiple = below + 1.0;
  double rounded = multiple * ulp;
  const double largest = std::ldexp(2.0 - std::ldexp(1.0, -format.mantissa_bits), format.max_exponent);
  if (rounded > largest) rounded = std::numeric_limits<double>::infinity();
  return std::copysign(rounded, x);
}

// The value of a 16-bit pattern of `format` (1 sign, 16 − 1 − mantissa_bits exponent bits).
double reference_decode(uint16_t bits, const Format& format) {
  const int exponent_bits = 15 - format.mantissa_bits;
  const int bias = (1 << (exponent_bits - 1)) - 1;
  const double sign = (bits & 0x8000u) ? -1.0 : 1.0;
  const int biased = (bits >> format.mantissa_bits) & ((1 << exponent_bits) - 1);
  const double fraction = bits & ((1u << format.mantissa_bits) - 1u);
  if (biased == (1 << exponent_bits) - 1)
    return fraction == 0 ? sign * std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  if (biased == 0) return sign * std::ldexp(fraction, 1 - bias - format.mantissa_bits);
  return sign * std::ldexp(fraction + std::ldexp(1.0, format.mantissa_bits), biased - bias - format.mantissa_bits);
}

bool same_value(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

// fp32 inputs covering every exponent: a seeded random sample of all bit patterns plus the cases
// that rounding gets wrong most easily.
std::vector<uint32_t> test_inputs(const Format& format) {
  std::vector<uint32_t> bits;
  std::mt19937_64 rng(2112);
  for (int i = 0; i < 400000; ++i) bits.push_back(static_cast<uint32_t>(rng()));
  for (uint32_t v = 0; v < 0x10000u; ++v) {  // every pattern with a low half of 0, 0x8000 (a tie) or 0x7fff/0x8001
    bits.push_back(v << 16);
    bits.push_back((v << 16) | 0x8000u);
    bits.push_back((v << 16) | 0x7fffu);
    bits.push_back((v << 16) | 0x8001u);
  }
  // fp16 ties and near-ties: each fp16 value's fp32 pattern ± the dropped 13 bits' half.
  if (format.mantissa_bits == kF16.mantissa_bits) {
    for (uint32_t h = 0; h < 0x10000u; ++h) {
      const double value = reference_decode(static_cast<uint16_t>(h), kF16);
      if (!std::isfinite(value)) continue;
      const double ulp = std::ldexp(1.0, std::max(std::ilogb(std::fabs(value) > 0 ? std::fabs(value) : 1e-30), -14) - 10);
      for (double offset : {0.5 * ulp, 0.5 * ulp * (1 - 1e-7), 0.5 * ulp * (1 + 1e-7)}) {
        const float probe = static_cast<float>(value + std::copysign(offset, value == 0 ? 1.0 : value));
        uint32_t pattern;
        std::memcpy(&pattern, &probe, 4);
        bits.push_back(pattern);
      }
    }
  }
  return bits;
}

TEST(DtypeBf16, DecodesEveryPatternExactly) {
  for (uint32_t v = 0; v < 0x10000u; ++v) {
    const double expected = reference_decode(static_cast<uint16_t>(v), kBf16);
    ASSERT_TRUE(same_value(bf16_to_f32(static_cast<uint16_t>(v)), expected)) << std::hex << v;
  }
}

TEST(DtypeF16, DecodesEveryPatternExactly) {
  for (uint32_t v = 0; v < 0x10000u; ++v) {
    const double expected = reference_decode(static_cast<uint16_t>(v), kF16);
    ASSERT_TRUE(same_value(f16_to_f32(static_cast<uint16_t>(v)), expected)) << std::hex << v;
  }
}

TEST(DtypeBf16, RoundsToNearestEvenWithSubnormalsAndOverflow) {
  for (const uint32_t bits : test_inputs(kBf16)) {
    const float value = from_bits(bits);
    const uint16_t got = f32_to_bf16(value);
    if (std::isnan(value)) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(got))) << std::hex << bits << " -> " << got;
      continue;
    }
    ASSERT_TRUE(same_value(bf16_to_f32(got), reference_round(value, kBf16)))
        << std::hex << "input 0x" << bits << " gave 0x" << got;
  }
}

TEST(DtypeF16, RoundsToNearestEvenWithSubnormalsAndOverflow) {
  for (const uint32_t bits : test_inputs(kF16)) {
    const float value = from_bits(bits);
    const uint16_t got = f32_to_f16(value);
    if (std::isnan(value)) {
      ASSERT_TRUE(std::isnan(f16_to_f32(got))) << std::hex << bits << " -> " << got;
      continue;
    }
    ASSERT_TRUE(same_value(f16_to_f32(got), reference_round(value, kF16)))
        << std::hex << "input 0x" << bits << " gave 0x" << got;
  }
}

// Negative controls: converters with the usual mistakes disagree with the reference on the inputs
// above (so the rounding tests can fail), and the inputs reach the fp16 subnormal and overflow
// ranges that a flushing or saturating converter gets wrong.
TEST(DtypeConversions, ReferenceRejectsCommonlyWrongConverters) {
  auto mismatches = [](const Format& format, auto wrong_value) {
    int64_t count = 0;
    for (const uint32_t bits : test_inputs(format)) {
      const float value = from_bits(bits);
      if (std::isnan(value)) continue;
      count += !same_value(wrong_value(bits, value), reference_round(value, format));
    }
    return count;
  };
  // bf16 by truncation (round toward zero), and by adding half an ulp (ties away from zero).
  EXPECT_GT(mismatches(kBf16, [](uint32_t bits, float) { return double{bf16_to_f32(static_cast<uint16_t>(bits >> 16))}; }),
            0);
  EXPECT_GT(mismatches(kBf16, [](uint32_t bits, float value) {
              if (std::isinf(value)) return double{value};
              return double{bf16_to_f32(static_cast<uint16_t>((bits + 0x8000u) >> 16))};
            }),
            0);
  // Truncation also turns a NaN whose payload sits in the low half into an infinity.
  EXPECT_TRUE(std::isinf(bf16_to_f32(static_cast<uint16_t>(0x7f800001u >> 16))));
  // fp16 with subnormals flushed to zero, and with overflow saturated at 65504.
  EXPECT_GT(mismatches(kF16, [](uint32_t, float value) {
              return std::fabs(value) < std::ldexp(1.0, -14) ? std::copysign(0.0, value) : reference_round(value, kF16);
            }),
            0);
  EXPECT_GT(mismatches(kF16, [](uint32_t, float value) {
              const double r = reference_round(value, kF16);
              return std::isinf(r) && !std::isinf(value) ? std::copysign(65504.0, value) : r;
            }),
            0);
}

TEST(DtypeConversions, NamedEdgeCases) {
  const float inf = std::numeric_limits<float>::infinity();
  // bf16: ties to even at 1 + 2^-8 (down to 1) and 1 + 3·2^-8 (up to 1 + 2^-6).
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80u);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82u);
  EXPECT_EQ(f32_to_bf16(inf), 0x7f80u);
  EXPECT_EQ(f32_to_bf16(-inf), 0xff80u);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80u);  // past the largest bf16 (0x7f7f): inf
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7f7fffu)), 0x7f7fu);              // just below the halfway point
  // A NaN whose upper half alone would read as an infinity stays a NaN.
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0xff800001u)))));
  EXPECT_EQ(f32_to_bf16(from_bits(0x00008000u)), 0x0000u);  // fp32 subnormal tie: to even (0)
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000u)), 0x0002u);  // tie between 1 and 2: to 2
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000u);

  // fp16: the largest finite value is 65504; 65520 is halfway to 65536 and ties to the (even) infinity.
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bffu);
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7bffu);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00u);
  EXPECT_EQ(f32_to_f16(-1e6f), 0xfc00u);
  EXPECT_EQ(f32_to_f16(inf), 0x7c00u);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  // Subnormals: 2^-24 is the smallest; 2^-25 ties to 0, 3·2^-25 ties up to 2·2^-24.
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001u);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000u);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002u);
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.0f, -25)), 0x0400u);  // halfway from the largest subnormal: up to 2^-14
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -30)), 0x8000u);    // underflow keeps the sign
}

TEST(DtypeConversions, BulkConversionsAgreeWithTheScalarOnes) {
  const std::vector<float> values = {0.0f, -1.5f, 3.14159f, 1e-40f, 7e4f, -std::numeric_limits<float>::infinity()};
  std::vector<uint16_t> bf16(values.size()), f16(values.size());
  convert_from_f32(values.data(), bf16.data(), DType::BF16, static_cast<int64_t>(values.size()));
  convert_from_f32(values.data(), f16.data(), DType::F16, static_cast<int64_t>(values.size()));
  std::vector<float> back_bf16(values.size()), back_f16(values.size());
  convert_to_f32(bf16.data(), DType::BF16, back_bf16.data(), static_cast<int64_t>(values.size()));
  convert_to_f32(f16.data(), DType::F16, back_f16.data(), static_cast<int64_t>(values.size()));
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(bf16[i], f32_to_bf16(values[i])) << i;
    EXPECT_EQ(f16[i], f32_to_f16(values[i])) << i;
    EXPECT_TRUE(same_value(back_bf16[i], reference_round(values[i], kBf16))) << i;
    EXPECT_TRUE(same_value(back_f16[i], reference_round(values[i], kF16))) << i;
  }
}

}  // namespace
}  // namespace fastar
