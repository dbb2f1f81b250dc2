// The reference decoders of the quantised types beyond Q8_0 / Q4_0 / Q4_K / Q6_K, one
// file per family, called by dequantize_row (ir/quant.h) with `blocks` whole blocks of
// `type` at src (bytes in ggml's layout) into dst (blocks * block_elems f32). Each is
// written from ggml's dequantize_row_* in ggml's order of operations, so results are
// bit-identical to ggml and gguf-py (tests/ir/quant_test.cpp checks vectors made with
// gguf.quants).
#pragma once

#include <cstdint>

#include "ir/dtype.h"

namespace moat::ir {

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
