// Reference decoders of q4_1, q5_0, q5_1 (ir/quant_families.h), from ggml's
// dequantize_row_q4_1 / q5_0 / q5_1. A product and the sum after it are separate
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

void dequantize_block_q4_1(const BlockQ4_1& b, float* y) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  for (int i = 0; i < 16; ++i) {
    const float low = static_cast<float>(b.qs[i] & 0x0f) * d;
    const float high = static_cast<float>(b.qs[i] >> 4) * d;
    y[i] = low + m;
    y[i + 16] = high + m;
  }
}

// The 5-bit values of a q5_0 / q5_1 block: element i's fifth bit is bit i of qh.
void unpack_q5(const uint8_t qh_bytes[4], const uint8_t qs[16], int q[32]) {
  uint32_t qh = 0;
  std::memcpy(&qh, qh_bytes, 4);  // little-endian hosts only, as the rest of moatless
  for (int i = 0; i < 16; ++i) {
    q[i] = (qs[i] & 0x0f) | static_cast<int>(((qh >> i) << 4) & 0x10);
    q[i + 16] = (qs[i] >> 4) | static_cast<int>((qh >> (i + 12)) & 0x10);
  }
}

void dequantize_block_q5_0(const BlockQ5_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  int q[32];
  unpack_q5(b.qh, b.qs, q);
  for (int i = 0; i < 32; ++i) y[i] = static_cast<float>(q[i] - 16) * d;
}

void dequantize_block_q5_1(const BlockQ5_1& b, float* y) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  int q[32];
  unpack_q5(b.qh, b.qs, q);
  for (int i = 0; i < 32; ++i) {
    const float scaled = static_cast<float>(q[i]) * d;
    y[i] = scaled + m;
  }
}

}  // namespace

void dequantize_legacy_blocks(DType type, const uint8_t* src, float* dst, int64_t blocks) {
  switch (type) {
    case DType::q4_1: return decode_each_block<BlockQ4_1, 32, dequantize_block_q4_1>(src, dst, blocks);
    case DType::q5_0: return decode_each_block<BlockQ5_0, 32, dequantize_block_q5_0>(src, dst, blocks);
    case DType::q5_1: return decode_each_block<BlockQ5_1, 32, dequantize_block_q5_1>(src, dst, blocks);
    default: MOAT_INTERNAL_ERROR("dequantize_legacy_blocks: ", dtype_name(type), " is not q4_1, q5_0 or q5_1");
  }
}

}  // namespace moat::ir
