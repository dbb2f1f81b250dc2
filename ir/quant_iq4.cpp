// Reference decoders of iq4_nl, iq4_xs and mxfp4 (ir/quant_families.h), from ggml's
// dequantize_row_iq4_nl / iq4_xs / mxfp4, in their order of operations (ir/quant_iq4.h).
#include "ir/quant_iq4.h"

#include <cstring>

#include "ir/quant_families.h"
#include "support/error.h"
#include "support/half.h"

namespace moat::ir {

namespace {

template <class Block>
Block read_block(const uint8_t* src, int64_t b) {
  Block block;
  std::memcpy(&block, src + b * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
  return block;
}

// 32 elements from 16 bytes of nibbles (q4_0's order), each scale * values[nibble].
void decode_nibbles(const uint8_t* qs, float scale, const std::array<int8_t, 16>& values, float* dst) {
  for (int j = 0; j < 16; ++j) {
    dst[j] = scale * static_cast<float>(values[qs[j] & 0xf]);
    dst[j + 16] = scale * static_cast<float>(values[qs[j] >> 4]);
  }
}

}  // namespace

void dequantize_iq4_blocks(DType type, const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b) {
    switch (type) {
      case DType::iq4_nl: {
        const auto block = read_block<BlockIQ4_NL>(src, b);
        decode_nibbles(block.qs, f16_to_f32(block.d), kIq4nlValues, dst + 32 * b);
        break;
      }
      case DType::iq4_xs: {
        const auto block = read_block<BlockIQ4_XS>(src, b);
        const float d = f16_to_f32(block.d);
        for (int j = 0; j < 8; ++j)
          decode_nibbles(block.qs + 16 * j, d * static_cast<float>(iq4_xs_scale(block, j) - 32), kIq4nlValues,
                         dst + 256 * b + 32 * j);
        break;
      }
      case DType::mxfp4: {  // ggml: values[nibble] * d (the same product as d * values[nibble])
        const auto block = read_block<BlockMXFP4>(src, b);
        decode_nibbles(block.qs, e8m0_to_f32_half(block.e), kMxfp4Values, dst + 32 * b);
        break;
      }
      default: MOAT_INTERNAL_ERROR("dequantize_iq4_blocks: ", dtype_name(type), " is not a 4-bit table format");
    }
  }
}

}  // namespace moat::ir
