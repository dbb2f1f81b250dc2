// GPU, long K (at least kMinK): a work-group per output; its work-items take strided k
// and the partial sums meet in a local-memory tree (group_reduce).
#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kMinK = 128;  // shorter sums: one output per work-item (per_output)

bool applies(const Schedule& s, const MatmulShape& mm) { return s.gpu && mm.k >= kMinK && mm.batches * mm.m * mm.n > 0; }

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const int64_t batches = numel(mm.out_batch);
  Kernel& k = kb.kernel();
  const int64_t items = reduction_items(mm.schedule(), o.k);
  k.groups[0] = batches * o.m * o.n;
  std::string lin = kb.fresh("o"), batch = kb.fresh("batch"), m = kb.fresh("m"), n = kb.fresh("n");
  std::string sum = kb.fresh("sum"), kv = kb.fresh("k"), a_base = kb.fresh("a_row"), brow = kb.fresh("b_row");
  NodeRef batch_ref = ref(batch, kI64), n_ref = ref(n, kI64), kk = ref(kv, kI64);
  std::vector<NodeRef> body{let(lin, builtin(Builtin::group_id, 0)),
                            let(n, irem(ref(lin, kI64), o.n)),
                            let(m, irem(idiv(ref(lin, kI64), o.n), o.m)),
                            let(batch, idiv(ref(lin, kI64), o.n * o.m))};
  body.push_back(let(a_base, mm.a_row(batch_ref, ref(m, kI64))));
  body.push_back(let(brow, mm.b_row(batch_ref, n_ref)));
  body.push_back(var(sum, c_f32(0.0)));
  NodeRef bval;
  if (ir::is_quantised(o.b_dtype)) {
    const int64_t per_block = ir::dtype_block_elems(o.b_dtype);
    NodeRef block = iadd(imul(ref(brow, kI64), c_i64(o.k / per_block)), idiv(kk, per_block));
    bval = dequant(k, o.b, block, irem(kk, per_block), 1);
  } else {
    bval = mm.b_value(ref(brow, kI64), batch_ref, n_ref, kk, 1);
  }
  body.push_back(for_loop(kv, builtin(Builtin::item_id, 0), c_i64(o.k), c_i64(items),
                          {assign(sum, fma(mm.a_value(ref(a_base, kI64), kk, 1), bval, ref(sum, kF32)))}));
  GroupReduction tree = group_reduce(kb, ref(sum, kF32), BinaryOp::add, items);
  body.insert(body.end(), tree.stmts.begin(), tree.stmts.end());
  body.push_back(if_then(binary(BinaryOp::eq, builtin(Builtin::item_id, 0), c_i64(0)),
                         {mm.store_out(batch_ref, ref(m, kI64), n_ref, tree.result)}));
  return body;
}

}  // namespace

const MatmulStrategy kSplitK{"split_k", applies, lower};

}  // namespace moat::jit::matmul
