// Block layouts of the grid IQ types (ggml-common.h's block_iq*), 256 elements each. A
// block is 8 sub-blocks of 32, each made of groups of 8 (or 4) values looked up in a grid
// of ir/iq_grids.h by an index of 8 to 11 bits; signs come from ksigns (7 stored bits per
// group of 8) or from explicit sign bytes, and the scales are 3- or 4-bit per 32 (or 16).
// All multi-byte fields are little-endian; `d` is an f16 bit pattern. The decoders are in
// ir/quant_iq_grids.cpp, the kernels' rules in jit/block_formats_iq_grids.cpp.
#pragma once

#include <cstdint>

namespace moat::ir {

// x = d * (0.5 + s) * 0.25 * grid * sign per sub-block of 32 (s: 4 bits).
struct BlockIQ2_XXS {
  uint16_t d;
  // Per sub-block two u32: the first holds 4 grid indices (bytes), the second 4 x 7 sign
  // bits (bits 7l..7l+6 for group l, through ksigns) and s in bits 28..31.
  uint16_t qs[32];
};
static_assert(sizeof(BlockIQ2_XXS) == 66);

struct BlockIQ2_XS {
  uint16_t d;
  uint16_t qs[32];    // per group of 8: grid index in bits 0..8, ksigns index in bits 9..15
  uint8_t scales[8];  // sub-block j: low nibble for groups 0, 1, high nibble for groups 2, 3
};
static_assert(sizeof(BlockIQ2_XS) == 74);

struct BlockIQ2_S {
  uint16_t d;
  uint8_t qs[64];     // bytes 0..31: low 8 bits of the grid indices; 32..63: the signs of each group of 8
  uint8_t qh[8];      // sub-block j: bits 2l..2l+1 are bits 8..9 of group l's index
  uint8_t scales[8];  // as BlockIQ2_XS
};
static_assert(sizeof(BlockIQ2_S) == 82);

// x = d * (0.5 + s) * 0.5 * grid * sign (groups of 8 = two grid entries of 4).
struct BlockIQ3_XXS {
  uint16_t d;
  // Bytes 0..63: grid indices, 8 per sub-block; bytes 64..95: one u32 per sub-block with
  // 4 x 7 sign bits (through ksigns) and s in bits 28..31.
  uint8_t qs[96];
};
static_assert(sizeof(BlockIQ3_XXS) == 98);

// x = d * (1 + 2 s) * grid * sign.
struct BlockIQ3_S {
  uint16_t d;
  uint8_t qs[64];     // low 8 bits of the grid indices, 8 per sub-block
  uint8_t qh[8];      // sub-block j: bit k is bit 8 of index k of the sub-block
  uint8_t signs[32];  // bit k of byte 4j + l: sign of value k of group l in sub-block j
  uint8_t scales[4];  // byte i: s of sub-block 2i in the low nibble, of 2i + 1 in the high
};
static_assert(sizeof(BlockIQ3_S) == 110);

// x = d * (2 s + 1) * (grid + delta), grid values in {-1, 0, 1}.
struct BlockIQ1_S {
  uint16_t d;
  uint8_t qs[32];  // low 8 bits of the grid indices, 4 per sub-block
  // Per sub-block: bits 3l..3l+2 are bits 8..10 of index l, bits 12..14 are s, bit 15 the
  // sign of delta (set: -delta).
  uint16_t qh[8];
};
static_assert(sizeof(BlockIQ1_S) == 50);

// x = d * (2 s + 1) * (grid + delta); s is 3 bits per 16 elements and the f16 d is spread
// over the top nibbles of the four u16 of `scales`.
struct BlockIQ1_M {
  uint8_t qs[32];  // low 8 bits of the grid indices, 4 per sub-block
  // Byte 2j + h (h: half of sub-block j): low nibble for its group 0, high nibble for
  // group 1: bits 0..2 are bits 8..10 of the index, bit 3 the sign of delta.
  uint8_t qh[16];
  // u16 k: bits 6m..6m+2 and 6m+3..6m+5 are s of halves 0, 1 of sub-block 2k + m; bits
  // 12..15 are bits 4k..4k+3 of d.
  uint8_t scales[8];
};
static_assert(sizeof(BlockIQ1_M) == 56);

}  // namespace moat::ir
