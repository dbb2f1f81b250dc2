// q8_k, the activation format of K-type matmuls (ir/quant.h): the reference decoder and
// quantiser, written from ggml's dequantize_row_q8_K and quantize_row_q8_K_ref.
#include <cmath>
#include <cstring>

#include "ir/quant.h"
#include "ir/quant_families.h"
#include "support/error.h"

namespace moat::ir {

void dequantize_q8_k_blocks(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i) {
    BlockQ8_K b;
    std::memcpy(&b, src + i * static_cast<int64_t>(sizeof b), sizeof b);
    for (int j = 0; j < 256; ++j) dst[256 * i + j] = b.d * static_cast<float>(b.qs[j]);
  }
}

void quantize_row_q8_k(const float* src, uint8_t* dst, int64_t elems) {
  MOAT_INTERNAL_CHECK(elems >= 0 && elems % 256 == 0, "quantize_row_q8_k of ", elems, " elements");
  for (int64_t blk = 0; blk < elems / 256; ++blk) {
    const float* x = src + 256 * blk;
    const float vmax = first_largest_magnitude(x, 256);
    BlockQ8_K b{};  // vmax == 0 (all zeros or NaNs): d = 0, every quant and sum 0
    if (vmax != 0.0f) {
      const float iscale = -127.0f / vmax;
      for (int j = 0; j < 256; ++j) {
        // ggml's nearest_int: round half to even (|iscale * x| <= 127 here)
        const float v = std::nearbyint(iscale * x[j]);
        b.qs[j] = static_cast<int8_t>(std::fmin(127.0f, v));
      }
      for (int g = 0; g < 16; ++g) {
        int sum = 0;
        for (int l = 0; l < 16; ++l) sum += b.qs[16 * g + l];
        b.bsums[g] = static_cast<int16_t>(sum);
      }
      b.d = 1.0f / iscale;
    }
    std::memcpy(dst + sizeof(BlockQ8_K) * blk, &b, sizeof b);
  }
}

}  // namespace moat::ir
