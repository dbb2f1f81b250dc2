// CPU, B transposed, a few rows of A (2..kMaxRows: a verification pass of drafted
// tokens, a decode step of up to 8 sequences) in f32 / f16 / bf16: a work-group computes
// `matmul_cols` outputs n for all rows m, a block of `columns_for(rows)` outputs at a
// time, so that each chunk of A's rows is loaded once for the block and each chunk of
// B's rows once for every row: rows x columns independent f32-vector accumulators per
// K step, as many as the vector registers allow. (tiled.cpp loads A's chunk again for
// every output n, which made such passes compute-bound: a [2, 4096] x [16384, 4096]^T
// f16 product took twice the time of one row.)
#include <algorithm>

#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

namespace {

// Rows of A in one tile: 8 sequences decoded together load each chunk of B once (a
// [8, 256] x [4096, 256]^T f16 product: 0.20 ms as two tiles of 4 rows, 0.10 ms as one).
constexpr int64_t kMaxRows = 8;

// Outputs per block: rows x columns accumulators within half the vector registers, the
// rest holding A's and B's chunks: 16 of AVX-512's 32 (16 f32 lanes), 8 of AVX2's 16.
int64_t columns_for(const Schedule& s, int64_t rows) {
  const int64_t accumulators = s.vector_lanes >= 16 ? 16 : 8;
  return std::clamp<int64_t>(accumulators / rows, 1, 4);
}

bool applies(const Schedule& s, const MatmulShape& mm) {
  const bool plain_b = mm.b_dtype == ir::DType::f32 || mm.b_dtype == ir::DType::f16 || mm.b_dtype == ir::DType::bf16;
  return !s.gpu && mm.transposed && plain_b && mm.a_dtype == ir::DType::f32 && !mm.fp8_scales && !mm.packed_b &&
         !mm.gathered_b && mm.m >= 2 && mm.m <= kMaxRows && mm.n > 0 && s.vector_lanes > 1 &&
         mm.k % s.vector_lanes == 0 && mm.k > 0;
}

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  Kernel& k = kb.kernel();
  const Schedule& s = mm.schedule();
  const int64_t rows = o.m;  // applies: 2..kMaxRows, one tile of rows
  const int64_t columns = columns_for(s, rows);
  const int64_t cols = std::min<int64_t>((s.matmul_cols + columns - 1) / columns * columns, (o.n + columns - 1) / columns * columns);
  const int lanes = s.vector_lanes;
  k.groups[0] = ceil_div(o.n, cols);
  k.groups[1] = 1;
  k.groups[2] = numel(mm.out_batch);

  std::vector<NodeRef> body;
  std::string batch = kb.fresh("batch");
  body.push_back(let(batch, builtin(Builtin::group_id, 2)));
  NodeRef batch_ref = ref(batch, kI64);
  std::vector<std::string> a_base(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    a_base[static_cast<size_t>(r)] = kb.fresh("a_row");
    body.push_back(let(a_base[static_cast<size_t>(r)], mm.a_row(batch_ref, c_i64(r))));
  }

  // One block: outputs n .. n + columns - 1 (those past N read row N - 1, not stored).
  std::string n = kb.fresh("n");
  NodeRef n_ref = ref(n, kI64);
  std::vector<NodeRef> block;
  std::vector<std::string> b_row(static_cast<size_t>(columns)), n_of(static_cast<size_t>(columns));
  for (int64_t j = 0; j < columns; ++j) {
    n_of[static_cast<size_t>(j)] = kb.fresh("nj");
    b_row[static_cast<size_t>(j)] = kb.fresh("b_row");
    block.push_back(let(n_of[static_cast<size_t>(j)], min_(iadd(n_ref, c_i64(j)), c_i64(o.n - 1))));
    block.push_back(let(b_row[static_cast<size_t>(j)], mm.b_row(batch_ref, ref(n_of[static_cast<size_t>(j)], kI64))));
  }
  const Type acc_t = kF32.with_lanes(lanes);
  std::vector<std::string> acc(static_cast<size_t>(rows * columns));
  for (std::string& a : acc) {
    a = kb.fresh("acc");
    block.push_back(var(a, broadcast(c_f32(0.0), lanes)));
  }
  std::string kv = kb.fresh("k");
  NodeRef kk = ref(kv, kI64);
  std::vector<NodeRef> inner;
  std::vector<std::string> bv(static_cast<size_t>(columns));
  for (int64_t j = 0; j < columns; ++j) {
    bv[static_cast<size_t>(j)] = kb.fresh("bv");
    inner.push_back(let(bv[static_cast<size_t>(j)], mm.b_value(ref(b_row[static_cast<size_t>(j)], kI64), batch_ref,
                                                              ref(n_of[static_cast<size_t>(j)], kI64), kk, lanes)));
  }
  for (int64_t r = 0; r < rows; ++r) {
    std::string av = kb.fresh("av");
    inner.push_back(let(av, mm.a_value(ref(a_base[static_cast<size_t>(r)], kI64), kk, lanes)));
    for (int64_t j = 0; j < columns; ++j) {
      const std::string& a = acc[static_cast<size_t>(r * columns + j)];
      inner.push_back(assign(a, fma(ref(av, acc_t), ref(bv[static_cast<size_t>(j)], acc_t), ref(a, acc_t))));
    }
  }
  block.push_back(for_loop(kv, c_i64(0), c_i64(o.k), c_i64(lanes), std::move(inner)));
  for (int64_t j = 0; j < columns; ++j) {
    std::vector<NodeRef> stores;
    for (int64_t r = 0; r < rows; ++r)
      stores.push_back(mm.store_out(batch_ref, c_i64(r), iadd(n_ref, c_i64(j)),
                                    reduce(ReduceOp::add, ref(acc[static_cast<size_t>(r * columns + j)], acc_t))));
    if (o.n % columns == 0) {
      block.insert(block.end(), stores.begin(), stores.end());
    } else {
      block.push_back(if_then(lt(iadd(n_ref, c_i64(j)), c_i64(o.n)), std::move(stores)));
    }
  }
  NodeRef n0 = imul(builtin(Builtin::group_id, 0), c_i64(cols));
  body.push_back(for_loop(n, n0, min_(iadd(n0, c_i64(cols)), c_i64(o.n)), c_i64(columns), std::move(block)));
  return body;
}

}  // namespace

const MatmulStrategy kTiledColumns{"tiled_columns", applies, lower};

}  // namespace moat::jit::matmul
