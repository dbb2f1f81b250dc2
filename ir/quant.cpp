#include "ir/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ir/quant_families.h"
#include "support/error.h"
#include "support/half.h"

namespace moat::ir {

namespace {

template <class T>
T load(const uint8_t* src) {
  T value;
  std::memcpy(&value, src, sizeof(T));
  return value;
}

void dequantize_block_q8_0(const BlockQ8_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < 32; ++i) y[i] = d * static_cast<float>(b.qs[i]);
}

void dequantize_block_q4_0(const BlockQ4_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < 16; ++i) {
    y[i] = d * static_cast<float>((b.qs[i] & 0x0f) - 8);
    y[i + 16] = d * static_cast<float>((b.qs[i] >> 4) - 8);
  }
}

void dequantize_block_q4_k(const BlockQ4_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  const float dmin = f16_to_f32(b.dmin);
  for (int j = 0; j < 8; ++j) {  // sub-block j: elements 32j .. 32j + 31
    uint8_t sc = 0, m = 0;
    q4_k_scale_min(b.scales, j, &sc, &m);
    const float scale = d * static_cast<float>(sc);
    const float min = dmin * static_cast<float>(m);
    const uint8_t* q = b.qs + 32 * (j / 2);  // chunk shared by sub-blocks 2c and 2c + 1
    const int shift = (j % 2) * 4;
    for (int l = 0; l < 32; ++l) {
      // Two statements: a compiler may fuse a * b - c into one FMA within an expression
      // (clang's default -ffp-contract=on), which would round differently from ggml.
      const float scaled = scale * static_cast<float>((q[l] >> shift) & 0x0f);
      y[32 * j + l] = scaled - min;
    }
  }
}

void dequantize_block_q6_k(const BlockQ6_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < 256; ++i) {
    // Each half h of 128 elements uses ql[64h ..+64] and qh[32h ..+32]. Its quarter
    // k (32 elements, l = 0..31) takes the low (k < 2) or high (k >= 2) nibble of
    // ql[64h + 32(k % 2) + l] and bits 2k..2k+1 of qh[32h + l].
    const int h = i / 128, k = (i % 128) / 32, l = i % 32;
    const int lo = (b.ql[64 * h + 32 * (k % 2) + l] >> (k < 2 ? 0 : 4)) & 0x0f;
    const int hi = (b.qh[32 * h + l] >> (2 * k)) & 0x03;
    const float scale = d * static_cast<float>(b.scales[i / 16]);
    y[i] = scale * static_cast<float>((lo | (hi << 4)) - 32);
  }
}

}  // namespace

void dequantize_row(DType type, const uint8_t* src, float* dst, int64_t elems) {
  const int64_t block_elems = dtype_block_elems(type);
  MOAT_INTERNAL_CHECK(elems >= 0 && elems % block_elems == 0, "dequantize_row of ", elems, " ",
                      dtype_name(type), " elements (blocks of ", block_elems, ")");
  const int64_t blocks = elems / block_elems;
  switch (type) {
    case DType::f32: if (elems > 0) std::memcpy(dst, src, static_cast<size_t>(elems) * 4); return;
    case DType::f16: for (int64_t i = 0; i < elems; ++i) dst[i] = f16_to_f32(load<uint16_t>(src + 2 * i)); return;
    case DType::bf16: for (int64_t i = 0; i < elems; ++i) dst[i] = bf16_to_f32(load<uint16_t>(src + 2 * i)); return;
    case DType::f8_e4m3: for (int64_t i = 0; i < elems; ++i) dst[i] = fp8_e4m3_to_f32(src[i]); return;
    case DType::i64: for (int64_t i = 0; i < elems; ++i) dst[i] = static_cast<float>(load<int64_t>(src + 8 * i)); return;
    case DType::i32: for (int64_t i = 0; i < elems; ++i) dst[i] = static_cast<float>(load<int32_t>(src + 4 * i)); return;
    case DType::i8: for (int64_t i = 0; i < elems; ++i) dst[i] = static_cast<float>(load<int8_t>(src + i)); return;
    case DType::u8: for (int64_t i = 0; i < elems; ++i) dst[i] = static_cast<float>(src[i]); return;
    case DType::boolean: for (int64_t i = 0; i < elems; ++i) dst[i] = src[i] != 0 ? 1.0f : 0.0f; return;
    case DType::q8_0: decode_each_block<BlockQ8_0, 32, dequantize_block_q8_0>(src, dst, blocks); return;
    case DType::q4_0: decode_each_block<BlockQ4_0, 32, dequantize_block_q4_0>(src, dst, blocks); return;
    case DType::q4_k: decode_each_block<BlockQ4_K, 256, dequantize_block_q4_k>(src, dst, blocks); return;
    case DType::q6_k: decode_each_block<BlockQ6_K, 256, dequantize_block_q6_k>(src, dst, blocks); return;
    case DType::q4_1: case DType::q5_0: case DType::q5_1:
      dequantize_legacy_blocks(type, src, dst, blocks);
      return;
    case DType::q2_k: case DType::q3_k: case DType::q5_k:
      dequantize_k_blocks(type, src, dst, blocks);
      return;
    case DType::q8_k: dequantize_q8_k_blocks(src, dst, blocks); return;
    case DType::iq4_nl: case DType::iq4_xs: case DType::mxfp4:
      dequantize_iq4_blocks(type, src, dst, blocks);
      return;
    case DType::iq3_xxs: case DType::iq3_s: case DType::iq2_xxs: case DType::iq2_xs: case DType::iq2_s:
    case DType::iq1_s: case DType::iq1_m:
      dequantize_iq_grid_blocks(type, src, dst, blocks);
      return;
  }
  throw InternalError("dequantize_row: unknown dtype");
}

void quantize_row_q8_0(const float* src, uint8_t* dst, int64_t elems) {
  MOAT_INTERNAL_CHECK(elems >= 0 && elems % 32 == 0, "quantize_row_q8_0 of ", elems, " elements");
  for (int64_t blk = 0; blk < elems / 32; ++blk) {
    const float* x = src + 32 * blk;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 b;
    b.d = f32_to_f16(d);
    for (int i = 0; i < 32; ++i) b.qs[i] = static_cast<int8_t>(std::round(x[i] * id));  // ties away from 0
    std::memcpy(dst + sizeof(BlockQ8_0) * blk, &b, sizeof b);
  }
}

void quantize_row_q4_0(const float* src, uint8_t* dst, int64_t elems) {
  MOAT_INTERNAL_CHECK(elems >= 0 && elems % 32 == 0, "quantize_row_q4_0 of ", elems, " elements");
  for (int64_t blk = 0; blk < elems / 32; ++blk) {
    const float* x = src + 32 * blk;
    const float d = first_largest_magnitude(x, 32) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 b;
    b.d = f32_to_f16(d);
    for (int i = 0; i < 16; ++i) {
      const float x0 = x[i] * id, x1 = x[i + 16] * id;
      const int q0 = std::min(15, static_cast<int>(x0 + 8.5f));  // >= 0: |x * id| <= 8
      const int q1 = std::min(15, static_cast<int>(x1 + 8.5f));
      b.qs[i] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    std::memcpy(dst + sizeof(BlockQ4_0) * blk, &b, sizeof b);
  }
}

void dequantize_fp8_block_row(const uint8_t* w_row, const float* scale_inv, int64_t row, int64_t cols,
                              int64_t block_rows, int64_t block_cols, float* dst) {
  MOAT_INTERNAL_CHECK(block_rows > 0 && block_cols > 0 && row >= 0 && cols >= 0, "dequantize_fp8_block_row: block ",
                      block_rows, "x", block_cols, ", row ", row, ", cols ", cols);
  const int64_t scale_cols = (cols + block_cols - 1) / block_cols;
  const float* scales = scale_inv + (row / block_rows) * scale_cols;
  for (int64_t c = 0; c < cols; ++c) dst[c] = fp8_e4m3_to_f32(w_row[c]) * scales[c / block_cols];
}

}  // namespace moat::ir
