// Internal to the lowering: one function per kernel family, each filling plan buffer
// `out` with the value of node `id` (schedules from ctx.schedule).
#pragma once

#include <functional>

#include "jit/lower_builder.h"

namespace moat::jit {

// Elementwise ops, views, gathers, casts and copies: one store per output element.
PlanKernel map_kernel(LowerContext& ctx, ir::NodeId id, int out);
// reduce_sum / reduce_max over one axis (the operand's producers fused in).
PlanKernel reduce_kernel(LowerContext& ctx, ir::NodeId id, int out);
// topk over the last axis: k selection passes per row.
PlanKernel topk_kernel(LowerContext& ctx, ir::NodeId id, int out);
PlanKernel kth_largest_kernel(LowerContext& ctx, ir::NodeId id, int out);
// matmul with a plain, quantised or fp8-with-block-scales B (lower_matmul.cpp: the
// first strategy of jit/matmul/ that applies); A may be q8_0 (int8 dot products with a
// Q8_0 / Q4_0 B on the CPU).
PlanKernel matmul_kernel(LowerContext& ctx, ir::NodeId id, int out);
// A cast of a float tensor (a contiguous buffer) to q8_0: one `quantize` per block.
PlanKernel quantize_kernel(LowerContext& ctx, ir::NodeId id, int out);

// attention (the composite, not expanded): streaming online-softmax kernels over the
// keys a query may see (lower_attention.cpp); one or two kernels.
std::vector<PlanKernel> attention_kernels(LowerContext& ctx, ir::NodeId id, int out);
// The nodes attention `id` reads q, k and v from in place (its operands without the
// slices over them): the partition gives them buffers.
std::vector<int> attention_contiguous_operands(const ir::Graph& g, ir::NodeId id);
// write_rows: stores the new rows into `out` (the destination's buffer when in place).
PlanKernel write_rows_kernel(LowerContext& ctx, ir::NodeId id, int out);

// The loops that store one row (the last axis, `len` elements) of node `id`'s value at
// outer index `outer`: `store(j, value)` for each element j. A computed concat along the
// last axis (the node, or under computed unary ops and casts of its shape) gets one loop
// per part, each computing only its part's value, so no element evaluates (and selects
// between) every part's expression (RoPE's rotated half beside the plain one); anything
// else one loop. CPU schedules: a row per iteration.
std::vector<NodeRef> row_loops(KernelBuilder& kb, ir::NodeId id, const std::vector<NodeRef>& outer, int64_t len,
                               const std::function<NodeRef(NodeRef j, NodeRef value)>& store);

// GPU schedules: a work-group of `items` work-items (a power of two) reduces one value
// per work-item (`partial`, scalar) through local memory: returns the statements that
// leave the result in element 0 of a new local buffer, readable by work-item 0 after
// them (a tree of halving steps with barriers; every work-item runs them). Also sets
// the kernel's items[0].
struct GroupReduction {
  std::vector<NodeRef> stmts;
  NodeRef result;  // load of element 0 of the local buffer
};
GroupReduction group_reduce(KernelBuilder& kb, NodeRef partial, BinaryOp combine, int64_t items);
// The work-group size of a GPU reduction over `len` elements: a power of two, at most
// the schedule's work-group size, at least 1.
int64_t reduction_items(const Schedule& s, int64_t len);

// Whether matmul operand B `id` is gather(table[E, .., N, K], idx), read in place.
bool is_gathered_weight(const ir::Graph& g, ir::NodeId id);
// Whether `node` casts a float tensor to q8_0 (activations quantised for a matmul).
bool is_activation_quantise(const ir::Graph& g, const ir::Node& node);

}  // namespace moat::jit
