// Narrow float formats as bit patterns: IEEE binary16 (f16), bfloat16 (bf16) and
// OCP FP8 E4M3FN (f8_e4m3, DeepSeek-V3's weight type). Plain bit manipulation (no
// F16C / NEON intrinsics), all constexpr; the oracle every kernel's conversions are
// tested against (tests/support/half_test.cpp, vectors from tools/make_quant_vectors.py).
//
// Widening (x_to_f32) is exact. Narrowing (f32_to_x) rounds once, to nearest with
// ties to even, straight from f32 (never via another narrow format):
//   f16      overflow -> ±inf (|x| >= 65520); subnormals rounded correctly;
//            NaN -> quiet NaN keeping sign and the top payload bits.
//   bf16     overflow -> ±inf (RNE carries into the exponent); NaN -> quiet NaN
//            (ggml's ggml_compute_fp32_to_bf16).
//   f8_e4m3  SATURATING: finite |x| beyond 448 and ±inf -> ±448 (0x7e / 0xfe);
//            NaN -> 0x7f / 0xff. This is CUDA's __nv_cvt_float_to_fp8(x,
//            __NV_SATFINITE, __NV_E4M3), not torch's `.to(torch.float8_e4m3fn)`,
//            which turns |x| >= 464 into NaN: FP8 weights come from quantisers that
//            clamp first, and an activation that overflows should saturate, not poison.
//            f8_e4m3 has no infinities; subnormals are m * 2^-9, max normal 448.
#pragma once

#include <bit>
#include <cstdint>

namespace moat {

namespace half_detail {

// Rounds the magnitude of a finite f32 (bits `ax`, sign bit clear) to a binary format
// with `mant_bits` fraction bits and exponent bias `bias`, to nearest even, including
// the target's subnormals. Returns exponent << mant_bits | fraction; a result past the
// largest finite code is the caller's overflow to handle.
constexpr uint32_t round_magnitude(uint32_t ax, int mant_bits, int bias) {
  const int e = static_cast<int>(ax >> 23) - 127;  // unbiased f32 exponent
  const int emin = 1 - bias;                       // target's smallest normal exponent
  uint32_t mant = ax & 0x7fffffu;
  int shift = 23 - mant_bits;                      // f32 fraction bits dropped
  uint32_t kept = 0;
  if (e >= emin) {
    kept = (static_cast<uint32_t>(e + bias) << mant_bits) | (mant >> shift);
  } else {
    // Target subnormal: count units of 2^(emin - mant_bits). f32 zeros and subnormals
    // (< 2^-126) are far below half a unit of every format here.
    if (ax < 0x00800000u) return 0;
    mant |= 0x800000u;
    shift += emin - e;
    if (shift > 24) return 0;  // below half a unit
    kept = mant >> shift;
  }
  const uint32_t rest = mant & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (kept & 1u))) ++kept;  // a carry into the exponent is right
  return kept;
}

}  // namespace half_detail

constexpr float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (mant << 13));
  if (mant == 0) return std::bit_cast<float>(sign);
  // Subnormal mant * 2^-24: normalise so the leading one lands on bit 10.
  int e = -14;
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return std::bit_cast<float>(sign | (static_cast<uint32_t>(e + 127) << 23) | ((mant & 0x3ffu) << 13));
}

constexpr uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  uint32_t m = half_detail::round_magnitude(ax, 10, 15);
  if (m > 0x7c00u) m = 0x7c00u;  // overflow -> inf
  return static_cast<uint16_t>(sign | m);
}

constexpr float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

constexpr uint16_t f32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);  // no wrap: |x| <= inf
}

constexpr float fp8_e4m3_to_f32(uint8_t b) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80u) << 24;
  const uint32_t exp = (b >> 3) & 0xfu;
  const uint32_t mant = b & 0x7u;
  if ((b & 0x7fu) == 0x7fu) return std::bit_cast<float>(sign | 0x7fc00000u);  // the only NaN codes
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 127 - 7) << 23) | (mant << 20));
  const float sub = static_cast<float>(mant) * 0.001953125f;  // m * 2^-9, exact
  return sign ? -sub : sub;
}

constexpr uint8_t f32_to_fp8_e4m3(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 24) & 0x80u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint8_t>(sign | 0x7fu);
  uint32_t m = half_detail::round_magnitude(ax, 3, 7);
  if (m > 0x7eu) m = 0x7eu;  // saturate at 448 (includes inf)
  return static_cast<uint8_t>(sign | m);
}

}  // namespace moat
