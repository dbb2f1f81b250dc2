// Shorthands for writing block formats' decode rules in Kernel IR (jit/block_formats*.cpp),
// and the format families defined outside jit/block_formats.cpp.
#pragma once

#include <vector>

#include "jit/block_formats.h"

namespace moat::jit {

namespace block_rules {

inline NodeRef i64c(int64_t v) { return c_i64(v); }
inline NodeRef shr(NodeRef a, NodeRef b) { return binary(BinaryOp::shr, std::move(a), std::move(b)); }
inline NodeRef shl(NodeRef a, NodeRef b) { return binary(BinaryOp::shl, std::move(a), std::move(b)); }
inline NodeRef bit_and(NodeRef a, NodeRef b) { return binary(BinaryOp::land, std::move(a), std::move(b)); }
inline NodeRef bit_or(NodeRef a, NodeRef b) { return binary(BinaryOp::lor, std::move(a), std::move(b)); }
inline NodeRef to_f32(const NodeRef& x) { return cast(kF32.with_lanes(x->type.lanes), x); }
inline NodeRef splat32(NodeRef x) { return broadcast(std::move(x), 32); }

// q4_k's and q5_k's sub-block j (i64, 0..7): its 6-bit scale and min unpacked from the
// 12-byte field "scales" (ggml's get_scale_min_k4) and multiplied by the f16 fields
// "d" and "dmin". Both are bound (computed once).
struct ScaleMin {
  NodeRef scale, min;  // f32: d * sc, dmin * m
};
ScaleMin q4_k_scale_min(const BlockAccess& b, const NodeRef& j);

}  // namespace block_rules

// q4_1, q5_0, q5_1 (jit/block_formats_legacy.cpp)
std::vector<BlockFormat> legacy_block_formats();
// q2_k, q3_k, q5_k, q8_k (jit/block_formats_k.cpp)
std::vector<BlockFormat> k_block_formats();
// q8_k, the activations of K-type matmuls (jit/block_formats_q8_k.cpp)
std::vector<BlockFormat> q8_k_block_formats();
// iq4_nl, iq4_xs, mxfp4 (jit/block_formats_iq4.cpp)
std::vector<BlockFormat> iq4_block_formats();
// iq3_xxs, iq3_s, iq2_xxs, iq2_xs, iq2_s, iq1_s, iq1_m (jit/block_formats_iq_grids.cpp)
std::vector<BlockFormat> iq_grid_block_formats();

}  // namespace moat::jit
