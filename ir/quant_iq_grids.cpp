// Reference decoders of the grid IQ types (iq3_xxs, iq3_s, iq2_xxs, iq2_xs, iq2_s, iq1_s,
// iq1_m) (ir/quant_families.h), in the order of operations of ggml's dequantize_row_iq*:
// the scale of a sub-block first (f32), then scale * grid value * ±1 (or, for iq1,
// scale * (grid value + delta)). Layouts: ir/quant_iq_grids.h; grids: ir/iq_grids.h.
#include <cstring>

#include "ir/iq_grids.h"
#include "ir/quant_families.h"
#include "ir/quant_iq_grids.h"
#include "support/error.h"
#include "support/half.h"

namespace moat::ir {

namespace {

constexpr int kSubBlocks = 8;  // of 32 elements per 256-element block

// Value j of a grid entry (byte j of the little-endian word).
inline uint8_t grid_byte(uint64_t entry, int j) { return static_cast<uint8_t>(entry >> (8 * j)); }
inline int8_t grid_int8(uint64_t entry, int j) { return static_cast<int8_t>(grid_byte(entry, j)); }
inline float sign_of(uint32_t signs, int j) { return (signs >> j) & 1 ? -1.0f : 1.0f; }

uint32_t u32_at(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void iq2_xxs(const BlockIQ2_XXS& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int ib = 0; ib < kSubBlocks; ++ib) {
    const uint32_t indices = u32_at(&b.qs[4 * ib]), rest = u32_at(&b.qs[4 * ib + 2]);
    const float db = d * (0.5f + static_cast<float>(rest >> 28)) * 0.25f;
    for (int l = 0; l < 4; ++l) {
      const uint64_t grid = kIq2xxsGrid[grid_byte(indices, l)];
      const uint8_t signs = kKsignsIq2xs[(rest >> (7 * l)) & 127];
      for (int j = 0; j < 8; ++j) *y++ = db * static_cast<float>(grid_byte(grid, j)) * sign_of(signs, j);
    }
  }
}

void iq2_xs(const BlockIQ2_XS& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int ib = 0; ib < kSubBlocks; ++ib) {
    const float db[2] = {d * (0.5f + static_cast<float>(b.scales[ib] & 0xf)) * 0.25f,
                         d * (0.5f + static_cast<float>(b.scales[ib] >> 4)) * 0.25f};
    for (int l = 0; l < 4; ++l) {
      const uint16_t q = b.qs[4 * ib + l];
      const uint64_t grid = kIq2xsGrid[q & 511];
      const uint8_t signs = kKsignsIq2xs[q >> 9];
      for (int j = 0; j < 8; ++j) *y++ = db[l / 2] * static_cast<float>(grid_byte(grid, j)) * sign_of(signs, j);
    }
  }
}

void iq2_s(const BlockIQ2_S& b, float* y) {
  const float d = f16_to_f32(b.d);
  const uint8_t* signs = b.qs + 32;
  for (int ib = 0; ib < kSubBlocks; ++ib) {
    const float db[2] = {d * (0.5f + static_cast<float>(b.scales[ib] & 0xf)) * 0.25f,
                         d * (0.5f + static_cast<float>(b.scales[ib] >> 4)) * 0.25f};
    for (int l = 0; l < 4; ++l) {
      const int index = b.qs[4 * ib + l] | (((b.qh[ib] >> (2 * l)) & 3) << 8);
      const uint64_t grid = kIq2sGrid[index];
      for (int j = 0; j < 8; ++j)
        *y++ = db[l / 2] * static_cast<float>(grid_byte(grid, j)) * sign_of(signs[4 * ib + l], j);
    }
  }
}

void iq3_xxs(const BlockIQ3_XXS& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int ib = 0; ib < kSubBlocks; ++ib) {
    const uint8_t* indices = b.qs + 8 * ib;
    const uint32_t rest = u32_at(b.qs + 64 + 4 * ib);
    const float db = d * (0.5f + static_cast<float>(rest >> 28)) * 0.5f;
    for (int l = 0; l < 4; ++l) {
      const uint8_t signs = kKsignsIq2xs[(rest >> (7 * l)) & 127];
      const uint32_t grid[2] = {kIq3xxsGrid[indices[2 * l]], kIq3xxsGrid[indices[2 * l + 1]]};
      for (int j = 0; j < 8; ++j) *y++ = db * static_cast<float>(grid_byte(grid[j / 4], j % 4)) * sign_of(signs, j);
    }
  }
}

void iq3_s(const BlockIQ3_S& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int ib = 0; ib < kSubBlocks; ++ib) {
    const int s = (b.scales[ib / 2] >> (4 * (ib % 2))) & 0xf;
    const float db = d * static_cast<float>(1 + 2 * s);
    for (int l = 0; l < 4; ++l) {
      uint32_t grid[2];
      for (int h = 0; h < 2; ++h) {
        const int k = 2 * l + h;  // index k of the sub-block
        grid[h] = kIq3sGrid[b.qs[8 * ib + k] | (((b.qh[ib] >> k) & 1) << 8)];
      }
      const uint8_t signs = b.signs[4 * ib + l];
      for (int j = 0; j < 8; ++j) *y++ = db * static_cast<float>(grid_byte(grid[j / 4], j % 4)) * sign_of(signs, j);
    }
  }
}

void iq1_s(const BlockIQ1_S& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int ib = 0; ib < kSubBlocks; ++ib) {
    const uint16_t qh = b.qh[ib];
    const float dl = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1);
    const float delta = qh & 0x8000 ? -kIq1sDelta : kIq1sDelta;
    for (int l = 0; l < 4; ++l) {
      const uint64_t grid = kIq1sGrid[b.qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)];
      for (int j = 0; j < 8; ++j) *y++ = dl * (static_cast<float>(grid_int8(grid, j)) + delta);
    }
  }
}

void iq1_m(const BlockIQ1_M& b, float* y) {
  uint16_t sc[4];
  std::memcpy(sc, b.scales, sizeof sc);
  const uint16_t d_bits = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) |
                                                (sc[3] & 0xf000));
  const float d = f16_to_f32(d_bits);
  for (int ib = 0; ib < kSubBlocks; ++ib) {
    for (int l = 0; l < 4; ++l) {
      const int half = l / 2;  // groups 0, 1 use the first 3-bit scale, 2, 3 the second
      const float dl = d * static_cast<float>(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3 * half)) & 7) + 1);
      const uint8_t nibble = (b.qh[2 * ib + half] >> (4 * (l % 2))) & 0xf;
      const uint64_t grid = kIq1sGrid[b.qs[4 * ib + l] | ((nibble & 7) << 8)];
      const float delta = nibble & 8 ? -kIq1sDelta : kIq1sDelta;
      for (int j = 0; j < 8; ++j) *y++ = dl * (static_cast<float>(grid_int8(grid, j)) + delta);
    }
  }
}

}  // namespace

void dequantize_iq_grid_blocks(DType type, const uint8_t* src, float* dst, int64_t blocks) {
  switch (type) {
    case DType::iq2_xxs: return decode_each_block<BlockIQ2_XXS, 256, iq2_xxs>(src, dst, blocks);
    case DType::iq2_xs: return decode_each_block<BlockIQ2_XS, 256, iq2_xs>(src, dst, blocks);
    case DType::iq2_s: return decode_each_block<BlockIQ2_S, 256, iq2_s>(src, dst, blocks);
    case DType::iq3_xxs: return decode_each_block<BlockIQ3_XXS, 256, iq3_xxs>(src, dst, blocks);
    case DType::iq3_s: return decode_each_block<BlockIQ3_S, 256, iq3_s>(src, dst, blocks);
    case DType::iq1_s: return decode_each_block<BlockIQ1_S, 256, iq1_s>(src, dst, blocks);
    case DType::iq1_m: return decode_each_block<BlockIQ1_M, 256, iq1_m>(src, dst, blocks);
    default: MOAT_INTERNAL_ERROR("dequantize_iq_grid_blocks: ", dtype_name(type), " is not a grid IQ type");
  }
}

}  // namespace moat::ir
