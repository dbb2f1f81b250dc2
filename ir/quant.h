// Block-quantised weight formats (ggml / GGUF layouts) and their reference
// (de)quantisers: the oracle every dequantising kernel is tested against.
//
// All multi-byte fields are little-endian; `d` / `dmin` are f16 bit patterns
// (support/half.h). Blocks are read with memcpy, so `src` needs no alignment.
// Dequantisation is done in f32 in ggml's order of operations (dequantize_row_* in
// ggml/src/ggml-quants.c), so results are bit-identical to ggml and gguf-py:
//   q8_0  x[i] = d * qs[i]
//   q4_0  x[i] = d * (nibble(i) - 8); bytes qs[0..15]: low nibbles are elements
//         0..15, high nibbles elements 16..31
//   q4_k  256 elements in 8 sub-blocks j of 32, each with a 6-bit scale sc[j] and
//         6-bit min m[j] (q4_k_scale_min): x = (d * sc[j]) * nibble - (dmin * m[j]).
//         qs holds 4 chunks of 32 bytes; chunk c's low nibbles are sub-block 2c, its
//         high nibbles sub-block 2c + 1
//   q6_k  256 elements in 16 sub-blocks of 16, int8 scale each:
//         x = (d * scales[i / 16]) * (q6(i) - 32), q6 = 4 low bits from ql, 2 high
//         bits from qh (see dequantize_block_q6_k for the interleave)
//   q8_k  256 elements, f32 d: x[i] = d * qs[i]; bsums[g] is the sum of qs[16g .. 16g + 15]
//         (activations of K-type matmuls, never a weight)
#pragma once

#include <cstdint>

#include "ir/dtype.h"

namespace moat::ir {

struct BlockQ8_0 {
  uint16_t d;      // f16 scale
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_0 {
  uint16_t d;      // f16 scale
  uint8_t qs[16];  // element i in the low nibble of qs[i], element 16 + i in the high
};
static_assert(sizeof(BlockQ4_0) == 18);

struct BlockQ4_K {
  uint16_t d;          // f16 super-block scale of the 6-bit scales
  uint16_t dmin;       // f16 super-block scale of the 6-bit mins
  uint8_t scales[12];  // 8 scales + 8 mins, 6 bits each (q4_k_scale_min)
  uint8_t qs[128];     // 4-bit quants
};
static_assert(sizeof(BlockQ4_K) == 144);

struct BlockQ6_K {
  uint8_t ql[128];    // low 4 bits
  uint8_t qh[64];     // high 2 bits
  int8_t scales[16];  // one per 16 elements
  uint16_t d;         // f16 super-block scale
};
static_assert(sizeof(BlockQ6_K) == 210);

struct BlockQ8_K {
  float d;             // f32 scale
  int8_t qs[256];
  int16_t bsums[16];   // sums of each 16 quants
};
static_assert(sizeof(BlockQ8_K) == 292);

// Unpacks the 6-bit scale and min of sub-block j (0..7) of a q4_k block (ggml's
// get_scale_min_k4). Bytes 0..3: scales 0..3 in bits 0..5, high bits of scales 4..7
// in bits 6..7; bytes 4..7 likewise for mins; bytes 8..11: low 4 bits of scale 4..7
// (bits 0..3) and of min 4..7 (bits 4..7).
inline void q4_k_scale_min(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// Dequantises `elems` elements (a multiple of the block size) of `type` from `src`
// (bytes in the dtype's encoding) into dst. Works for every dtype: plain floats
// convert (exactly), ints convert to the nearest float, bool -> 0 / 1.
void dequantize_row(DType type, const uint8_t* src, float* dst, int64_t elems);

// Reference quantisers, bit-identical to ggml's quantize_row_*_ref compiled without
// FMA contraction. `elems` is a multiple of 32; dst gets elems / 32 blocks.
//   q8_0  d = amax / 127, q = roundf(x / d) (ties away from zero)
//   q4_0  d = v / -8 where v is the first element of largest |v|,
//         q = min(15, trunc(x / d + 8.5)) (computed as f32 x * (1 / d), then + 8.5f)
void quantize_row_q8_0(const float* src, uint8_t* dst, int64_t elems);
void quantize_row_q4_0(const float* src, uint8_t* dst, int64_t elems);
// q8_k (ggml's quantize_row_q8_K_ref), `elems` a multiple of 256: per 256, v = the first
// element of largest |v|, iscale = -127 / v, q = min(127, round-half-even(iscale * x)),
// bsums the sums of each 16 q, d = 1 / iscale (f32); a block of zeros is all zero.
void quantize_row_q8_k(const float* src, uint8_t* dst, int64_t elems);

// llama.cpp's rule for a matmul with quantised weights: the activations are quantised
// (the legacy types, IQ4_NL and MXFP4: to Q8_0, each 32 along K; the K-types and the other
// IQ types: to Q8_K, each 256) and
// multiplied with the weight blocks as integers (its vec_dot_type). Model builders cast A
// to that type before such a matmul; kernels then use int8 dot products. The activation
// type of weights of `weight`, DType::f32 where A stays float.
inline DType activation_dtype(DType weight) {
  switch (weight) {
    case DType::q8_0: case DType::q4_0: case DType::q5_0: case DType::iq4_nl: case DType::mxfp4: return DType::q8_0;
    // llama.cpp's q8_1: q8_0's quants and d, plus d * their sum, which kernels take from the quants
    case DType::q4_1: case DType::q5_1: return DType::q8_0;
    case DType::q2_k: case DType::q3_k: case DType::q4_k: case DType::q5_k: case DType::q6_k: return DType::q8_k;
    case DType::iq4_xs: case DType::iq3_xxs: case DType::iq3_s: case DType::iq2_xxs: case DType::iq2_xs:
    case DType::iq2_s: case DType::iq1_s: case DType::iq1_m: return DType::q8_k;
    default: return DType::f32;
  }
}
// Whether weights of `weight` get quantised activations.
inline bool quantises_activations(DType weight) { return activation_dtype(weight) != DType::f32; }
// The types activations are quantised to (a float -> quantised cast's targets).
inline bool is_activation_dtype(DType t) { return t == DType::q8_0 || t == DType::q8_k; }

// DeepSeek-V3 FP8 weights: w [rows, cols] f8_e4m3 with f32 scale_inv
// [ceil(rows / block_rows), ceil(cols / block_cols)] (usually 128 x 128):
// value = fp8(w[r][c]) * scale_inv[r / block_rows][c / block_cols].
// Dequantises row `row` (w_row points at its `cols` bytes; scale_inv at the whole
// scale matrix) into dst[cols].
void dequantize_fp8_block_row(const uint8_t* w_row, const float* scale_inv, int64_t row, int64_t cols,
                              int64_t block_rows, int64_t block_cols, float* dst);

}  // namespace moat::ir
