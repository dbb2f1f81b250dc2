// Internal to the CPU's strategies over float weights in tiles of 16 rows
// (jit/weight_packing.h): float_expert_tiles.cpp (experts gathered from a table, a row
// of A per slot) and float_tiles.cpp (a weight read whole, rows of A in passes). A
// vector of a tile is B(k, n .. n + 15), so a row's tiles of outputs accumulate A[row, k]
// (broadcast) times such vectors, k in order, and are stored as vectors: no horizontal
// adds, and each converted vector of B serves every row of the pass beside it. Every
// output is the same chain of multiply-adds over k in order whatever the rows beside it,
// so a row's result does not depend on the batch it came in.
#pragma once

#include <cstdint>
#include <vector>

#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

inline constexpr int64_t kTileLanes = kPackRows;  // columns per tile: one vector of f32

// Tiles a work-group takes at most: 8, or the largest power of two below that divides
// `tiles` (a matrix's).
int64_t float_block_tiles(int64_t tiles);

// A row of A and of the output: the output batch and the row within it.
struct TileRow {
  NodeRef batch, m;
};

// One pass: `rows` times matrix `matrix`'s tiles t0 .. t0 + block_tiles - 1 (B's tiles
// over all its matrices: matrix * N / 16 + tile), as many tiles at a time as 16
// accumulators of 16 f32 hold (6 where the schedule's vectors are narrower: AVX2's 16
// registers; a power of two: with one row and 8 tiles a block, 8 chains, so the
// multiply-adds of one k do not wait on each other).
NodeRef float_tile_pass(MatmulBuilder& mm, const std::vector<TileRow>& rows, const NodeRef& matrix, const NodeRef& t0,
                        int64_t block_tiles);

}  // namespace moat::jit::matmul
