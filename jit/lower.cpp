// Partition of an expanded graph into materialised nodes and inlined ones, and the
// plan: buffers, then one kernel per materialised computed node, in graph order.
#include "jit/lower.h"

#include <algorithm>

#include "ir/expand.h"
#include "ir/interpreter.h"
#include "ir/quant.h"
#include "ir/tensor.h"
#include "jit/lower_kernels.h"
#include "jit/matmul/matmul.h"
#include "jit/weight_packing.h"
#include "support/error.h"

namespace moat::jit {

bool is_gathered_weight(const ir::Graph& g, ir::NodeId id) {
  const ir::Node& node = g.node(id);
  return node.op == ir::Op::gather && g.type(node.operands[0]).shape.size() >= 3;
}

bool is_activation_quantise(const ir::Graph& g, const ir::Node& node) {
  return node.op == ir::Op::cast && ir::is_quantised(node.type.dtype) && !ir::is_quantised(g.type(node.operands[0]).dtype);
}

namespace {

using ir::Op;
using ir::OpKind;

bool is_anchor(Op op) {
  switch (ir::op_kind(op)) {
    case OpKind::Reduce:
    case OpKind::Matmul:
    case OpKind::TopK:
    case OpKind::Update:
    case OpKind::Composite: return true;  // attention: kept whole
    default: return false;
  }
}

// Which nodes get a buffer of their own, and which reshapes alias their operand's.
struct Partition {
  std::vector<bool> materialised;
  std::vector<bool> alias;
};

Partition partition(const ir::Graph& g, const std::vector<std::vector<int64_t>>& shapes) {
  const size_t n = g.nodes.size();
  std::vector<int> uses(n, 0);
  std::vector<bool> needs_contiguous(n, false);  // matmul operands: loaded by row, not computed
  for (const ir::Node& node : g.nodes) {
    for (ir::NodeId o : node.operands) ++uses[static_cast<size_t>(o)];
    if (node.op == Op::matmul) {
      for (ir::NodeId o : node.operands)
        if (!(o == node.operands[1] && is_gathered_weight(g, o))) needs_contiguous[static_cast<size_t>(o)] = true;
    }
    if (is_activation_quantise(g, node)) needs_contiguous[static_cast<size_t>(node.operands[0])] = true;
    if (node.op == Op::write_rows) needs_contiguous[static_cast<size_t>(node.operands[0])] = true;
    if (node.op == Op::attention)
      for (ir::NodeId o : attention_contiguous_operands(g, static_cast<ir::NodeId>(&node - g.nodes.data())))
        needs_contiguous[static_cast<size_t>(o)] = true;
  }
  // Reads of each value by computations, counted through the views between (RoPE's cos
  // and sin are reshaped once and read by both rotated halves).
  std::vector<int> reads(n, 0);
  for (ir::NodeId o : g.outputs) ++reads[static_cast<size_t>(o)];
  for (size_t i = n; i-- > 0;) {
    const ir::Node& node = g.nodes[i];
    const bool view = ir::op_kind(node.op) == OpKind::View && !needs_contiguous[i];
    for (ir::NodeId o : node.operands) reads[static_cast<size_t>(o)] += view ? std::max(reads[i], 1) : 1;
  }
  // Whether computing a value inline costs a transcendental function (its own, or an
  // inlined operand's): such a value read more than once is computed once, into a buffer.
  std::vector<bool> costly(n, false);
  Partition p{std::vector<bool>(n, false), std::vector<bool>(n, false)};
  for (size_t i = 0; i < n; ++i) {
    const ir::Node& node = g.nodes[i];
    const OpKind kind = ir::op_kind(node.op);
    if (kind == OpKind::Unary || kind == OpKind::Binary || kind == OpKind::Ternary || kind == OpKind::Cast || kind == OpKind::View) {
      costly[i] = node.op == Op::exp || node.op == Op::log || node.op == Op::sin || node.op == Op::cos;
      for (ir::NodeId o : node.operands)
        costly[i] = costly[i] || (costly[static_cast<size_t>(o)] && !p.materialised[static_cast<size_t>(o)]);
    }
    bool mat = false;
    if (node.op == Op::input || node.op == Op::param) mat = true;
    else if (node.op == Op::constant) mat = ir::attr_floats(node, "value").size() > 1 && numel(shapes[i]) > 1;
    else if (node.op == Op::iota) mat = needs_contiguous[i];
    else if (is_anchor(node.op)) mat = true;
    else if (kind == OpKind::Unary || kind == OpKind::Binary || kind == OpKind::Ternary || kind == OpKind::Cast)
      mat = uses[i] > 1 || needs_contiguous[i] || (reads[i] > 1 && costly[i]);
    else if (kind == OpKind::View || kind == OpKind::Gather) mat = needs_contiguous[i];
    // Views and gathers of quantised weights are always read through to the weight; the
    // quantised values a kernel computes are a cast to q8_0 (activations) and rows
    // written into a quantised cache.
    if (ir::is_quantised(node.type.dtype) && kind != OpKind::Source && kind != OpKind::Update)
      mat = is_activation_quantise(g, node);
    if (node.op == Op::reshape && (p.materialised[static_cast<size_t>(node.operands[0])] ||
                                   p.alias[static_cast<size_t>(node.operands[0])])) {
      p.alias[i] = true;  // the same bytes under another shape
      mat = false;
    }
    p.materialised[i] = mat;
  }
  for (ir::NodeId o : g.outputs)
    if (!p.alias[static_cast<size_t>(o)]) p.materialised[static_cast<size_t>(o)] = true;
  return p;
}

// Whether `user` is a matmul that reads `operand` as its transposed B, [.., N, K], beside
// an A of `a_dtype` (with one row when `one_row`).
bool transposed_b_of(const ir::Graph& g, ir::NodeId user, ir::NodeId operand, ir::DType a_dtype, bool one_row) {
  const ir::Node& u = g.node(user);
  if (u.op != Op::matmul || u.operands.size() != 2 || u.operands[1] != operand || u.operands[0] == operand) return false;
  if (!ir::attr_bool(u, "b_transposed")) return false;
  const ir::TensorType& a = g.type(u.operands[0]);
  const ir::Dim& m = a.shape[a.shape.size() - 2];
  return a.dtype == a_dtype && (!one_row || (m.is_static() && m.value == 1));
}

// Whether `user` gathers expert rows of param `id` that only matmuls with one row of A
// of `a_dtype` each read.
bool experts_of_one_row_matmuls(const ir::Graph& g, ir::NodeId id, ir::NodeId user,
                                const std::vector<std::vector<ir::NodeId>>& users, ir::DType a_dtype) {
  const ir::Node& u = g.node(user);
  if (u.op != Op::gather || u.operands[0] != id || !is_gathered_weight(g, user)) return false;
  for (ir::NodeId m : users[static_cast<size_t>(user)])
    if (!transposed_b_of(g, m, user, a_dtype, true)) return false;
  return true;
}

// Whether param `id` gets the packed CPU layout (jit/weight_packing.h): every use is B of
// an int8 matmul (A quantised to the weight's activation type, ir::activation_dtype: q8_0
// or q8_k; B [.., N, K] transposed), directly or through a gather of
// expert rows whose matmuls have one row of A each (the kernels that read the layout:
// jit/matmul/'s int8 GEMV, GEMM and grouped experts).
bool packs_weight(const ir::Graph& g, ir::NodeId id, const std::vector<std::vector<ir::NodeId>>& users,
                  const std::vector<int64_t>& shape) {
  const ir::Node& param = g.node(id);
  if (param.op != Op::param || !packable(param.type.dtype, shape) || users[static_cast<size_t>(id)].empty()) return false;
  const ir::DType a_dtype = ir::activation_dtype(param.type.dtype);
  if (!ir::is_quantised(a_dtype)) return false;
  for (ir::NodeId user : users[static_cast<size_t>(id)])
    if (!transposed_b_of(g, user, id, a_dtype, false) && !experts_of_one_row_matmuls(g, id, user, users, a_dtype)) return false;
  return true;
}

// Whether float param `id` gets the CPU's tiles of 16 rows (jit/weight_packing.h): each
// of its uses is a matmul reading it whole as its transposed B beside an f32 A
// (jit/matmul/float_tiles.cpp) or, for an expert table [E, N, K], a gather of expert rows
// read by matmuls with one f32 row of A each (jit/matmul/float_expert_tiles.cpp).
bool tiles_float_weight(const ir::Graph& g, ir::NodeId id, const std::vector<std::vector<ir::NodeId>>& users,
                        const std::vector<int64_t>& shape) {
  const ir::Node& param = g.node(id);
  if (param.op != Op::param || !float_packable(param.type.dtype, shape) || users[static_cast<size_t>(id)].empty())
    return false;
  for (ir::NodeId user : users[static_cast<size_t>(id)]) {
    if (transposed_b_of(g, user, id, ir::DType::f32, false)) continue;
    if (shape.size() != 3 || users[static_cast<size_t>(user)].empty() ||
        !experts_of_one_row_matmuls(g, id, user, users, ir::DType::f32))
      return false;
  }
  return true;
}

int add_buffer(Plan& plan, PlanBuffer b) {
  b.bytes = ir::tensor_bytes(b.dtype, b.shape);
  plan.buffers.push_back(std::move(b));
  return static_cast<int>(plan.buffers.size()) - 1;
}

std::vector<PlanKernel> kernels_for(LowerContext& ctx, ir::NodeId id, int out) {
  if (is_activation_quantise(ctx.graph, ctx.node(id))) return {quantize_kernel(ctx, id, out)};
  switch (ir::op_kind(ctx.node(id).op)) {
    case OpKind::Reduce: return {reduce_kernel(ctx, id, out)};
    case OpKind::Matmul: return {matmul_kernel(ctx, id, out)};
    case OpKind::TopK: return {ctx.node(id).op == Op::topk ? topk_kernel(ctx, id, out) : kth_largest_kernel(ctx, id, out)};
    case OpKind::Composite: return attention_kernels(ctx, id, out);
    case OpKind::Update: return {write_rows_kernel(ctx, id, out)};
    default: return {map_kernel(ctx, id, out)};
  }
}

// Whether write_rows `id` may store into its destination's own buffer: the destination
// is an input that is not an output, and every other computation reading it runs before
// the write (kernels run in node order), so none reads the new rows for the old: each
// other reader is a kernel of a lower node id, or a value computed inline (or a view)
// whose readers are, in turn (a ring read by attention, then written, DeepSeek-V4).
bool writes_in_place(const ir::Graph& g, ir::NodeId id, const std::vector<std::vector<ir::NodeId>>& users,
                     const Partition& part) {
  const ir::NodeId dst = g.node(id).operands[0];
  if (g.node(dst).op != Op::input) return false;
  if (std::find(g.outputs.begin(), g.outputs.end(), dst) != g.outputs.end()) return false;
  std::vector<ir::NodeId> readers_of{dst};
  while (!readers_of.empty()) {
    const ir::NodeId v = readers_of.back();
    readers_of.pop_back();
    for (ir::NodeId u : users[static_cast<size_t>(v)]) {
      if (u == id && v == dst) continue;
      if (u >= id) return false;
      if (std::find(g.outputs.begin(), g.outputs.end(), u) != g.outputs.end() && !part.materialised[static_cast<size_t>(u)])
        return false;  // an output view of the old rows
      if (!part.materialised[static_cast<size_t>(u)] || part.alias[static_cast<size_t>(u)]) readers_of.push_back(u);
    }
  }
  return true;
}
}  // namespace

Plan lower(const ir::Graph& graph, const ir::SymbolValues& symbols, const Schedule& schedule, const LowerOptions& options) {
  const Op kept[] = {Op::attention};
  const ir::Graph g = ir::expand_composites(graph, kept);
  Plan plan;
  LowerContext ctx{g,        {}, std::vector<int>(g.nodes.size(), -1), plan, schedule, std::vector<int>(g.nodes.size(), -1),
                   std::vector<bool>(g.nodes.size(), false)};
  for (const ir::Node& node : g.nodes) ctx.shapes.push_back(ir::resolve(node.type.shape, symbols));
  const Partition part = partition(g, ctx.shapes);
  std::vector<std::vector<ir::NodeId>> users(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (ir::NodeId o : g.nodes[i].operands) users[static_cast<size_t>(o)].push_back(static_cast<ir::NodeId>(i));

  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& node = g.nodes[i];
    const ir::NodeId id = static_cast<ir::NodeId>(i);
    PlanBuffer b;
    b.dtype = node.type.dtype;
    b.shape = ctx.shapes[i];
    if (part.alias[i]) {
      b.name = "reshape%" + std::to_string(i);
      b.alias_of = ctx.buffer_of[static_cast<size_t>(node.operands[0])];
      ctx.buffer_of[i] = add_buffer(plan, std::move(b));
      continue;
    }
    if (!part.materialised[i]) continue;
    const bool device_packs = !schedule.gpu || matmul::gpu_reads_packed(schedule, node.type.dtype, b.shape);
    if (device_packs && packs_weight(g, id, users, b.shape)) {  // two buffers: quads, scales
      const std::string& name = ir::attr_string(node, "name");
      const PackedShape ps = packed_shape(node.type.dtype, b.shape);
      PlanBuffer quads, scales;
      quads.role = scales.role = PlanBuffer::Role::param;
      quads.name = packed_quads_name(name);
      quads.dtype = ir::DType::u8;
      quads.shape = {ps.quad_bytes};
      scales.name = packed_scales_name(name);
      scales.dtype = ir::DType::f16;
      scales.shape = {ps.scales};
      ctx.buffer_of[i] = add_buffer(plan, std::move(quads));
      ctx.packed_scales_of[i] = add_buffer(plan, std::move(scales));
      continue;
    }
    if (!schedule.gpu && tiles_float_weight(g, id, users, b.shape) &&
        (!options.may_copy || options.may_copy(ir::attr_string(node, "name")))) {  // one buffer: the tiles
      b.role = PlanBuffer::Role::param;
      b.name = packed_tiles_name(ir::attr_string(node, "name"));
      b.shape = {numel(b.shape)};
      ctx.buffer_of[i] = add_buffer(plan, std::move(b));
      ctx.float_tiles_of[i] = true;
      continue;
    }
    if (node.op == Op::input || node.op == Op::param) {
      b.role = node.op == Op::input ? PlanBuffer::Role::input : PlanBuffer::Role::param;
      b.name = ir::attr_string(node, "name");
      ctx.buffer_of[i] = add_buffer(plan, std::move(b));
      continue;
    }
    if (node.op == Op::constant) {
      b.role = PlanBuffer::Role::constant;
      b.name = "constant%" + std::to_string(i);
      ir::HostTensor value = ir::evaluate_constant(node, b.shape);
      b.data.assign(value.bytes().begin(), value.bytes().end());
      ctx.buffer_of[i] = add_buffer(plan, std::move(b));
      continue;
    }
    b.name = ir::describe(g, id);
    if (node.op == Op::write_rows && writes_in_place(g, id, users, part)) {
      b.alias_of = ctx.buffer_of[static_cast<size_t>(node.operands[0])];
      b.in_place = true;
    }
    const int out = add_buffer(plan, std::move(b));
    if (node.op == Op::write_rows && !plan.buffers[static_cast<size_t>(out)].in_place)
      plan.kernels.push_back(map_kernel(ctx, node.operands[0], out));  // a copy of the destination first
    for (PlanKernel& k : kernels_for(ctx, id, out)) plan.kernels.push_back(std::move(k));
    ctx.buffer_of[i] = out;
  }

  // Outputs: a computed buffer becomes the output; a source, an alias or an output
  // listed twice is copied into a buffer of its own.
  for (ir::NodeId o : g.outputs) {
    const int buffer = ctx.buffer_of[static_cast<size_t>(o)];
    MOAT_INTERNAL_CHECK(buffer >= 0, "output ", ir::describe(g, o), " has no buffer");
    PlanBuffer& pb = plan.buffers[static_cast<size_t>(buffer)];
    if (pb.in_place && std::find(plan.outputs.begin(), plan.outputs.end(), buffer) == plan.outputs.end()) {
      plan.outputs.push_back(buffer);  // the updated input itself
      continue;
    }
    if (pb.role == PlanBuffer::Role::intermediate && pb.alias_of < 0) {
      pb.role = PlanBuffer::Role::output;
      plan.outputs.push_back(buffer);
      continue;
    }
    if (ir::is_quantised(pb.dtype))
      user_error("graph output ", ir::describe(g, o), " is a quantised tensor; cast it to a float type to output it");
    PlanBuffer copy;
    copy.role = PlanBuffer::Role::output;
    copy.name = "output " + ir::describe(g, o);
    copy.dtype = pb.dtype;
    copy.shape = pb.shape;
    const int out = add_buffer(plan, std::move(copy));
    plan.kernels.push_back(map_kernel(ctx, o, out));
    plan.outputs.push_back(out);
  }
  return plan;
}

}  // namespace moat::jit
