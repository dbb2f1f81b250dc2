// Block structs of q4_1, q5_0, q5_1 (32 elements) and q2_k, q3_k, q5_k (256 elements),
// in ggml's layouts (block_q4_1 ... block_q5_K in ggml-common.h). Multi-byte fields are
// little-endian; `d`, `m`, `dmin` are f16 bit patterns (support/half.h). The decoders
// are ir/quant_legacy.cpp and ir/quant_k.cpp; the value each element decodes to is
// stated next to each struct, in ggml's order of operations.
#pragma once

#include <cstdint>

namespace moat::ir {

// x[i] = nibble(i) * d + m; element i < 16 is the low nibble of qs[i], 16 + i the high.
struct BlockQ4_1 {
  uint16_t d;      // f16 scale
  uint16_t m;      // f16 minimum
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_1) == 20);

// x[i] = (q5(i) - 16) * d, q5 = nibble(i) as q4_1 | bit i of the little-endian u32 qh << 4.
struct BlockQ5_0 {
  uint16_t d;      // f16 scale
  uint8_t qh[4];   // the fifth bit of element i at bit i
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_0) == 22);

// x[i] = q5(i) * d + m, q5 as q5_0's.
struct BlockQ5_1 {
  uint16_t d;      // f16 scale
  uint16_t m;      // f16 minimum
  uint8_t qh[4];
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_1) == 24);

// 16 sub-blocks of 16, each with a 4-bit scale (low nibble of scales[s]) and 4-bit min
// (high nibble). Element e (half n = e / 128, quarter j = (e / 32) % 4, l = e % 32) is
// bits 2j..2j+1 of qs[32n + l]: x = (d * scale) * q - (dmin * min), s = e / 16.
struct BlockQ2_K {
  uint8_t scales[16];
  uint8_t qs[64];
  uint16_t d;     // f16 super-block scale of the scales
  uint16_t dmin;  // f16 super-block scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 84);

// 16 sub-blocks of 16 with signed 6-bit scales (q3_k_scale: stored + 32). Element e is
// crumb j of qs[32n + l] as q2_k's, minus 4 unless bit e / 32 of hmask[l] is set:
// x = (d * (scale - 32)) * q.
struct BlockQ3_K {
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];
  uint16_t d;  // f16 super-block scale
};
static_assert(sizeof(BlockQ3_K) == 110);

// As q4_k (8 sub-blocks of 32, scales and mins as q4_k_scale_min) with a fifth bit:
// bit j = e / 32 of qh[e % 32] adds 16. x = (d * sc) * q5 - (dmin * m).
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ5_K) == 176);

// The 6-bit scale s (0..15) of a q3_k block, still offset by 32: low 4 bits are the
// low (s < 8) or high nibble of scales[s % 8], high 2 bits are bits 2(s / 4).. of
// scales[8 + s % 4].
inline uint8_t q3_k_scale(const uint8_t* scales, int s) {
  const int low = (s < 8 ? scales[s] : scales[s - 8] >> 4) & 0x0f;
  const int high = (scales[8 + s % 4] >> (2 * (s / 4))) & 0x03;
  return static_cast<uint8_t>(low | (high << 4));
}

}  // namespace moat::ir
