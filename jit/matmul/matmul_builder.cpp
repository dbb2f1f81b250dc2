// The operands of a matmul node and the index arithmetic every strategy shares.
#include "jit/block_formats.h"
#include "jit/matmul/matmul.h"
#include "support/error.h"

namespace moat::jit::matmul {

namespace {

// Linear index of the batch of an operand with batch shape `shape` for the output
// batch index `idx` (right-aligned numpy broadcasting; size-1 dims read index 0).
NodeRef batch_index(const std::vector<NodeRef>& out_idx, const std::vector<int64_t>& shape) {
  std::vector<NodeRef> idx(shape.size());
  const size_t offset = out_idx.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d) idx[d] = shape[d] == 1 ? c_i64(0) : out_idx[offset + d];
  return linear_index(idx, shape);
}

}  // namespace

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::vector<NodeRef> loop_or_let(const std::string& name, NodeRef first, int64_t end, int64_t step, std::vector<NodeRef> body) {
  if (step < end) return {for_loop(name, std::move(first), c_i64(end), c_i64(step), std::move(body))};
  body.insert(body.begin(), let(name, std::move(first)));
  return body;
}

MatmulBuilder::MatmulBuilder(LowerContext& c, ir::NodeId id, int out) : ctx(c), kb(c), out_(out) {
  const ir::Node& node = ctx.node(id);
  const auto& a_shape = ctx.shape(node.operands[0]);
  const auto& b_shape = ctx.shape(node.operands[1]);
  const auto& o_shape = ctx.shape(id);
  o.transposed = ir::attr_bool(node, "b_transposed");
  o.m = a_shape[a_shape.size() - 2];
  o.k = a_shape.back();
  o.n = o_shape.back();
  o.b_dtype = ctx.node(node.operands[1]).type.dtype;
  o.a_dtype = ctx.node(node.operands[0]).type.dtype;
  o.a = kb.use(ctx.buffer_of.at(static_cast<size_t>(node.operands[0])), false);
  const ir::NodeId b_node = node.operands[1];
  if (ctx.buffer_of.at(static_cast<size_t>(b_node)) >= 0) {
    o.b = kb.use(ctx.buffer_of[static_cast<size_t>(b_node)], false);
    if (ctx.packed_scales_of[static_cast<size_t>(b_node)] >= 0)
      o.b_scales = kb.use(ctx.packed_scales_of[static_cast<size_t>(b_node)], false);
    o.b_float_tiles = ctx.float_tiles_of[static_cast<size_t>(b_node)];
  } else {
    // gather(table, idx): B's batch (i.., j..) is table[idx[i..], j..]
    MOAT_INTERNAL_CHECK(is_gathered_weight(ctx.graph, b_node) && node.operands.size() == 2,
                        "matmul B ", ir::describe(ctx.graph, b_node), " has no buffer");
    const ir::Node& gather = ctx.node(b_node);
    gather_indices = gather.operands[1];
    table_shape = ctx.shape(gather.operands[0]);
    o.b = kb.use(ctx.buffer_of.at(static_cast<size_t>(gather.operands[0])), false);
    if (ctx.packed_scales_of[static_cast<size_t>(gather.operands[0])] >= 0)
      o.b_scales = kb.use(ctx.packed_scales_of[static_cast<size_t>(gather.operands[0])], false);
    o.b_float_tiles = ctx.float_tiles_of[static_cast<size_t>(gather.operands[0])];
  }
  if (node.operands.size() == 3) {
    o.scales = kb.use(ctx.buffer_of.at(static_cast<size_t>(node.operands[2])), false);
    const auto& block = ir::attr_ints(node, "block");
    o.block_rows = block[0];
    o.block_cols = block[1];
    o.scale_cols = ctx.shape(node.operands[2]).back();
  }
  out_batch.assign(o_shape.begin(), o_shape.end() - 2);
  a_batch.assign(a_shape.begin(), a_shape.end() - 2);
  b_batch.assign(b_shape.begin(), b_shape.end() - 2);
}

MatmulShape MatmulBuilder::shape() const {
  MatmulShape s;
  s.m = o.m;
  s.n = o.n;
  s.k = o.k;
  s.batches = numel(out_batch);
  s.a_dtype = o.a_dtype;
  s.b_dtype = o.b_dtype;
  s.transposed = o.transposed;
  s.fp8_scales = o.scales >= 0;
  s.packed_b = o.b_scales >= 0;
  s.float_tiles_b = o.b_float_tiles;
  s.gathered_b = gather_indices >= 0;
  s.experts = s.gathered_b ? table_shape[0] : 0;
  s.table_rank = static_cast<int>(table_shape.size());
  return s;
}

bool MatmulBuilder::k_int8_dot() const {
  const BlockFormat* f = find_block_format(o.b_dtype);
  return o.a_dtype == ir::DType::q8_k && f != nullptr && f->sub_integers != nullptr && o.scales < 0;
}

NodeRef MatmulBuilder::a_row(NodeRef batch, NodeRef m) {
  return imul(iadd(imul(batch_a(batch), c_i64(o.m)), std::move(m)), c_i64(o.k));
}

NodeRef MatmulBuilder::batch_a(const NodeRef& batch) { return batch_index(delinearize(batch, out_batch), a_batch); }

NodeRef MatmulBuilder::batch_b(const NodeRef& batch) {
  if (gather_indices < 0) return batch_index(delinearize(batch, out_batch), b_batch);
  // B's batch index (i.., j..): row idx[i..] (clamped) of the table, then j.. within it
  std::vector<NodeRef> out_idx = delinearize(batch, out_batch), b_idx(b_batch.size());
  const size_t offset = out_idx.size() - b_batch.size();
  for (size_t d = 0; d < b_batch.size(); ++d) b_idx[d] = b_batch[d] == 1 ? c_i64(0) : out_idx[offset + d];
  const size_t k = ctx.shape(gather_indices).size();
  std::vector<NodeRef> at(b_idx.begin(), b_idx.begin() + static_cast<std::ptrdiff_t>(k));
  NodeRef row = cast(kI64, kb.value_at(gather_indices, at));
  row = max_(c_i64(0), min_(row, c_i64(table_shape[0] - 1)));
  std::vector<NodeRef> middle(b_idx.begin() + static_cast<std::ptrdiff_t>(k), b_idx.end());
  std::vector<int64_t> middle_shape(table_shape.begin() + 1, table_shape.end() - 2);
  return iadd(imul(row, c_i64(numel(middle_shape))), linear_index(middle, middle_shape));
}

NodeRef MatmulBuilder::b_row(NodeRef batch, NodeRef n) { return iadd(imul(batch_b(batch), c_i64(o.n)), std::move(n)); }

NodeRef MatmulBuilder::b_value(const NodeRef& row, const NodeRef& batch, const NodeRef& n, const NodeRef& k, int lanes) {
  if (!o.transposed) {
    NodeRef at = iadd(imul(iadd(imul(batch_b(batch), c_i64(o.k)), k), c_i64(o.n)), n);
    return cast(kF32, load(kb.kernel(), o.b, at));
  }
  NodeRef v = cast(kF32.with_lanes(lanes), load(kb.kernel(), o.b, iadd(imul(row, c_i64(o.k)), k), lanes));
  if (o.scales < 0) return v;
  // fp8: the block scale of (n, k); a vector chunk never straddles a block (checked).
  NodeRef scale_at = iadd(imul(idiv(n, o.block_rows), c_i64(o.scale_cols)), idiv(k, o.block_cols));
  NodeRef batch_scales = imul(batch_b(batch), c_i64(ceil_div(o.n, o.block_rows) * o.scale_cols));
  NodeRef scale = load(kb.kernel(), o.scales, iadd(batch_scales, scale_at));
  return binary(BinaryOp::mul, v, broadcast(scale, lanes));
}

NodeRef MatmulBuilder::a_value(const NodeRef& row_base, const NodeRef& k, int lanes) {
  if (a_quantised()) {  // lanes is 1, or 32 from a 32-aligned element
    NodeRef at = iadd(row_base, k);
    const int64_t per_block = ir::dtype_block_elems(o.a_dtype);
    return dequant(kb.kernel(), o.a, idiv(at, per_block), lanes == 32 && per_block == 32 ? c_i64(0) : irem(at, per_block),
                   lanes);
  }
  return cast(kF32.with_lanes(lanes), load(kb.kernel(), o.a, iadd(row_base, k), lanes));
}

int MatmulBuilder::local_buffer(const char* name, ir::DType dtype, int64_t elements) {
  BufferDecl decl;
  decl.name = kb.fresh(name);
  decl.dtype = dtype;
  decl.space = Space::local;
  decl.elements = elements;
  return kb.kernel().add_buffer(std::move(decl));
}

NodeRef MatmulBuilder::a_row_block(const NodeRef& batch, NodeRef m) {
  return imul(iadd(imul(batch_a(batch), c_i64(o.m)), std::move(m)), c_i64(o.k / ir::dtype_block_elems(o.a_dtype)));
}

NodeRef MatmulBuilder::store_out(const NodeRef& batch, const NodeRef& m, const NodeRef& n, NodeRef value) {
  std::vector<NodeRef> idx = delinearize(batch, out_batch);
  idx.push_back(m);
  idx.push_back(n);
  return kb.store_value(out_, idx, std::move(value));
}

MatmulBuilder::SlotList MatmulBuilder::slots_of_expert(const NodeRef& e, int64_t slots, const std::string& count) {
  Kernel& k = kb.kernel();
  SlotList list;
  list.chosen = local_buffer("chosen", ir::DType::i64, slots);
  std::string s = kb.fresh("s");
  NodeRef s_ref = bounded_ref(s, 0, slots - 1), count_ref = ref(count, kI64);
  list.stmts = {var(count, c_i64(0)),
                for_loop(s, c_i64(0), c_i64(slots), c_i64(1),
                         {if_then(binary(BinaryOp::eq, batch_b(s_ref), e),
                                  {store(k, list.chosen, count_ref, s_ref), assign(count, iadd(count_ref, c_i64(1)))})})};
  return list;
}

}  // namespace moat::jit::matmul
