// Internal to the GPU int8 strategies on packed weights (gpu_int8_tiles.cpp,
// gpu_int8_tiles_k.cpp): a sub-group of L lanes per 16-row tile of B, for a chunk of
// `rows` rows of A. With L >= 4, 4-row group g of the tile belongs to the cluster of
// L / 4 consecutive lanes g * L / 4 ..; lane q of a cluster splits the tile's vectors
// and blocks; a sub-group of fewer lanes walks the row groups itself.
#pragma once

#include <string>
#include <vector>

#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

struct GpuTileLanes {
  int64_t L = 1, S = 1;              // lanes per sub-group, sub-groups per work-group
  int64_t cluster = 1, g_step = 1;   // lanes per 4-row group (the reduction's cluster); the row-group loop's step
  int64_t rows = 1, tiles = 0;       // rows of A per work-group; 16-row tiles of B
  NodeRef batch, m0, t, tile, q;     // the prologue's lets: output batch, first row of A, tile (in the
                                     // batch, and over B), lane within the cluster
  NodeRef g0;                        // the lane's first row group
  NodeRef valid(int64_t r) const;    // whether row m0 + r of A exists (M = `m`)
  int64_t m = 0;
};

// Sets the kernel's grid (tiles over sub-groups, chunks of `rows` rows of A, batches) and
// appends the prologue's lets to `body`.
GpuTileLanes gpu_tile_lanes(MatmulBuilder& mm, int64_t rows, std::vector<NodeRef>& body);

// acc[r][j] (row m0 + r of A, tile row 4g + j): f32 vars, declared at zero in `per_group`.
std::vector<std::vector<std::string>> gpu_tile_accumulators(MatmulBuilder& mm, int64_t rows, std::vector<NodeRef>& per_group);

// f16 value j (0..3) of the 4 packed in the i32 words pairs_l0, pairs_l1 (load_vector's
// lanes, low half first), as f32.
NodeRef f16_of_words(const std::string& pairs, int j);

// After the accumulation in `per_group` (acc[r][j]: row m0 + r, tile row 4g + j): the
// clusters' sums, stored by each cluster's lane 0; the row-group loop `g` inside
// `if t < tiles`, appended to `body`.
void gpu_tile_store(MatmulBuilder& mm, const GpuTileLanes& lanes, const std::string& g,
                    const std::vector<std::vector<std::string>>& acc, std::vector<NodeRef> per_group,
                    std::vector<NodeRef>& body);

}  // namespace moat::jit::matmul
