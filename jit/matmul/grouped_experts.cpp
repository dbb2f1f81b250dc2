// CPU, experts of a MoE layer for many tokens (prefill): B gathered from a table
// [E, N, K] by each slot's expert index, one row of A per slot. Per-slot GEMVs would
// stream an expert's weights once for every slot that chose it; here a work-group
// takes one expert and a tile of `matmul_cols` of its rows: it lists the slots that
// chose the expert, and dequantises each weight row once (into local memory) for all
// of them, kPassRows rows at a time. The sums run in the order of `tiled` (32-lane
// chunks, then a horizontal add).
#include "jit/matmul/grouped_experts.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kPassRows = 4;  // rows of B per pass where N allows (else 1)
constexpr int64_t kLocalShare = 4;  // the rows and the slot list: at most 1 / kLocalShare of local memory each

bool applies(const Schedule& s, const MatmulShape& mm) { return grouped_experts_fit(s, mm); }

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const int64_t slots = numel(mm.out_batch);
  Kernel& k = kb.kernel();
  const int64_t experts = mm.table_shape[0], cols = mm.schedule().matmul_cols;
  const int64_t tiles = ceil_div(o.n, cols);
  k.groups[0] = experts * tiles;
  std::string e = kb.fresh("e"), tile = kb.fresh("tile"), count = kb.fresh("count");
  NodeRef e_ref = bounded_ref(e, 0, experts - 1), count_ref = ref(count, kI64);
  std::vector<NodeRef> body{let(e, idiv(builtin(Builtin::group_id, 0), tiles)),
                            let(tile, irem(builtin(Builtin::group_id, 0), tiles))};
  const MatmulBuilder::SlotList list = mm.slots_of_expert(e_ref, slots, count);  // slots that chose the expert
  const int chosen = list.chosen;
  body.insert(body.end(), list.stmts.begin(), list.stmts.end());
  const bool quantised = ir::is_quantised(o.b_dtype);
  const int64_t per_block = quantised ? ir::dtype_block_elems(o.b_dtype) : 32;
  // B rows per pass: each chunk of a slot's A row is loaded once for all of them.
  const int64_t rows = o.n % kPassRows == 0 ? kPassRows : 1;
  const int row = mm.local_buffer("rows", ir::DType::f32, rows * o.k);  // dequantised rows of B
  std::string n = kb.fresh("n"), blk = kb.fresh("blk"), sub = kb.fresh("sub"), c = kb.fresh("c");
  std::string slot = kb.fresh("slot"), a_base = kb.fresh("a_row"), kc = kb.fresh("k"), av = kb.fresh("a");
  NodeRef n_ref = bounded_ref(n, 0, o.n - 1);
  std::vector<NodeRef> per_n;
  for (int64_t r = 0; r < rows; ++r) {  // the rows, 32 elements at a time
    NodeRef b_row_ref = iadd(imul(e_ref, c_i64(o.n)), iadd(n_ref, c_i64(r)));
    NodeRef first = imul(ref(sub, kI64), c_i64(32));
    NodeRef at = iadd(imul(ref(blk, kI64), c_i64(per_block)), first);
    NodeRef chunk = quantised
                        ? dequant(k, o.b, iadd(imul(b_row_ref, c_i64(o.k / per_block)), ref(blk, kI64)), first)
                        : cast(kF32.with_lanes(32), load(k, o.b, iadd(imul(b_row_ref, c_i64(o.k)), at), 32));
    per_n.push_back(for_loop(blk, c_i64(0), c_i64(o.k / per_block), c_i64(1),
                             {for_loop(sub, c_i64(0), c_i64(per_block / 32), c_i64(1),
                                       {store(k, row, iadd(c_i64(r * o.k), at), chunk)})}));
  }
  {  // every slot that chose the expert: its row of A . each row of B
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
  }
  NodeRef n0 = imul(ref(tile, kI64), c_i64(cols));
  body.push_back(if_then(lt(c_i64(0), count_ref),
                         {for_loop(n, n0, min_(iadd(n0, c_i64(cols)), c_i64(o.n)), c_i64(rows), std::move(per_n))}));
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
