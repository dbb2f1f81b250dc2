// The matmul strategies in the order they are tried: the most specific first (float
// weights in the CPU's tiles of 16 rows, expert tables and weights read whole, which
// only they read; a GPU's packed int8 weights, its few-row products with float
// weights; MoE experts grouped, int8 products, packed weights, a few rows in blocks of
// columns), then the CPU's tiles, the GPU's split over K, and per_output, which takes
// every matmul left.
#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

namespace {

const MatmulStrategy* const kOrder[] = {
    &kFloatExpertTiles, &kFloatTiles,     &kGpuInt8Tiles, &kGpuInt8TilesK,  &kGpuFloatGemv,      &kGroupedExpertsInt8, &kGroupedExperts,
    &kInt8Gemm,         &kInt8GemvPacked, &kTiledColumns, &kTiled,          &kTiledUntransposed, &kSplitK,             &kPerOutput,
};

}  // namespace

std::span<const MatmulStrategy* const> matmul_strategies() { return kOrder; }

}  // namespace moat::jit::matmul
