#include "fastar/core/dtype.h"

#include "fastar/core/error.h"

namespace fastar {

namespace {
struct DTypeInfo {
  DType dtype;
  std::string_view name;
  int64_t size;
  bool is_float;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F32, "F32", 4, true},  {DType::BF16, "BF16", 2, true}, {DType::F16, "F16", 2, true},
    {DType::F64, "F64", 8, true},  {DType::I64, "I64", 8, false},  {DType::I32, "I32", 4, false},
    {DType::I16, "I16", 2, false}, {DType::I8, "I8", 1, false},    {DType::U8, "U8", 1, false},
    {DType::BOOL, "BOOL", 1, false},
};
const DTypeInfo& info(DType dtype) {
  for (const DTypeInfo& entry : kDTypes)
    if (entry.dtype == dtype) return entry;
  FASTAR_ASSERT(false, "unknown dtype " << static_cast<int>(dtype));
}
}  // namespace

int64_t dtype_size(DType dtype) { return info(dtype).size; }
std::string_view dtype_name(DType dtype) { return info(dtype).name; }
bool dtype_is_float(DType dtype) { return info(dtype).is_float; }

bool dtype_from_name(std::string_view name, DType* out) {
  for (const DTypeInfo& entry : kDTypes) {
    if (entry.name == name) {
      *out = entry.dtype;
      return true;
    }
  }
  return false;
}

uint16_t f32_to_f16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {
    // Result is subnormal (or zero) in fp16: value = mantissa * 2^-24.
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // below half the smallest subnormal
    const int exponent = static_cast<int>(abs >> 23);            // biased fp32 exponent
    const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;    // 24-bit significand
    const int shift = 126 - exponent;                            // 14..24 (also drops 2^-24 scale)
    uint32_t half = mantissa >> shift;
    const uint32_t remainder = mantissa & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1);
    if (remainder > halfway || (remainder == halfway && (half & 1u))) half += 1;
    return static_cast<uint16_t>(sign | half);
  }
  // Normal: re-bias exponent (127 -> 15) and round the 13 dropped mantissa bits.
  uint32_t half = ((abs - 0x38000000u) >> 13);
  const uint32_t remainder = abs & 0x1fffu;
  if (remainder > 0x1000u || (remainder == 0x1000u && (half & 1u))) half += 1;
  return static_cast<uint16_t>(sign | half);
}

float f16_to_f32(uint16_t value) {
  const uint32_t sign = static_cast<uint32_t>(value & 0x8000u) << 16;
  const uint32_t exponent = (value >> 10) & 0x1fu;
  uint32_t mantissa = value & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while ((mantissa & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mantissa & 0x3ffu) << 13);
    }
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

void convert_to_f32(const void* src, DType src_dtype, float* dst, int64_t count) {
  switch (src_dtype) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(count) * 4);
      return;
    case DType::BF16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(in[i]);
      return;
    }
    case DType::F16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = f16_to_f32(in[i]);
      return;
    }
    case DType::F64: {
      const auto* in = static_cast<const double*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(in[i]);
      return;
    }
    default:
      FASTAR_FAIL("cannot convert " << dtype_name(src_dtype) << " to F32: not a floating-point type");
  }
}

void convert_from_f32(const float* src, void* dst, DType dst_dtype, int64_t count) {
  switch (dst_dtype) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(count) * 4);
      return;
    case DType::BF16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < count; ++i) out[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < count; ++i) out[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::F64: {
      auto* out = static_cast<double*>(dst);
      for (int64_t i = 0; i < count; ++i) out[i] = src[i];
      return;
    }
    default:
      FASTAR_FAIL("cannot convert F32 to " << dtype_name(dst_dtype) << ": not a floating-point type");
  }
}

}  // namespace fastar
