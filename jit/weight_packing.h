// A layout for Q8_0 / Q4_0 / Q5_0 / Q4_1 / Q5_1 weights that int8 kernels read without rearranging them
// (the CPU's; on GPUs the legacy 32-blocks and Q4_K, whose lanes read a tile's block in 16-byte loads,
// jit/matmul/gpu_int8_tiles[_k].cpp):
// rows in tiles of 16, each block's 16 rows side by side by 4-byte quads, the scales
// apart. It is what `dot4` wants (16 columns' quads in one 64-byte vector), so the
// prefill GEMM no longer lays each weight tile out per pass and the decode GEMV runs 16
// columns per instruction. llama.cpp repacks Q4_0 for its AVX-512 kernels the same way.
//
// A weight W [.., R, K] (R rows over all leading dimensions, R % 16 == 0, K % 32 == 0;
// kb = K / 32 blocks per row) becomes two buffers:
//   quads   u8. Tile t = rows 16t .. 16t + 15, block b, 64-byte vector v at byte
//           ((t * kb + b) * V + v) * 64, lane c (row 16t + c) at + 4c:
//             q8_0  V = 8: bytes 4v .. 4v + 3 of the row's 32 quants, each + 128 (unsigned)
//             q4_0  V = 4: bytes 4v .. 4v + 3 of the row's 16 packed bytes as stored
//                   (low nibbles: elements 4v + i; high: 16 + 4v + i)
//             q5_0  V = 5: v < 4 the nibbles as q4_0; v = 4 the fifth bits (qh), byte i
//                   of the lane holding in bit q (0..7) the fifth bit of element 4q + i.
//                   Quad q of q4_0's order (q < 4: low nibbles of bytes 4q.., q >= 4:
//                   high nibbles of bytes 4(q - 4)..) is elements 4q .. 4q + 3, so its
//                   fifth bits as bytes 0 / 16 are one shift and one mask of that
//                   vector: (x << (4 - q)) & 16 for q <= 4, (x >> (q - 4)) & 16 above.
//             q4_1  as q4_0; q5_1 as q5_0 (the values unsigned, x = d * q + m)
//             iq4_nl  as q4_0 (the nibbles index kvalues_iq4nl, read through
//                   jit/block_formats.h's unsigned_codebook); mxfp4 the same (kvalues_mxfp4)
//   scales  f16, the row's block scale d at (t * kb + b) * S + c, S = 16; q4_1 / q5_1:
//           S = 32 and the block's min m at + 16; mxfp4: the E8M0 exponent e in the
//           slot's low byte (its bits, not an f16 value).
// The same bytes as the file (Q8_0: 544 per tile and block either way; Q4_0: 288; Q4_1: 320;
// Q5_0: 352, Q5_1: 384), MXFP4 288 for 272.
//
// Q2_K / Q3_K / Q4_K / Q5_K / Q6_K / IQ4_XS (super-blocks of 256; sb = K / 256 per row; tile and super-block
// tb = t * sb + b), for the int8 kernels with q8_k activations (int8_tiles_k.cpp):
//   quads   u8, packed_block_bytes per tile and super-block, at tb * that:
//             q2_k  [0, 1024): qs as 16 vectors (lane c = qs bytes 4v .. 4v + 3 of row c:
//                   vector 8n + q, bits 2j .. 2j + 1 = quad q of elements 128n + 32j ..);
//                   [1024, 1280): the byte of 16-element sub-block s (4-bit scale, 4-bit
//                   min above it, as stored) of row c at 1024 + 16s + c
//             q3_k  qs as q2_k's; [1024, 1536): hmask as 8 vectors (vector q: bit 4n + j
//                   of each byte is bit 2 of quad q of those elements, set: no -4);
//                   [1536, 1792): the 6-bit scale - 32 (int8) of sub-block s at 1536 + 16s + c
//             q4_k  [0, 2048): 32 vectors, vector v lane c = bytes 4v .. 4v + 3 of row c's
//                   qs as stored (vectors 8j .. 8j + 7: low nibbles sub-block 2j, high
//                   nibbles sub-block 2j + 1, quad q of each in vector 8j + q);
//                   [2048, 2176): sub-block s's 6-bit scale of row c at 2048 + 16s + c;
//                   [2176, 2304): its 6-bit min at 2176 + 16s + c (unpacked, u8)
//             q5_k  [0, 2048): qs as q4_k's; [2048, 2560): qh as 8 vectors, vector q
//                   lane c = qh bytes 4q .. 4q + 3 of row c (bit s of byte l: the fifth
//                   bit of element l of sub-block s, so quad q of sub-block s gets its
//                   fifth bits as 0 / 16 with one shift and one mask); scales and mins
//                   as q4_k's at 2560 and 2688
//             q6_k  [0, 4096): 64 vectors, vector v lane c = the 6-bit values (0..63, one
//                   byte each) of row c's elements 4v .. 4v + 3; [4096, 4352): the int8
//                   scale of 16-element sub-block s of row c at 4096 + 16s + c
//             iq4_xs  [0, 2048): 32 vectors, vector v lane c = bytes 4v .. 4v + 3 of row c's
//                   qs as stored (sub-block s: vectors 4s .. 4s + 3, low nibbles its
//                   elements 0..15, high 16..31; indices into kvalues_iq4nl); [2048, 2176):
//                   sub-block s's 6-bit scale - 32 (int8) of row c at 2048 + 16s + c
//   scales  f16, packed_block_scales per tile and super-block, at tb * that: d of row c
//           at + c; q2_k, q4_k, q5_k: dmin at + 16 + c.
// IQ4_XS: 2208 for 2176. Q2_K: 1344 bytes per tile and super-block, as the file; Q3_K 1824 for 1760; Q4_K:
// 2368 for 2304 (the scales unpacked), Q5_K 2880 for 2816; Q6_K: 4384 where the file has 3360 (a byte per value: the 6-bit values
// cost three more instructions per quad to put together than the 30 % more bytes cost
// to read, in the GEMV on a CPU with AVX-512 VNNI).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/dtype.h"

namespace moat::jit {

inline constexpr int64_t kPackRows = 16;

// Float weights (f32 / f16 / bf16) [.., R, K], R % 16 == 0 (each matrix's rows), for the CPU's float
// kernels (jit/matmul/float_tiles.h: weights read whole, expert tables): rows in tiles of 16, each
// k's 16 rows side by side, so one vector of 16 elements is B(k, n .. n + 15):
//   element (row r, k) at ((r / 16) * K + k) * 16 + r % 16
// One plan buffer, "NAME#tiles16", of the weight's dtype and element count (no scales).
std::string packed_tiles_name(std::string_view name);
bool float_packable(ir::DType dtype, const std::vector<int64_t>& shape);
// `bytes`: the weight in its file layout (float_packable(dtype, shape) holds).
std::vector<uint8_t> pack_float_weight(ir::DType dtype, const std::vector<int64_t>& shape, std::span<const uint8_t> bytes);

// Names of the two plan buffers of a packed weight `name` (the Tensor IR param).
std::string packed_quads_name(std::string_view name);
std::string packed_scales_name(std::string_view name);
// The weight's name when `buffer_name` is one of the two (or a float weight's tiles), else "".
std::string packed_weight_of(std::string_view buffer_name);

// Whether a weight of this type and [.., R, K] shape has the packed layout.
bool packable(ir::DType dtype, const std::vector<int64_t>& shape);

// Vectors of 64 bytes per tile and block (8 for q8_0, 4 for q4_0 / q4_1, 5 for q5_0 / q5_1).
int64_t packed_vectors(ir::DType dtype);
// Per tile and block (super-block for Q4_K / Q6_K): bytes of quads, f16 scales.
int64_t packed_block_bytes(ir::DType dtype);
int64_t packed_block_scales(ir::DType dtype);
// Whether the dtype's packed layout is a super-block one (Q2_K..Q6_K: q8_k activations).
bool packed_super_blocks(ir::DType dtype);
// Whether it is one of blocks of 32 (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1: q8_0 activations), and
// whether those blocks carry a min (Q4_1, Q5_1).
bool packed_legacy_blocks(ir::DType dtype);
bool packed_with_mins(ir::DType dtype);

// Sizes of the two buffers: bytes of quads, f16 scales.
struct PackedShape {
  int64_t quad_bytes = 0, scales = 0;
};
PackedShape packed_shape(ir::DType dtype, const std::vector<int64_t>& shape);

struct PackedWeight {
  std::vector<uint8_t> quads;
  std::vector<uint16_t> scales;  // f16 bits
};
// `bytes`: the weight in its ggml layout (packable(dtype, shape) holds).
PackedWeight pack_weight(ir::DType dtype, const std::vector<int64_t>& shape, std::span<const uint8_t> bytes);

}  // namespace moat::jit
