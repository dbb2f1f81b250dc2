// Internal to the lowering: one function per kernel family, each filling plan buffer
// `out` with the value of node `id` (schedules from ctx.schedule).
#pragma once

#include "jit/lower_builder.h"

namespace moat::jit {

// Elementwise ops, views, gathers, casts and copies: one store per output element.
PlanKernel map_kernel(LowerContext& ctx, ir::NodeId id, int out);
// reduce_sum / reduce_max over one axis (the operand's producers fused in).
PlanKernel reduce_kernel(LowerContext& ctx, ir::NodeId id, int out);
// topk over the last axis: k selection passes per row.
PlanKernel topk_kernel(LowerContext& ctx, ir::NodeId id, int out);
// matmul with a plain, quantised or fp8-with-block-scales B (lower_matmul.cpp).
PlanKernel matmul_kernel(LowerContext& ctx, ir::NodeId id, int out);

// Whether matmul operand B `id` is gather(table[E, .., N, K], idx), read in place.
bool is_gathered_weight(const ir::Graph& g, ir::NodeId id);

}  // namespace moat::jit
