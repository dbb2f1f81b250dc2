// The reference decoders of the quantised types beyond Q8_0 / Q4_0 / Q4_K / Q6_K, one
// file per family, called by dequantize_row (ir/quant.h) with `blocks` whole blocks of
// `type` at src (bytes in ggml's layout) into dst (blocks * block_elems f32). Each is
// written from ggml's dequantize_row_* in ggml's order of operations, so results are
// bit-identical to ggml and gguf-py (tests/ir/quant_test.cpp checks vectors made with
// gguf.quants).
#pragma once

#include <cstdint>
#include <cstring>

#include "ir/dtype.h"

namespace moat::ir {

// The first of x[0..n) with the largest magnitude, signed (0 when all are 0 or NaN): the
// value ggml's reference quantisers scale by.
inline float first_largest_magnitude(const float* x, int n) {
  float amax = 0.0f, vmax = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float a = x[i] < 0.0f ? -x[i] : x[i];
    if (a > amax) {
      amax = a;
      vmax = x[i];
    }
  }
  return vmax;
}

// Runs `Decode` on each of `blocks` blocks at src (copied out first, so src needs no
// alignment), writing `Elems` floats per block to dst.
template <class Block, int64_t Elems, void (*Decode)(const Block&, float*)>
void decode_each_block(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i) {
    Block b;
    std::memcpy(&b, src + i * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
    Decode(b, dst + i * Elems);
  }
}

// q4_1, q5_0, q5_1 (ir/quant_legacy.cpp)
void dequantize_legacy_blocks(DType type, const uint8_t* src, float* dst, int64_t blocks);
// q2_k, q3_k, q5_k, q8_k (ir/quant_k.cpp)
void dequantize_k_blocks(DType type, const uint8_t* src, float* dst, int64_t blocks);
// iq4_nl, iq4_xs, mxfp4: 4-bit indices into a 16-value table (ir/quant_iq4.cpp)
void dequantize_iq4_blocks(DType type, const uint8_t* src, float* dst, int64_t blocks);
// iq3_xxs, iq3_s, iq2_xxs, iq2_xs, iq2_s, iq1_s, iq1_m: indices into ggml's lattice grids
// (ir/quant_iq_grids.cpp)
void dequantize_iq_grid_blocks(DType type, const uint8_t* src, float* dst, int64_t blocks);
// q8_k, the activations of K-type matmuls (ir/quant_q8_k.cpp; routed there by
// dequantize_row instead of dequantize_k_blocks)
void dequantize_q8_k_blocks(const uint8_t* src, float* dst, int64_t blocks);

}  // namespace moat::ir
