// Reference decoders of q2_k, q3_k, q5_k (ir/quant_families.h), from ggml's
// dequantize_row_q2_K / q3_K / q5_K. A product and the difference after it are separate
// statements: within one expression a compiler may fuse them into an FMA (clang's
// default -ffp-contract=on), which rounds differently from ggml.
#include <cstring>

#include "ir/quant.h"
#include "ir/quant_families.h"
#include "ir/quant_legacy_k_blocks.h"
#include "support/error.h"
#include "support/half.h"

namespace moat::ir {

namespace {

// Element e of a q2_k / q3_k block sits in half n = e / 128, quarter j = (e / 32) % 4,
// at l = e % 32: bits 2j..2j+1 of qs[32n + l].
int crumb(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3; }

void dequantize_block_q2_k(const BlockQ2_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int s = 0; s < 16; ++s) {  // sub-block s: elements 16s .. 16s + 15
    const float scale = d * static_cast<float>(b.scales[s] & 0x0f);
    const float min = dmin * static_cast<float>(b.scales[s] >> 4);
    for (int e = 16 * s; e < 16 * s + 16; ++e) {
      const float scaled = scale * static_cast<float>(crumb(b.qs, e));
      y[e] = scaled - min;
    }
  }
}

void dequantize_block_q3_k(const BlockQ3_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int s = 0; s < 16; ++s) {
    const float scale = d * static_cast<float>(q3_k_scale(b.scales, s) - 32);
    for (int e = 16 * s; e < 16 * s + 16; ++e) {
      const bool high = (b.hmask[e % 32] >> (e / 32)) & 1;  // set: no offset
      y[e] = scale * static_cast<float>(crumb(b.qs, e) - (high ? 0 : 4));
    }
  }
}

void dequantize_block_q5_k(const BlockQ5_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int j = 0; j < 8; ++j) {  // sub-block j: elements 32j .. 32j + 31
    uint8_t sc = 0, m = 0;
    q4_k_scale_min(b.scales, j, &sc, &m);
    const float scale = d * static_cast<float>(sc);
    const float min = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) {
      const int low = (b.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0f;
      const int high = (b.qh[l] >> j) & 1;
      const float scaled = scale * static_cast<float>(low + 16 * high);
      y[32 * j + l] = scaled - min;
    }
  }
}

}  // namespace

void dequantize_k_blocks(DType type, const uint8_t* src, float* dst, int64_t blocks) {
  switch (type) {
    case DType::q2_k: return decode_each_block<BlockQ2_K, 256, dequantize_block_q2_k>(src, dst, blocks);
    case DType::q3_k: return decode_each_block<BlockQ3_K, 256, dequantize_block_q3_k>(src, dst, blocks);
    case DType::q5_k: return decode_each_block<BlockQ5_K, 256, dequantize_block_q5_k>(src, dst, blocks);
    default:  // q8_k is another family's (its decoder is routed elsewhere)
      MOAT_INTERNAL_ERROR("dequantize_k_blocks: no reference decoder for ", dtype_name(type));
  }
}

}  // namespace moat::ir
