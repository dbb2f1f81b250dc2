// Map, reduction and top-k kernels. CPU schedule: each work-group (one thread's task)
// takes a contiguous range of output rows and walks them with plain loops (LLVM
// vectorises what it can); GPU schedule: one output element (map) or row (reduce,
// top-k) per work-item.
#include <limits>

#include "jit/lower_kernels.h"
#include "support/error.h"

namespace moat::jit {

namespace {

struct RowSplit {
  std::vector<int64_t> outer;  // output shape without its last dimension
  int64_t inner = 1;           // the last dimension (1 for a scalar)
  int64_t rows = 1;
};

RowSplit split_rows(const std::vector<int64_t>& shape) {
  RowSplit s;
  if (!shape.empty()) {
    s.outer.assign(shape.begin(), shape.end() - 1);
    s.inner = shape.back();
  }
  s.rows = numel(s.outer);
  return s;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Calls `row_body(row index expression)` for every row, distributed over work-groups
// (CPU: a range of rows per group, at least `min_work` elements each; GPU: one row
// per work-item).
template <class RowBody>
std::vector<NodeRef> over_rows(KernelBuilder& kb, int64_t rows, int64_t work_per_row, RowBody&& row_body) {
  const Schedule& s = kb.ctx().schedule;
  Kernel& k = kb.kernel();
  if (rows == 0) return {};
  if (s.gpu) {
    const int64_t items = std::min<int64_t>(s.work_group_size, rows);
    k.items[0] = items;
    k.groups[0] = ceil_div(rows, items);
    NodeRef row = iadd(imul(builtin(Builtin::group_id, 0), c_i64(items)), builtin(Builtin::item_id, 0));
    std::string r = kb.fresh("r");
    std::vector<NodeRef> body{let(r, row)};
    body.push_back(if_then(lt(ref(r, kI64), c_i64(rows)), row_body(bounded_ref(r, 0, rows - 1))));
    return body;
  }
  const int64_t per_group = std::max<int64_t>(1, s.elements_per_group / std::max<int64_t>(1, work_per_row));
  const int64_t groups = ceil_div(rows, per_group);
  k.groups[0] = groups;
  std::string r = kb.fresh("r");
  NodeRef begin = imul(builtin(Builtin::group_id, 0), c_i64(per_group));
  NodeRef end = min_(iadd(begin, c_i64(per_group)), c_i64(rows));
  if (groups == 1) {
    begin = c_i64(0);
    end = c_i64(rows);
  }
  return {for_loop(r, begin, end, c_i64(1), row_body(bounded_ref(r, 0, rows - 1)))};
}

// The relative cost of one element of node `id`'s value computed inline, beyond its own
// op: 1 for each operand node computed inline (not loaded; views and gathers count, as
// their index arithmetic does; a shared operand once per use), and kTranscendentalCost for each
// transcendental function among them (its own too when `own`). A libm call (expf,
// tanhf, ...) costs about as much as that many additions: a SwiGLU over 4096 elements is
// worth several work-groups where a plain sum of as many is one, and RoPE's rotated and
// gathered q of 8 tokens (a dozen ops an element) two where a copy of as many is one.
constexpr int64_t kTranscendentalCost = 16;

// A libm function: its vectorised (libmvec) and scalar forms may differ in the last bit.
bool transcendental(ir::Op op) {
  using ir::Op;
  return op == Op::exp || op == Op::log || op == Op::sin || op == Op::cos || op == Op::tanh || op == Op::sigmoid ||
         op == Op::silu || op == Op::pow;
}

bool computed_inline(const LowerContext& ctx, ir::NodeId id) {
  const ir::OpKind kind = ir::op_kind(ctx.node(id).op);
  return kind == ir::OpKind::Unary || kind == ir::OpKind::Binary || kind == ir::OpKind::Ternary ||
         kind == ir::OpKind::Cast || kind == ir::OpKind::View || kind == ir::OpKind::Gather;
}

int64_t inline_cost(const LowerContext& ctx, ir::NodeId id, bool own, int depth = 0) {
  if (depth > 64 || (!own && ctx.buffer_of[static_cast<size_t>(id)] >= 0) || !computed_inline(ctx, id)) return 0;
  const ir::Node& node = ctx.node(id);
  int64_t cost = (own ? 0 : 1) + (transcendental(node.op) ? kTranscendentalCost : 0);
  for (ir::NodeId o : node.operands) cost += inline_cost(ctx, o, false, depth + 1);
  return cost;
}

// Whether node `id`'s value, read from a kernel, computes a transcendental function inline.
bool inlines_transcendental(const LowerContext& ctx, ir::NodeId id, int depth = 0) {
  if (ctx.buffer_of[static_cast<size_t>(id)] >= 0 || !computed_inline(ctx, id)) return false;
  if (depth > 64 || transcendental(ctx.node(id).op)) return true;  // too deep to tell: as if it did
  for (ir::NodeId o : ctx.node(id).operands)
    if (inlines_transcendental(ctx, o, depth + 1)) return true;
  return false;
}

std::vector<NodeRef> with_last(std::vector<NodeRef> idx, NodeRef last) {
  idx.push_back(std::move(last));
  return idx;
}

}  // namespace

int64_t reduction_items(const Schedule& s, int64_t len) {
  int64_t items = 1;
  while (items * 2 <= s.work_group_size && items < len) items *= 2;
  return items;
}

GroupReduction group_reduce(KernelBuilder& kb, NodeRef partial, BinaryOp combine, int64_t items) {
  Kernel& k = kb.kernel();
  k.items[0] = items;
  const Type t = partial->type;
  const ir::DType storage = t.scalar == Scalar::f32 ? ir::DType::f32 : ir::DType::i64;
  BufferDecl decl;
  decl.name = kb.fresh("partials");
  decl.dtype = storage;
  decl.space = Space::local;
  decl.elements = items;
  const int local = k.add_buffer(std::move(decl));
  NodeRef item = builtin(Builtin::item_id, 0);
  std::vector<NodeRef> stmts{store(k, local, item, partial), barrier()};
  for (int64_t step = items / 2; step >= 1; step /= 2) {
    NodeRef mine = load(k, local, item);
    NodeRef theirs = load(k, local, iadd(item, c_i64(step)));
    stmts.push_back(if_then(lt(item, c_i64(step)), {store(k, local, item, binary(combine, mine, theirs))}));
    stmts.push_back(barrier());
  }
  return {std::move(stmts), load(k, local, c_i64(0))};
}

std::vector<NodeRef> row_loops(KernelBuilder& kb, ir::NodeId id, const std::vector<NodeRef>& outer, int64_t len,
                               const std::function<NodeRef(NodeRef j, NodeRef value)>& store) {
  LowerContext& ctx = kb.ctx();
  const bool computed = ctx.buffer_of[static_cast<size_t>(id)] < 0;
  auto value = [&](NodeRef j) { return kb.value_at(id, with_last(outer, j)); };  // computed, or loaded
  // The concat: the node itself, or under a chain of computed one-operand elementwise
  // ops of its shape (the f16 rounding of a cache row).
  ir::NodeId concat = id;
  for (int depth = 0; depth < 8 && ctx.node(concat).op != ir::Op::concat; ++depth) {
    const ir::Node& n = ctx.node(concat);
    const ir::OpKind kind = ir::op_kind(n.op);
    if ((kind != ir::OpKind::Unary && kind != ir::OpKind::Cast) || n.operands.size() != 1) break;
    const ir::NodeId below = n.operands[0];
    if (ctx.buffer_of[static_cast<size_t>(below)] >= 0 || ctx.shape(below) != ctx.shape(id)) break;
    concat = below;
  }
  const ir::Node& node = ctx.node(concat);
  int64_t axis = node.op == ir::Op::concat ? ir::attr_int(node, "axis") : 0;
  if (axis < 0) axis += static_cast<int64_t>(ctx.shape(concat).size());
  std::vector<NodeRef> loops;
  if (!computed || node.op != ir::Op::concat || axis + 1 != static_cast<int64_t>(ctx.shape(concat).size())) {
    std::string j = kb.fresh("j");
    NodeRef at = bounded_ref(j, 0, len - 1);
    loops.push_back(for_loop(j, c_i64(0), c_i64(len), c_i64(1), {store(at, value(at))}));
    return loops;
  }
  int64_t offset = 0;
  for (size_t p = 0; p < node.operands.size(); ++p) {
    const int64_t part_len = ctx.shape(node.operands[p]).back();
    std::string j = kb.fresh("j");
    NodeRef at = iadd(bounded_ref(j, 0, part_len - 1), c_i64(offset));
    kb.concat_part = {concat, p};
    NodeRef v = value(at);
    kb.concat_part = {};
    loops.push_back(for_loop(j, c_i64(0), c_i64(part_len), c_i64(1), {store(at, v)}));
    offset += part_len;
  }
  return loops;
}

PlanKernel map_kernel(LowerContext& ctx, ir::NodeId id, int out) {
  KernelBuilder kb(ctx);
  // A node that already has a buffer is copied (an output that is a source or alias).
  auto value = [&](const std::vector<NodeRef>& idx) {
    return ctx.buffer_of[static_cast<size_t>(id)] >= 0 ? kb.value_at(id, idx) : kb.compute_at(id, idx);
  };
  const std::vector<int64_t>& shape = ctx.shape(id);
  if (shape.empty()) {  // a scalar
    std::vector<NodeRef> body{kb.store_value(out, {}, value({}))};
    return kb.finish("map", std::move(body));
  }
  if (ctx.schedule.gpu) {
    // one element per work-item
    auto element = [&](NodeRef e) {
      std::vector<NodeRef> idx = delinearize(e, shape);
      return std::vector<NodeRef>{kb.store_value(out, idx, value(idx))};
    };
    return kb.finish("map", over_rows(kb, numel(shape), 1, element));
  }
  const RowSplit split = split_rows(shape);
  auto row_body = [&](NodeRef row) {
    const std::vector<NodeRef> outer = delinearize(row, split.outer);
    return row_loops(kb, id, outer, split.inner,
                     [&](NodeRef j, NodeRef v) { return kb.store_value(out, with_last(outer, j), v); });
  };
  return kb.finish("map", over_rows(kb, split.rows, split.inner * (1 + inline_cost(ctx, id, true)), row_body));
}

PlanKernel quantize_kernel(LowerContext& ctx, ir::NodeId id, int out) {
  KernelBuilder kb(ctx);
  const ir::NodeId x = ctx.node(id).operands[0];
  const int src = kb.use(ctx.buffer_of.at(static_cast<size_t>(x)), false);
  const int dst = kb.use(out, true);
  const ir::DType from = ctx.node(x).type.dtype;
  auto values = [&](NodeRef at, int lanes) {
    NodeRef v = load(kb.kernel(), src, std::move(at), lanes);
    return from == ir::DType::f32 ? v : cast(kF32.with_lanes(lanes), v);
  };
  if (ctx.node(id).type.dtype == ir::DType::q8_k) {
    // Per block of 256: its signed max (the first element of largest |x|, as
    // quantize_row_q8_k picks it): per chunk of 32 the largest |x|; a chunk that beats
    // the block's so far is scanned backwards for the first element of that size. Then
    // 16 groups of 16 encoded with it.
    auto block_body = [&](NodeRef blk) {
      std::string base = kb.fresh("base"), amax = kb.fresh("amax"), vmax = kb.fresh("vmax"), c = kb.fresh("c"),
                  cm = kb.fresh("cm"), l = kb.fresh("l"), e = kb.fresh("e"), g = kb.fresh("g");
      NodeRef base_ref = ref(base, kI64), c_at = iadd(base_ref, imul(ref(c, kI64), c_i64(32)));
      NodeRef e_ref = ref(e, kF32), cm_ref = ref(cm, kF32);
      std::vector<NodeRef> scan{let(e, values(iadd(c_at, sub(c_i64(31), ref(l, kI64))), 1)),
                                assign(vmax, select(binary(BinaryOp::eq, unary(UnaryOp::abs, e_ref), cm_ref), e_ref,
                                                    ref(vmax, kF32)))};
      std::vector<NodeRef> chunk{
          let(cm, reduce(ReduceOp::max, unary(UnaryOp::abs, values(c_at, 32)))),
          if_then(lt(ref(amax, kF32), cm_ref),
                  {assign(amax, cm_ref), for_loop(l, c_i64(0), c_i64(32), c_i64(1), std::move(scan))})};
      NodeRef group = quantize_group(kb.kernel(), dst, blk, values(iadd(base_ref, imul(ref(g, kI64), c_i64(16))), 16),
                                     ref(g, kI64), ref(vmax, kF32));
      return std::vector<NodeRef>{let(base, imul(blk, c_i64(256))),
                                  var(amax, c_f32(0.0)),
                                  var(vmax, c_f32(0.0)),
                                  for_loop(c, c_i64(0), c_i64(8), c_i64(1), std::move(chunk)),
                                  for_loop(g, c_i64(0), c_i64(16), c_i64(1), {group})};
    };
    return kb.finish("quantize_q8_k", over_rows(kb, numel(ctx.shape(id)) / 256, 256, block_body));
  }
  auto block_body = [&](NodeRef blk) {
    NodeRef value = load(kb.kernel(), src, imul(blk, c_i64(32)), 32);
    if (from != ir::DType::f32) value = cast(kF32.with_lanes(32), value);
    return std::vector<NodeRef>{quantize(kb.kernel(), dst, blk, value)};
  };
  return kb.finish("quantize_q8_0", over_rows(kb, numel(ctx.shape(id)) / 32, 32, block_body));
}

// What an element of a reduction along a row costs beside an element of a map: an add
// that waits for the one before it (one chain per output, in order), not a vector lane.
constexpr int64_t kChainCost = 8;

PlanKernel reduce_kernel(LowerContext& ctx, ir::NodeId id, int out) {
  KernelBuilder kb(ctx);
  const ir::Node& node = ctx.node(id);
  const ir::NodeId src = node.operands[0];
  const std::vector<int64_t>& in_shape = ctx.shape(src);
  int64_t axis = ir::attr_int(node, "axis");
  if (axis < 0) axis += static_cast<int64_t>(in_shape.size());
  const int64_t len = in_shape[static_cast<size_t>(axis)];
  const std::vector<int64_t>& out_shape = ctx.shape(id);
  const bool is_max = node.op == ir::Op::reduce_max;
  const Type vt = value_type(node.type.dtype);
  const Type acc_type = vt.scalar == Scalar::f32 ? kF32 : kI64;  // ints sum in i64 and wrap

  NodeRef init;
  if (!is_max) init = constant(acc_type, 0);
  else if (acc_type == kF32) init = c_f32(-std::numeric_limits<double>::infinity());
  else {
    const int bits = scalar_bits(vt.scalar);
    init = c_i64(vt.scalar == Scalar::u8 ? 0 : bits >= 64 ? std::numeric_limits<int64_t>::min() : -(int64_t{1} << (bits - 1)));
  }

  const Schedule& s = ctx.schedule;
  if (s.gpu && len >= 64) {
    // a work-group per output element: strided partial sums, then a tree in local memory
    const int64_t items = reduction_items(s, len);
    Kernel& k = kb.kernel();
    k.groups[0] = numel(out_shape);
    std::vector<NodeRef> idx = delinearize(builtin(Builtin::group_id, 0), out_shape);
    std::string acc = kb.fresh("acc"), kv = kb.fresh("k");
    std::vector<NodeRef> in_idx = idx;
    in_idx[static_cast<size_t>(axis)] = ref(kv, kI64);
    NodeRef v = cast(acc_type, kb.value_at(src, in_idx));
    const BinaryOp combine = is_max ? BinaryOp::max : BinaryOp::add;
    std::vector<NodeRef> body{var(acc, init), for_loop(kv, builtin(Builtin::item_id, 0), c_i64(len), c_i64(items),
                                                       {assign(acc, binary(combine, ref(acc, acc_type), v))})};
    GroupReduction tree = group_reduce(kb, ref(acc, acc_type), combine, items);
    body.insert(body.end(), tree.stmts.begin(), tree.stmts.end());
    body.push_back(if_then(binary(BinaryOp::eq, builtin(Builtin::item_id, 0), c_i64(0)),
                           {kb.store_value(out, idx, cast(vt, tree.result))}));
    return kb.finish(is_max ? "reduce_max" : "reduce_sum", std::move(body));
  }

  // CPU, f32, an axis with elements after it (MoE's weighted sum over the chosen experts
  // of [T, k, D]): per row of the axes before it and chunk of the axes after it, the
  // chunk is the inner loop, accumulated in the output, so the inner loop is contiguous
  // and LLVM vectorises it, hoisting what the value computes per reduced index (an
  // expert's weight: the kernel IR recomputes it per element, but its loads are of
  // buffers the kernel never writes, !invariant.load in emit_llvm). The same sums in the
  // same order as one accumulator per element. GPUs keep a work-item per element.
  const int64_t inner = numel(std::vector<int64_t>(in_shape.begin() + axis + 1, in_shape.end()));
  if (!s.gpu && inner > 1 && acc_type == kF32 &&
      ctx.plan.buffers[static_cast<size_t>(ctx.plan.root_of(out))].dtype == ir::DType::f32) {
    constexpr int64_t kChunk = 256;        // elements of the inner axes per work unit
    constexpr int64_t kUnrolledAxis = 16;  // reduced axes up to this long are written out
    const std::vector<int64_t> outer_shape(in_shape.begin(), in_shape.begin() + axis);
    const std::vector<int64_t> inner_shape(in_shape.begin() + axis + 1, in_shape.end());
    const int64_t chunk = std::min(inner, kChunk), chunks = (inner + chunk - 1) / chunk;
    MOAT_INTERNAL_CHECK(out_shape.size() == in_shape.size(), "reduce: the reduced axis is kept as 1");
    const BinaryOp combine = is_max ? BinaryOp::max : BinaryOp::add;
    auto row_body = [&](NodeRef row) {
      const std::vector<NodeRef> outer = delinearize(div(row, c_i64(chunks)), outer_shape);
      const std::string first = kb.fresh("first");
      NodeRef begin = ref(first, kI64), end = min_(iadd(begin, c_i64(chunk)), c_i64(inner));
      // (outer, k, inner j): the input at k, the output (its axis kept as 1) at k = 0
      auto at = [&](NodeRef k, NodeRef j) {
        std::vector<NodeRef> idx = outer;
        idx.push_back(k);
        for (NodeRef x : delinearize(j, inner_shape)) idx.push_back(x);
        return idx;
      };
      std::string j0 = kb.fresh("j"), k = kb.fresh("k"), j = kb.fresh("j");
      NodeRef j0_at = bounded_ref(j0, 0, inner - 1), j_at = bounded_ref(j, 0, inner - 1), k_at = bounded_ref(k, 0, len - 1);
      if (len <= kUnrolledAxis) {
        // the same sums in the same order, written out: one store per element and no
        // read of the output (a MoE layer's weighted sum of its 4 chosen experts' rows of
        // 256, one token: 0.40 -> 0.27 us a launch)
        NodeRef sum = init;
        for (int64_t kk = 0; kk < len; ++kk)
          sum = binary(combine, sum, cast(acc_type, kb.value_at(src, at(c_i64(kk), j0_at))));
        return std::vector<NodeRef>{let(first, imul(rem(row, c_i64(chunks)), c_i64(chunk))),
                                    for_loop(j0, begin, end, c_i64(1), {kb.store_value(out, at(c_i64(0), j0_at), sum)})};
      }
      NodeRef sum = binary(combine, kb.load_value(out, at(c_i64(0), j_at)), cast(acc_type, kb.value_at(src, at(k_at, j_at))));
      std::vector<NodeRef> accumulate{for_loop(j, begin, end, c_i64(1), {kb.store_value(out, at(c_i64(0), j_at), sum)})};
      return std::vector<NodeRef>{
          let(first, imul(rem(row, c_i64(chunks)), c_i64(chunk))),
          for_loop(j0, begin, end, c_i64(1), {kb.store_value(out, at(c_i64(0), j0_at), init)}),
          for_loop(k, c_i64(0), c_i64(len), c_i64(1), std::move(accumulate))};
    };
    return kb.finish(is_max ? "reduce_max" : "reduce_sum",
                     over_rows(kb, numel(outer_shape) * chunks, len * chunk * (1 + inline_cost(ctx, src, false)), row_body));
  }

  // CPU, f32, the reduced axis last (contiguous, unless the value read is a permuted
  // view), at least two vectors long: `lanes`
  // partial results, lane l taking elements l, l + lanes, ... in order, then halved
  // pairwise (l with l + lanes / 2, ...), then the tail past the last whole vector in
  // order: one fixed order per row, whatever the rows around it (a sequence gets the
  // same bits alone or batched), and LLVM's SLP vectoriser makes the partials one vector
  // register instead of a chain of `len` dependent adds per row (a decode step of 8
  // sequences, its RMSNorms' sums of squares over rows of 256: 9 launches, 13.1 -> 1.2 us).
  const int lanes = s.vector_lanes;
  if (!s.gpu && acc_type == kF32 && inner == 1 && lanes > 1 && len >= 2 * lanes && out_shape.size() == in_shape.size()) {
    const BinaryOp combine = is_max ? BinaryOp::max : BinaryOp::add;
    auto row = [&](NodeRef out_linear) {
      std::vector<NodeRef> idx = delinearize(out_linear, out_shape);
      std::vector<std::string> part(static_cast<size_t>(lanes));
      std::vector<NodeRef> stmts;
      for (int l = 0; l < lanes; ++l) {
        part[static_cast<size_t>(l)] = kb.fresh("part");
        stmts.push_back(var(part[static_cast<size_t>(l)], init));
      }
      auto value = [&](NodeRef k) {
        std::vector<NodeRef> in_idx = idx;
        in_idx[static_cast<size_t>(axis)] = std::move(k);
        return cast(acc_type, kb.value_at(src, in_idx));
      };
      auto fold = [&](const std::string& into, NodeRef v) {
        return assign(into, binary(combine, ref(into, acc_type), std::move(v)));
      };
      const int64_t whole = len / lanes * lanes;
      std::string k = kb.fresh("k");
      std::vector<NodeRef> step;
      for (int l = 0; l < lanes; ++l)
        step.push_back(fold(part[static_cast<size_t>(l)], value(iadd(bounded_ref(k, 0, whole - lanes), c_i64(l)))));
      stmts.push_back(for_loop(k, c_i64(0), c_i64(whole), c_i64(lanes), std::move(step)));
      for (int half = lanes / 2; half >= 1; half /= 2)
        for (int l = 0; l < half; ++l)
          stmts.push_back(fold(part[static_cast<size_t>(l)], ref(part[static_cast<size_t>(l + half)], acc_type)));
      if (whole < len) {
        std::string t = kb.fresh("k");
        stmts.push_back(for_loop(t, c_i64(whole), c_i64(len), c_i64(1), {fold(part[0], value(bounded_ref(t, whole, len - 1)))}));
      }
      stmts.push_back(kb.store_value(out, idx, cast(vt, ref(part[0], acc_type))));
      return stmts;
    };
    return kb.finish(is_max ? "reduce_max" : "reduce_sum",
                     over_rows(kb, numel(out_shape), len * (1 + inline_cost(ctx, src, false)), row));
  }

  auto element = [&](NodeRef out_linear) {
    std::vector<NodeRef> idx = delinearize(out_linear, out_shape);
    std::string acc = kb.fresh("acc"), k = kb.fresh("k");
    std::vector<NodeRef> in_idx = idx;
    if (!in_idx.empty()) in_idx[static_cast<size_t>(axis)] = ref(k, kI64);
    NodeRef v = cast(acc_type, kb.value_at(src, in_idx));
    NodeRef next = binary(is_max ? BinaryOp::max : BinaryOp::add, ref(acc, acc_type), v);
    std::vector<NodeRef> stmts{var(acc, init), for_loop(k, c_i64(0), c_i64(len), c_i64(1), {assign(acc, next)})};
    stmts.push_back(kb.store_value(out, idx, cast(vt, ref(acc, acc_type))));
    return stmts;
  };
  return kb.finish(is_max ? "reduce_max" : "reduce_sum",
                   over_rows(kb, numel(out_shape), len * kChainCost * (1 + inline_cost(ctx, src, false)), element));
}

constexpr int64_t kMaxRankedRow = 256;  // CPU top-k: rows up to this long are ranked (below)

PlanKernel topk_kernel(LowerContext& ctx, ir::NodeId id, int out) {
  KernelBuilder kb(ctx);
  const ir::Node& node = ctx.node(id);
  const ir::NodeId src = node.operands[0];
  const std::vector<int64_t>& in_shape = ctx.shape(src);
  const int64_t n = in_shape.back(), k = ir::attr_int(node, "k");
  const RowSplit split = split_rows(in_shape);
  const Type vt = value_type(ctx.node(src).type.dtype);
  const bool fp = vt.scalar == Scalar::f32;

  // Whether (a, ia) ranks before (b, ib): larger first, NaN above every number, ties
  // (and NaNs among themselves) by the lower index.
  auto before = [&](NodeRef a, NodeRef ia, NodeRef b, NodeRef ib) {
    NodeRef lower = lt(ia, ib);
    NodeRef by_value = binary(BinaryOp::lor, binary(BinaryOp::lt, b, a), binary(BinaryOp::land, binary(BinaryOp::eq, a, b), lower));
    if (!fp) return by_value;
    NodeRef na = unary(UnaryOp::isnan, a), nb = unary(UnaryOp::isnan, b);
    NodeRef both_numbers = binary(BinaryOp::land, unary(UnaryOp::lnot, na), unary(UnaryOp::lnot, nb));
    return binary(BinaryOp::lor, binary(BinaryOp::lor, binary(BinaryOp::land, na, unary(UnaryOp::lnot, nb)),
                                        binary(BinaryOp::land, both_numbers, by_value)),
                  binary(BinaryOp::land, binary(BinaryOp::land, na, nb), lower));
  };

  if (!ctx.schedule.gpu && n <= kMaxRankedRow && k <= n && !inlines_transcendental(ctx, src)) {
    // Each element's rank is the count of those that rank before it (a total order), and
    // the first k are stored at their ranks: O(n^2) compares without a chain of
    // dependent ones, where the selection below is k chains of n dependent
    // compare-selects (a router's 8 rows x 16 experts x top-4: 3 us a launch, 0.4 us
    // ranked). Each element is computed once per comparison, so not where that is a libm
    // function, whose vectorised form may differ from the scalar one in the last bit:
    // the order would not be one.
    auto ranked = [&](NodeRef row) {
      std::vector<NodeRef> outer = delinearize(row, split.outer);
      std::string c = kb.fresh("c"), d = kb.fresh("d"), vc = kb.fresh("vc"), vd = kb.fresh("vd"), rank = kb.fresh("rank");
      NodeRef c_ref = bounded_ref(c, 0, n - 1), rank_ref = ref(rank, kI64);
      NodeRef ahead = before(ref(vd, vt), ref(d, kI64), ref(vc, vt), c_ref);
      std::vector<NodeRef> count{let(vd, kb.value_at(src, with_last(outer, ref(d, kI64)))),
                                 assign(rank, add(rank_ref, select(ahead, c_i64(1), c_i64(0))))};
      std::vector<NodeRef> per_element{
          let(vc, kb.value_at(src, with_last(outer, c_ref))), var(rank, c_i64(0)),
          for_loop(d, c_i64(0), c_i64(n), c_i64(1), std::move(count)),
          if_then(lt(rank_ref, c_i64(k)), {kb.store_value(out, with_last(outer, rank_ref), cast(kI32, c_ref))})};
      return std::vector<NodeRef>{for_loop(c, c_i64(0), c_i64(n), c_i64(1), std::move(per_element))};
    };
    return kb.finish("topk", over_rows(kb, split.rows, n * n, ranked));
  }
  auto row_body = [&](NodeRef row) {
    std::vector<NodeRef> outer = delinearize(row, split.outer);
    std::string last_v = kb.fresh("last_v"), last_i = kb.fresh("last_i");
    std::string j = kb.fresh("j"), c = kb.fresh("c"), best_v = kb.fresh("best_v"), best_i = kb.fresh("best_i"), v = kb.fresh("v");
    NodeRef value = kb.value_at(src, with_last(outer, ref(c, kI64)));
    NodeRef eligible = binary(BinaryOp::lor, lt(ref(last_i, kI64), c_i64(0)),
                              before(ref(last_v, vt), ref(last_i, kI64), ref(v, vt), ref(c, kI64)));
    NodeRef better = binary(BinaryOp::lor, lt(ref(best_i, kI64), c_i64(0)),
                            before(ref(v, vt), ref(c, kI64), ref(best_v, vt), ref(best_i, kI64)));
    std::vector<NodeRef> scan{let(v, value),
                              if_then(binary(BinaryOp::land, eligible, better), {assign(best_v, ref(v, vt)), assign(best_i, ref(c, kI64))})};
    std::vector<NodeRef> pass{var(best_v, constant(vt, 0)), var(best_i, c_i64(-1)),
                              for_loop(c, c_i64(0), c_i64(n), c_i64(1), std::move(scan)),
                              kb.store_value(out, with_last(outer, ref(j, kI64)), cast(kI32, ref(best_i, kI64))),
                              assign(last_v, ref(best_v, vt)), assign(last_i, ref(best_i, kI64))};
    return std::vector<NodeRef>{var(last_v, constant(vt, 0)), var(last_i, c_i64(-1)),
                                for_loop(j, c_i64(0), c_i64(k), c_i64(1), std::move(pass))};
  };
  return kb.finish("topk", over_rows(kb, split.rows, n * k, row_body));
}

// The k-th largest value of each row in 33 passes over it, whatever k: a count of the
// NaNs (they rank first), then a bisection over the order-preserving integer key of the
// f32 bits (key = bits for bits >= 0, INT32_MIN - bits below: -x < -y < +0 < y < x),
// keeping the largest key t with at least k' = k - NaNs numbers whose key is >= t. After
// 32 halvings of [-2^31, 2^31) that t is the k'-th largest number's key. O(33 n) per row
// where topk's selection is O(k n).
PlanKernel kth_largest_kernel(LowerContext& ctx, ir::NodeId id, int out) {
  KernelBuilder kb(ctx);
  const ir::Node& node = ctx.node(id);
  const ir::NodeId src = node.operands[0];
  const std::vector<int64_t>& in_shape = ctx.shape(src);
  const int64_t n = in_shape.back(), k = ir::attr_int(node, "k");
  const RowSplit split = split_rows(in_shape);
  MOAT_INTERNAL_CHECK(value_type(ctx.node(src).type.dtype).scalar == Scalar::f32, "kth_largest of a non-float row");
  constexpr int64_t kMinKey = -(int64_t{1} << 31);

  auto row_body = [&](NodeRef row) {
    std::vector<NodeRef> outer = delinearize(row, split.outer);
    const std::string c = kb.fresh("c"), v = kb.fresh("v"), nans = kb.fresh("nans"), nan_value = kb.fresh("nan_value");
    const std::string lo = kb.fresh("lo"), step = kb.fresh("step"), mid = kb.fresh("mid"), count = kb.fresh("count");
    const std::string it = kb.fresh("it"), bits = kb.fresh("bits"), key = kb.fresh("key");
    NodeRef value = kb.value_at(src, with_last(outer, ref(c, kI64)));
    NodeRef is_nan = unary(UnaryOp::isnan, ref(v, kF32));
    auto one_when = [](NodeRef cond) { return select(cond, c_i64(1), c_i64(0)); };
    // key(v) as i64, from the bits of v
    std::vector<NodeRef> key_of{let(bits, cast(kI64, bitcast(kI32, ref(v, kF32)))),
                                let(key, select(lt(ref(bits, kI64), c_i64(0)), sub(c_i64(kMinKey), ref(bits, kI64)), ref(bits, kI64)))};
    std::vector<NodeRef> count_nans{let(v, value), assign(nans, add(ref(nans, kI64), one_when(is_nan))),
                                    assign(nan_value, select(is_nan, ref(v, kF32), ref(nan_value, kF32)))};
    std::vector<NodeRef> count_at_least{let(v, value)};
    count_at_least.insert(count_at_least.end(), key_of.begin(), key_of.end());
    count_at_least.push_back(assign(count, add(ref(count, kI64), one_when(binary(BinaryOp::land, unary(UnaryOp::lnot, is_nan),
                                                                                      binary(BinaryOp::le, ref(mid, kI64), ref(key, kI64)))))));
    NodeRef enough = binary(BinaryOp::le, sub(c_i64(k), ref(nans, kI64)), ref(count, kI64));
    // The range [lo, lo + 2 step) holds the answer; halved by a shift (no 64-bit
    // division on GPUs).
    std::vector<NodeRef> halve{let(mid, add(ref(lo, kI64), ref(step, kI64))),
                               var(count, c_i64(0)),
                               for_loop(c, c_i64(0), c_i64(n), c_i64(1), std::move(count_at_least)),
                               assign(lo, select(enough, ref(mid, kI64), ref(lo, kI64))),
                               assign(step, binary(BinaryOp::shr, ref(step, kI64), c_i64(1)))};
    NodeRef lo_bits = select(lt(ref(lo, kI64), c_i64(0)), sub(c_i64(kMinKey), ref(lo, kI64)), ref(lo, kI64));
    NodeRef number = bitcast(kF32, cast(kI32, lo_bits));
    NodeRef result = select(binary(BinaryOp::le, c_i64(k), ref(nans, kI64)), ref(nan_value, kF32), number);
    return std::vector<NodeRef>{var(nans, c_i64(0)), var(nan_value, c_f32(0)),
                                for_loop(c, c_i64(0), c_i64(n), c_i64(1), std::move(count_nans)),
                                var(lo, c_i64(kMinKey)), var(step, c_i64(-kMinKey)),
                                for_loop(it, c_i64(0), c_i64(32), c_i64(1), std::move(halve)),
                                kb.store_value(out, with_last(outer, c_i64(0)), result)};
  };
  return kb.finish("kth_largest", over_rows(kb, split.rows, 33 * n, row_body));
}

}  // namespace moat::jit
