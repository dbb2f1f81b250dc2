// Every other matmul: one output per iteration, a sequential sum over k (CPU: a range
// of outputs per work-group, about `elements_per_group` multiply-adds; GPU: one output
// per work-item, `work_group_size` per group). Applies to every matmul: the last
// strategy tried.
#include <algorithm>

#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

namespace {

bool applies(const Schedule&, const MatmulShape&) { return true; }

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const int64_t batches = numel(mm.out_batch);
  Kernel& k = kb.kernel();
  const Schedule& s = mm.schedule();
  const int64_t total = batches * o.m * o.n;
  if (total == 0) return {};
  auto one = [&](NodeRef linear) {
    std::string lin = kb.fresh("o"), batch = kb.fresh("batch"), m = kb.fresh("m"), n = kb.fresh("n");
    std::string sum = kb.fresh("sum"), kv = kb.fresh("k"), a_base = kb.fresh("a_row"), brow = kb.fresh("b_row");
    NodeRef batch_ref = ref(batch, kI64), n_ref = ref(n, kI64), kk = ref(kv, kI64);
    std::vector<NodeRef> stmts{let(lin, linear),
                               let(n, irem(ref(lin, kI64), o.n)),
                               let(m, irem(idiv(ref(lin, kI64), o.n), o.m)),
                               let(batch, idiv(ref(lin, kI64), o.n * o.m))};
    stmts.push_back(let(a_base, mm.a_row(batch_ref, ref(m, kI64))));
    stmts.push_back(let(brow, mm.b_row(batch_ref, n_ref)));
    stmts.push_back(var(sum, c_f32(0.0)));
    NodeRef bval;
    std::vector<NodeRef> inner;
    if (ir::is_quantised(o.b_dtype)) {
      // element k of row n: lane k % 32 of its dequantised chunk
      const int64_t per_block = ir::dtype_block_elems(o.b_dtype);
      NodeRef block = iadd(imul(ref(brow, kI64), c_i64(o.k / per_block)), idiv(kk, per_block));
      NodeRef in_block = irem(kk, per_block);
      bval = dequant(k, o.b, block, in_block, 1);
    } else {
      bval = mm.b_value(ref(brow, kI64), batch_ref, n_ref, kk, 1);
    }
    inner.push_back(assign(sum, fma(mm.a_value(ref(a_base, kI64), kk, 1), bval, ref(sum, kF32))));
    stmts.push_back(for_loop(kv, c_i64(0), c_i64(o.k), c_i64(1), std::move(inner)));
    stmts.push_back(mm.store_out(batch_ref, ref(m, kI64), n_ref, ref(sum, kF32)));
    return stmts;
  };
  if (s.gpu) {
    const int64_t items = std::min<int64_t>(s.work_group_size, total);
    k.items[0] = items;
    k.groups[0] = ceil_div(total, items);
    std::string o_name = kb.fresh("o");
    NodeRef linear = iadd(imul(builtin(Builtin::group_id, 0), c_i64(items)), builtin(Builtin::item_id, 0));
    return {let(o_name, linear), if_then(lt(ref(o_name, kI64), c_i64(total)), one(ref(o_name, kI64)))};
  }
  const int64_t per_group = std::max<int64_t>(1, s.elements_per_group / std::max<int64_t>(1, o.k));
  k.groups[0] = ceil_div(total, per_group);
  std::string o_name = kb.fresh("o");
  NodeRef begin = imul(builtin(Builtin::group_id, 0), c_i64(per_group));
  return {for_loop(o_name, begin, min_(iadd(begin, c_i64(per_group)), c_i64(total)), c_i64(1), one(ref(o_name, kI64)))};
}

}  // namespace

const MatmulStrategy kPerOutput{"per_output", applies, lower};

}  // namespace moat::jit::matmul
