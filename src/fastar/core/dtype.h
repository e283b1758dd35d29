// Element types of fastar tensors and the bf16/fp16 <-> fp32 conversions.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace fastar {

// The element types a checkpoint may hold. Compute on the CPU is fp32; bf16/fp16 are storage
// formats (and the CUDA compute format, bf16).
enum class DType : uint8_t { F32, BF16, F16, F64, I64, I32, I16, I8, U8, BOOL };

// Bytes per element.
int64_t dtype_size(DType dtype);
// The safetensors spelling ("F32", "BF16", ...).
std::string_view dtype_name(DType dtype);
// Parses a safetensors dtype string; returns false for names fastar does not know.
bool dtype_from_name(std::string_view name, DType* out);
bool dtype_is_float(DType dtype);

// bf16: the upper 16 bits of an fp32. Rounds to nearest, ties to even; NaN stays a (quiet) NaN.
inline uint16_t f32_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

inline float bf16_to_f32(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// IEEE binary16, with subnormals, infinities and NaN. Rounds to nearest, ties to even.
uint16_t f32_to_f16(float value);
float f16_to_f32(uint16_t value);

// Rounds an fp32 value through bf16 and back (what storing it as bf16 does to it).
inline float round_to_bf16(float value) { return bf16_to_f32(f32_to_bf16(value)); }

// Converts `count` elements of a float dtype (F32, BF16, F16, F64) to fp32.
void convert_to_f32(const void* src, DType src_dtype, float* dst, int64_t count);
// Converts `count` fp32 values to a float dtype (F32, BF16, F16, F64).
void convert_from_f32(const float* src, void* dst, DType dst_dtype, int64_t count);

}  // namespace fastar
