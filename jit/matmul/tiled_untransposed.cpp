// CPU, B [.., K, N] (activations: attention's probabilities x values): vectors of
// `vector_lanes` consecutive outputs n, each a sequential sum over k (the order of
// per_output), for `matmul_rows` rows of A; a scalar tail for N past the last vector.
// A work-group takes up to 4 vectors of outputs.
#include <algorithm>

#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kVectorsPerGroup = 4;

bool applies(const Schedule& s, const MatmulShape& mm) {
  return !s.gpu && !mm.transposed && !ir::is_quantised(mm.b_dtype) && !mm.fp8_scales && mm.m > 0 && mm.n >= s.vector_lanes;
}

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const int64_t batches = numel(mm.out_batch);
  Kernel& k = kb.kernel();
  const Schedule& s = mm.schedule();
  const int lanes = s.vector_lanes;
  const int rows = static_cast<int>(std::min<int64_t>(s.matmul_rows, o.m));
  const int64_t cols = std::min<int64_t>(int64_t{lanes} * kVectorsPerGroup, o.n / lanes * lanes);  // outputs per group
  const int64_t main_n = o.n / lanes * lanes;
  k.groups[0] = ceil_div(o.n, cols);
  k.groups[1] = ceil_div(o.m, rows);
  k.groups[2] = batches;
  std::string batch = kb.fresh("batch"), m0 = kb.fresh("m0"), n0 = kb.fresh("n0"), b_base = kb.fresh("b_base");
  NodeRef batch_ref = ref(batch, kI64);
  std::vector<NodeRef> body{let(batch, builtin(Builtin::group_id, 2)),
                            let(m0, imul(builtin(Builtin::group_id, 1), c_i64(rows))),
                            let(n0, imul(builtin(Builtin::group_id, 0), c_i64(cols))),
                            let(b_base, imul(mm.batch_b(batch_ref), c_i64(o.k * o.n)))};
  std::vector<std::string> a_base(static_cast<size_t>(rows));
  for (int r = 0; r < rows; ++r) {  // rows past M (the last tile) read row M - 1 and are not stored
    a_base[r] = kb.fresh("a_row");
    body.push_back(let(a_base[r], mm.a_row(batch_ref, min_(iadd(ref(m0, kI64), c_i64(r)), c_i64(o.m - 1)))));
  }
  const NodeRef end = min_(iadd(ref(n0, kI64), c_i64(cols)), c_i64(o.n));
  auto columns = [&](const std::string& n, int width) {
    const Type t = kF32.with_lanes(width);
    NodeRef n_ref = ref(n, kI64);
    std::vector<NodeRef> per_n;
    std::vector<std::string> acc(static_cast<size_t>(rows));
    for (int r = 0; r < rows; ++r) {
      acc[r] = kb.fresh("acc");
      per_n.push_back(var(acc[r], width == 1 ? c_f32(0.0) : broadcast(c_f32(0.0), width)));
    }
    std::string kv = kb.fresh("k"), bv = kb.fresh("bv");
    NodeRef kk = ref(kv, kI64);
    NodeRef b_at = iadd(ref(b_base, kI64), iadd(imul(kk, c_i64(o.n)), n_ref));
    std::vector<NodeRef> inner{let(bv, cast(t, load(k, o.b, b_at, width)))};
    for (int r = 0; r < rows; ++r) {
      NodeRef a = mm.a_value(ref(a_base[r], kI64), kk, 1);
      inner.push_back(assign(acc[r], fma(width == 1 ? a : broadcast(a, width), ref(bv, t), ref(acc[r], t))));
    }
    per_n.push_back(for_loop(kv, c_i64(0), c_i64(o.k), c_i64(1), std::move(inner)));
    for (int r = 0; r < rows; ++r) {
      NodeRef m = iadd(ref(m0, kI64), c_i64(r));
      NodeRef st = mm.store_out(batch_ref, m, n_ref, ref(acc[r], t));
      per_n.push_back(o.m % rows == 0 ? st : if_then(lt(m, c_i64(o.m)), {st}));
    }
    return per_n;
  };
  std::string nv = kb.fresh("n"), ns = kb.fresh("n");
  body.push_back(for_loop(nv, ref(n0, kI64), min_(end, c_i64(main_n)), c_i64(lanes), columns(nv, lanes)));
  if (main_n < o.n)
    body.push_back(for_loop(ns, max_(ref(n0, kI64), c_i64(main_n)), end, c_i64(1), columns(ns, 1)));
  return body;
}

}  // namespace

const MatmulStrategy kTiledUntransposed{"tiled_untransposed", applies, lower};

}  // namespace moat::jit::matmul
