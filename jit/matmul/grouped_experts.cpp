// CPU, experts of a MoE layer for several tokens: B gathered from a table [E, N, K] by
// each slot's expert index, one row of A per slot. Per-slot GEMVs would stream an
// expert's weights once for every slot that chose it; here a work-group takes one expert
// and a tile of `matmul_cols` of its rows, lists the slots that chose the expert, and
// reads each weight row once for several of them:
// - staged (a quantised table, or a float one chosen by kStagedSlots slots or more, as in
//   a prefill): kPassRows rows at a time dequantised or converted once into local memory
//   for all the slots;
// - in registers (a float table chosen by fewer slots, as in a decode step of several
//   sequences): each 32-element chunk of kPassRows rows loaded and converted once for a
//   pass of kPassSlots slots, then for the odd slot alone. Converting an f16 chunk costs
//   about as much as two slots' multiply-adds on it; staging would add a store and a
//   load per element for the one to three slots an expert gets (docs/performance.md:
//   the demo model's experts in a step of 8 sequences).
// The sums run in the order of `tiled` (32-lane chunks, then a horizontal add), so a
// slot's result does not depend on the strategy or on the slots beside it.
// On the CPU most float tables now go to float_expert_tiles.cpp instead (the lowering
// tiles those with N a multiple of 16, every use a one-row expert matmul, in file-mapped
// memory); the float paths here take the others (N not a multiple of 16, or a table the
// loader built in memory), whatever the numbers above say of the demo model.
#include "jit/matmul/grouped_experts.h"

#include <functional>

namespace moat::jit::matmul {

namespace {

constexpr int64_t kPassRows = 4;  // rows of B per pass where N allows (else 1)
constexpr int kPassSlots = 2;     // float table: slots sharing each converted chunk of B
constexpr int64_t kStagedSlots = 8;  // float table: from this many slots, rows staged as for quantised ones
constexpr int64_t kLocalShare = 4;  // the rows and the slot list: at most 1 / kLocalShare of local memory each

bool applies(const Schedule& s, const MatmulShape& mm) { return grouped_experts_fit(s, mm); }

// The row of B at `n_ref + r` of expert `e_ref`.
NodeRef b_row(const Operands& o, const NodeRef& e_ref, const NodeRef& n_ref, int64_t r) {
  return iadd(imul(e_ref, c_i64(o.n)), iadd(n_ref, c_i64(r)));
}

// Staged: `rows` rows of B from n_ref dequantised (converted) into local memory, then
// every slot that chose the expert (count_ref of them, listed in `chosen`) against them.
std::vector<NodeRef> staged_rows(MatmulBuilder& mm, const NodeRef& e_ref, const NodeRef& n_ref, int chosen,
                                 const NodeRef& count_ref, int64_t rows) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  Kernel& k = kb.kernel();
  const bool quantised = ir::is_quantised(o.b_dtype);
  const int64_t per_block = quantised ? ir::dtype_block_elems(o.b_dtype) : 32;
  const int row = mm.local_buffer("rows", ir::DType::f32, rows * o.k);  // dequantised rows of B
  std::string blk = kb.fresh("blk"), sub = kb.fresh("sub"), c = kb.fresh("c");
  std::string slot = kb.fresh("slot"), a_base = kb.fresh("a_row"), kc = kb.fresh("k"), av = kb.fresh("a");
  std::vector<NodeRef> per_n;
  for (int64_t r = 0; r < rows; ++r) {  // the rows, 32 elements at a time
    NodeRef first = imul(ref(sub, kI64), c_i64(32));
    NodeRef at = iadd(imul(ref(blk, kI64), c_i64(per_block)), first);
    NodeRef chunk = quantised ? dequant(k, o.b, iadd(imul(b_row(o, e_ref, n_ref, r), c_i64(o.k / per_block)), ref(blk, kI64)), first)
                              : cast(kF32.with_lanes(32), load(k, o.b, iadd(imul(b_row(o, e_ref, n_ref, r), c_i64(o.k)), at), 32));
    per_n.push_back(for_loop(blk, c_i64(0), c_i64(o.k / per_block), c_i64(1),
                             {for_loop(sub, c_i64(0), c_i64(per_block / 32), c_i64(1),
                                       {store(k, row, iadd(c_i64(r * o.k), at), chunk)})}));
  }
  const Type t = kF32.with_lanes(32);
  NodeRef slot_ref = ref(slot, kI64), kk = ref(kc, kI64);
  std::vector<NodeRef> per_slot{let(slot, load(k, chosen, ref(c, kI64))), let(a_base, mm.a_row(slot_ref, c_i64(0)))};
  std::vector<std::string> acc(static_cast<size_t>(rows));
  std::vector<NodeRef> dot{let(av, mm.a_value(ref(a_base, kI64), kk, 32))};
  for (int64_t r = 0; r < rows; ++r) {
    acc[r] = kb.fresh("acc");
    per_slot.push_back(var(acc[r], broadcast(c_f32(0.0), 32)));
    dot.push_back(assign(acc[r], fma(ref(av, t), load(k, row, iadd(c_i64(r * o.k), kk), 32), ref(acc[r], t))));
  }
  per_slot.push_back(for_loop(kc, c_i64(0), c_i64(o.k), c_i64(32), std::move(dot)));
  for (int64_t r = 0; r < rows; ++r)
    per_slot.push_back(mm.store_out(slot_ref, c_i64(0), iadd(n_ref, c_i64(r)), reduce(ReduceOp::add, ref(acc[r], t))));
  per_n.push_back(for_loop(c, c_i64(0), count_ref, c_i64(1), std::move(per_slot)));
  return per_n;
}

// In registers: passes of `pass_slots` slots (chosen[c0 ..], from begin to end), each over
// the tile's rows (over_n), `rows` rows at a time, each 32-element chunk of B loaded and
// converted once for the pass's slots. The pass loop is outside the loop over rows: inside
// it, B's chunks would not depend on the pass, and LLVM would hoist all of a row block's
// converted chunks out of it, to the stack.
NodeRef converted_passes(MatmulBuilder& mm, const NodeRef& e_ref, const NodeRef& n_ref, int chosen, int64_t rows,
                         int pass_slots, NodeRef begin, NodeRef end,
                         const std::function<NodeRef(std::vector<NodeRef>)>& over_n) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  Kernel& k = kb.kernel();
  const Type t = kF32.with_lanes(32);
  std::string c0 = kb.fresh("c0"), kc = kb.fresh("k");
  NodeRef c0_ref = ref(c0, kI64), kk = ref(kc, kI64);
  std::vector<NodeRef> per_pass, per_n, dot;
  std::vector<std::string> slot, a_base, av, acc;  // acc[s * rows + r]
  for (int s = 0; s < pass_slots; ++s) {
    slot.push_back(kb.fresh("slot"));
    a_base.push_back(kb.fresh("a_row"));
    av.push_back(kb.fresh("a"));
    per_pass.push_back(let(slot[s], load(k, chosen, iadd(c0_ref, c_i64(s)))));
    per_pass.push_back(let(a_base[s], mm.a_row(ref(slot[s], kI64), c_i64(0))));
    dot.push_back(let(av[s], mm.a_value(ref(a_base[s], kI64), kk, 32)));
    for (int64_t r = 0; r < rows; ++r) {
      acc.push_back(kb.fresh("acc"));
      per_n.push_back(var(acc.back(), broadcast(c_f32(0.0), 32)));
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    std::string bv = kb.fresh("bv");
    dot.push_back(let(bv, cast(t, load(k, o.b, iadd(imul(b_row(o, e_ref, n_ref, r), c_i64(o.k)), kk), 32))));
    for (int s = 0; s < pass_slots; ++s) {
      const std::string& a = acc[static_cast<size_t>(s * rows + r)];
      dot.push_back(assign(a, fma(ref(av[s], t), ref(bv, t), ref(a, t))));
    }
  }
  per_n.push_back(for_loop(kc, c_i64(0), c_i64(o.k), c_i64(32), std::move(dot)));
  for (int s = 0; s < pass_slots; ++s)
    for (int64_t r = 0; r < rows; ++r)
      per_n.push_back(mm.store_out(ref(slot[s], kI64), c_i64(0), iadd(n_ref, c_i64(r)),
                                   reduce(ReduceOp::add, ref(acc[static_cast<size_t>(s * rows + r)], t))));
  per_pass.push_back(over_n(std::move(per_n)));
  return for_loop(c0, std::move(begin), std::move(end), c_i64(pass_slots), std::move(per_pass));
}

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const int64_t slots = numel(mm.out_batch);
  Kernel& k = kb.kernel();
  const int64_t experts = mm.table_shape[0], cols = mm.schedule().matmul_cols;
  const int64_t tiles = ceil_div(o.n, cols);
  k.groups[0] = experts * tiles;
  std::string e = kb.fresh("e"), tile = kb.fresh("tile"), count = kb.fresh("count"), n = kb.fresh("n");
  NodeRef e_ref = bounded_ref(e, 0, experts - 1), count_ref = ref(count, kI64), n_ref = bounded_ref(n, 0, o.n - 1);
  std::vector<NodeRef> body{let(e, idiv(builtin(Builtin::group_id, 0), tiles)),
                            let(tile, irem(builtin(Builtin::group_id, 0), tiles))};
  const MatmulBuilder::SlotList list = mm.slots_of_expert(e_ref, slots, count);  // slots that chose the expert
  body.insert(body.end(), list.stmts.begin(), list.stmts.end());
  // B rows per pass (an A chunk loaded once for all), tiles of whole passes
  const int64_t rows = o.n % kPassRows == 0 && cols % kPassRows == 0 ? kPassRows : 1;
  NodeRef n0 = imul(ref(tile, kI64), c_i64(cols));
  auto over_n = [&](std::vector<NodeRef> per_n) {
    return for_loop(n, n0, min_(iadd(n0, c_i64(cols)), c_i64(o.n)), c_i64(rows), std::move(per_n));
  };
  std::vector<NodeRef> work{over_n(staged_rows(mm, e_ref, n_ref, list.chosen, count_ref, rows))};
  if (!ir::is_quantised(o.b_dtype)) {  // a float table: few slots convert in registers
    NodeRef whole = imul(idiv(count_ref, kPassSlots), c_i64(kPassSlots));
    std::vector<NodeRef> passes{
        converted_passes(mm, e_ref, n_ref, list.chosen, rows, kPassSlots, c_i64(0), whole, over_n),
        converted_passes(mm, e_ref, n_ref, list.chosen, rows, 1, whole, count_ref, over_n)};
    work = {if_then(lt(count_ref, c_i64(kStagedSlots)), std::move(passes), std::move(work))};
  }
  body.push_back(if_then(lt(c_i64(0), count_ref), std::move(work)));
  return body;
}

}  // namespace

bool grouped_experts_fit(const Schedule& s, const MatmulShape& mm) {
  if (s.gpu || !mm.gathered_b || !mm.transposed || mm.m != 1 || mm.fp8_scales || mm.table_rank != 3) return false;
  if (!ir::is_quantised(mm.b_dtype) && mm.k % 32 != 0) return false;
  const int64_t share = s.local_memory_bytes / kLocalShare;
  if (mm.k * 16 > share || mm.batches * 8 > share) return false;  // local memory: 4 rows of B (f32), the slot list (i64)
  return mm.batches >= 2 * mm.experts;  // enough slots per expert to share its rows
}

const MatmulStrategy kGroupedExperts{"grouped_experts", applies, lower};

}  // namespace moat::jit::matmul
