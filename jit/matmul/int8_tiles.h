// Internal to the matmul strategies that multiply a q8_0 A by a Q8_0 / Q4_0 / Q5_0 B (or
// a q8_k A by a packed K-quant B: int8_tiles_k.cpp) in integers on the CPU
// (int8_gemm, int8_gemv_packed, grouped_experts_int8; Q4_1 / Q5_1 / IQ4_NL packed only): 16 weight
// rows at a time ("a tile"), laid out for `dot4` — for every block and 4-byte quad q of
// it, the 16 rows' quads side by side as unsigned bytes (q8_0: q + 128; q4_0: the
// nibbles, q + 8; q5_0: the 5-bit values, q + 16), and the 16 block scales — either read from the packed layout
// (jit/weight_packing.h) or copied into local memory by the work-group.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

inline constexpr int64_t kTileCols = 16;  // weight rows (output columns) per tile

struct WeightTile {
  int quads = -1, scales = -1;  // local: [block][q][column][4] bytes, [block][column] f32
  std::vector<NodeRef> stmts;
  NodeRef packed_tile;          // packed weights (no local copy): the tile's index
};

// The tile of a packed weight whose first row (of all B's rows) is 16 * `tile`.
WeightTile packed_tile(NodeRef tile);
// The 16 weight rows of a work-group laid out for dot4 in local memory; `b_row_of(c)`
// is column c's row of B (an index of B's rows).
WeightTile weight_tile(MatmulBuilder& mm, const std::function<NodeRef(const NodeRef&)>& b_row_of);
// Quad vector q (0..7) of block `blk` of the tile: 16 columns x 4 unsigned bytes.
NodeRef tile_quads(MatmulBuilder& mm, const WeightTile& t, const NodeRef& blk, int q);
// The tile's 16 scales of block `blk` as f32 x 16.
NodeRef tile_scales(MatmulBuilder& mm, const WeightTile& t, const NodeRef& blk);
// A packed Q4_1 / Q5_1 tile's 16 mins of block `blk` as f32 x 16.
NodeRef tile_mins(MatmulBuilder& mm, const WeightTile& t, const NodeRef& blk);

// For rows of A whose first blocks are the lets `a_blk` (one per row): the block loop
// accumulating 16 columns of each row into the f32 x 16 vars `acc` (declared here).
std::vector<NodeRef> int8_rows(MatmulBuilder& mm, const WeightTile& t, const std::vector<std::string>& a_blk,
                               std::vector<std::string>& acc);
// int8_rows for a packed K-quant tile (Q2_K .. Q6_K) and rows of a q8_k A (int8_tiles_k.cpp);
// int8_rows calls it for those. With `terms` (one row of A): the row's scalars per
// super-block read from local memory, where k_row_terms put them once.
struct KRowTerms {
  int sub = -1;  // local i32 [super-block][sub-block]: Q4_K the 32 quants' sum, Q6_K -32 x the 16's
  int d = -1;    // local f32 [super-block]: d_a
};
KRowTerms k_row_terms(MatmulBuilder& mm, const std::string& a_blk, std::vector<NodeRef>& stmts);
std::vector<NodeRef> int8_rows_k(MatmulBuilder& mm, const WeightTile& t, const std::vector<std::string>& a_blk,
                                 std::vector<std::string>& acc, const KRowTerms* terms = nullptr);
// Stores 16 outputs (batch, m, n0 .. n0 + 15) from an f32 x 16, those below N.
std::vector<NodeRef> store_columns(MatmulBuilder& mm, const NodeRef& batch, const NodeRef& m, const NodeRef& n0,
                                   const std::string& acc);
// Where a dot4 sum of A's block (at byte `at`) with unsigned weights starts (i32): the
// weights carry their block format's integer_offset (q8_0 + 128, q4_0 + 8, q5_0 + 16, the
// codebooks + 128), so -offset x the sum of the block's 32 quants; 0 for q4_1 / q5_1.
NodeRef a_block_start(MatmulBuilder& mm, const NodeRef& at);
// The sum of the 32 quants of A's block at byte `at`, as scalar `s` (i32 or f32).
NodeRef a_quant_sum(MatmulBuilder& mm, const NodeRef& at, Scalar s = Scalar::f32);
// The unsigned codebook values (u8 x N) of nibbles (u8 x N): iq4_nl / mxfp4 / iq4_xs tiles.
NodeRef codebook_values(Kernel& k, const TableDecl& book, const NodeRef& nibbles);
// `v` as `lanes` u8 lanes.
NodeRef u8s(int64_t v, int lanes);
// Bit `from` of every byte of `bytes` (u8 x lanes) moved to bit `to`, the other bits 0.
NodeRef move_bit(const NodeRef& bytes, int from, int to, int lanes);

}  // namespace moat::jit::matmul
