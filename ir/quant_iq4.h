// Blocks of the 4-bit table formats (ggml / GGUF layouts): each 4-bit index selects
// one of 16 values of a codebook, times a block scale. Decoded by
// dequantize_iq4_blocks (ir/quant_families.h) and by jit/block_formats_iq4.cpp's rules.
//   iq4_nl  x[i] = d * kvalues_iq4nl[nibble(i)]; nibble order as q4_0 (element i < 16:
//           low nibble of qs[i], element 16 + i: its high nibble)
//   iq4_xs  256 elements in 8 sub-blocks j of 32, each with a 6-bit scale ls (low 4 bits
//           from scales_l, high 2 from scales_h): x = (d * (ls - 32)) * kvalues_iq4nl[nibble];
//           sub-block j's nibbles are qs[16 j ..] in q4_0's order
//   mxfp4   x[i] = kvalues_mxfp4[nibble(i)] * 2^(e - 127) / 2 (OCP MX FP4 E2M1 values,
//           doubled; e an E8M0 exponent); nibble order as q4_0
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace moat::ir {

// ggml's codebooks (kvalues_iq4nl, kvalues_mxfp4 in ggml-common.h).
inline constexpr std::array<int8_t, 16> kIq4nlValues = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                        1,    13,   25,  38,  53,  69,  89,  113};
inline constexpr std::array<int8_t, 16> kMxfp4Values = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

struct BlockIQ4_NL {
  uint16_t d;      // f16 scale
  uint8_t qs[16];  // indices into kIq4nlValues
};
static_assert(sizeof(BlockIQ4_NL) == 18);

struct BlockIQ4_XS {
  uint16_t d;          // f16 super-block scale
  uint16_t scales_h;   // bits 2j..2j+1: the high 2 bits of sub-block j's scale
  uint8_t scales_l[4]; // byte j / 2, nibble j % 2 (low first): the low 4 bits of scale j
  uint8_t qs[128];     // indices into kIq4nlValues, 16 bytes per sub-block
};
static_assert(sizeof(BlockIQ4_XS) == 136);

struct BlockMXFP4 {
  uint8_t e;       // E8M0 shared exponent
  uint8_t qs[16];  // indices into kMxfp4Values
};
static_assert(sizeof(BlockMXFP4) == 17);

// The 6-bit scale of sub-block j (0..7) of an iq4_xs block, 0..63 (the value is ls - 32).
inline int iq4_xs_scale(const BlockIQ4_XS& b, int j) {
  return ((b.scales_l[j / 2] >> (4 * (j % 2))) & 0xf) | (((b.scales_h >> (2 * j)) & 3) << 4);
}

// ggml's GGML_E8M0_TO_FP32_HALF: 2^(e - 127) / 2 as an f32 (e 0 and 1: subnormals).
inline float e8m0_to_f32_half(uint8_t e) {
  const uint32_t bits = e < 2 ? uint32_t{0x00200000} << e : uint32_t{e - 1u} << 23;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

}  // namespace moat::ir
