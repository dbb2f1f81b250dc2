// CPU, B transposed (the weight layout [.., N, K]): a work-group computes
// `matmul_cols` outputs n for `matmul_rows` rows m of A (schedule parameters); each
// chunk of B's row n is loaded (and dequantised, for Q8_0 / Q4_0 / Q4_K / Q6_K: 32
// elements at a time in registers; for FP8: converted and scaled by its 128x128 block
// scale) once and used for every row of the tile, accumulating in f32 vectors of
// `vector_lanes` lanes (32 for quantised chunks) with a scalar tail for K not a multiple
// of the width. A q8_0 A times a Q8_0 / Q4_0 B in one row (GEMV) multiplies blocks with
// `qdot` (int8 dot products), and so does a q8_k A times a Q4_K / Q6_K B (super-blocks
// of 256 with per-sub-block scales and mins); with several rows, A's rows are
// dequantised once per group into local memory and share each dequantised chunk of B in f32.
#include <algorithm>

#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

namespace {

bool applies(const Schedule& s, const MatmulShape& mm) { return !s.gpu && mm.transposed && mm.n > 0 && mm.m > 0; }

// Long (about 120 lines): one kernel read top to bottom — the group's rows of A, then per
// output n the K loop in one of three forms (qdot blocks, dequantised blocks, f32
// vectors), the scalar tail and the stores; the names it makes are part of the kernel's
// text (and hash), so its statement order is kept as is.
std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const int64_t batches = numel(mm.out_batch);
  Kernel& k = kb.kernel();
  const Schedule& s = mm.schedule();
  const int rows = static_cast<int>(std::min<int64_t>(s.matmul_rows, o.m));
  // a q8_0 A dequantised once per group (below): wider groups share that work
  const int64_t cols = std::min<int64_t>(s.matmul_cols * (mm.a_quantised() && rows > 1 ? 4 : 1), o.n);
  k.groups[0] = ceil_div(o.n, cols);
  k.groups[1] = ceil_div(o.m, rows);
  k.groups[2] = batches;
  const bool quantised = ir::is_quantised(o.b_dtype);
  int lanes = quantised || mm.a_quantised() ? 32 : s.vector_lanes;
  if (o.scales >= 0 && o.block_cols % lanes != 0) lanes = 1;
  // int8 dot products: up to 4 blocks per qdot (f32 x 32) where K has that many, or 2
  // super-blocks (f32 x 32) for a q8_k A
  const int64_t a_per_block = mm.a_quantised() ? ir::dtype_block_elems(o.a_dtype) : 32;
  const int64_t k_blocks = o.k / a_per_block;
  // (one row of A: GEMV, where int8 products beat f32 FMAs; several rows share each
  // dequantised B chunk in f32 instead, from A rows dequantised once per group)
  int qdot_blocks = 0;
  if (rows == 1 && mm.int8_dot()) qdot_blocks = k_blocks % 4 == 0 ? 4 : k_blocks % 2 == 0 ? 2 : 1;
  if (rows == 1 && mm.k_int8_dot()) qdot_blocks = k_blocks % 2 == 0 ? 2 : 1;
  const bool a_local = mm.a_quantised() && qdot_blocks == 0;
  if (qdot_blocks > 0) lanes = (mm.k_int8_dot() ? 16 : 8) * qdot_blocks;

  std::vector<NodeRef> body;
  std::string batch = kb.fresh("batch"), m0 = kb.fresh("m0"), n = kb.fresh("n");
  body.push_back(let(batch, builtin(Builtin::group_id, 2)));
  body.push_back(let(m0, imul(builtin(Builtin::group_id, 1), c_i64(rows))));
  NodeRef batch_ref = ref(batch, kI64);
  std::vector<std::string> a_base(static_cast<size_t>(rows)), a_blk(static_cast<size_t>(rows)), acc(static_cast<size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    // rows past M (the last tile) read row M - 1 and are not stored
    a_base[r] = kb.fresh("a_row");
    NodeRef m = min_(iadd(ref(m0, kI64), c_i64(r)), c_i64(o.m - 1));
    if (qdot_blocks > 0 || a_local) {
      a_blk[r] = kb.fresh("a_blk");
      body.push_back(let(a_blk[r], mm.a_row_block(batch_ref, m)));
    } else {
      body.push_back(let(a_base[r], mm.a_row(batch_ref, m)));
    }
  }
  int a_rows = -1;  // a_local: the tile's rows of A as f32, row r at r * K
  if (a_local) {
    a_rows = mm.local_buffer("a_rows", ir::DType::f32, rows * o.k);
    std::string blk = kb.fresh("blk");  // chunks of 32 (a q8_k block has 8)
    NodeRef blk_ref = ref(blk, kI64);
    const int64_t chunks = a_per_block / 32;
    NodeRef in_block = chunks == 1 ? c_i64(0) : imul(irem(blk_ref, chunks), c_i64(32));
    std::vector<NodeRef> fill;
    for (int r = 0; r < rows; ++r)
      fill.push_back(store(k, a_rows, iadd(c_i64(r * o.k), imul(blk_ref, c_i64(32))),
                           dequant(k, o.a, iadd(ref(a_blk[r], kI64), chunks == 1 ? blk_ref : idiv(blk_ref, chunks)), in_block)));
    body.push_back(for_loop(blk, c_i64(0), c_i64(o.k / 32), c_i64(1), std::move(fill)));
  }
  // A[m0 + r, kk .. kk + lanes) as f32
  auto a_chunk = [&](int r, const NodeRef& kk, int width) {
    if (a_local) return load(k, a_rows, iadd(c_i64(r * o.k), kk), width);
    return mm.a_value(ref(a_base[r], kI64), kk, width);
  };

  std::vector<NodeRef> per_n;
  NodeRef n_ref = ref(n, kI64);
  std::string brow = kb.fresh("b_row");
  per_n.push_back(let(brow, mm.b_row(batch_ref, n_ref)));
  const Type acc_t = kF32.with_lanes(lanes);
  for (int r = 0; r < rows; ++r) {
    acc[r] = kb.fresh("acc");
    per_n.push_back(var(acc[r], broadcast(c_f32(0.0), lanes)));
  }
  int64_t main_k = 0;
  if (qdot_blocks > 0) {
    std::string blk = kb.fresh("blk");
    NodeRef blk_ref = ref(blk, kI64);
    NodeRef b_block = iadd(imul(ref(brow, kI64), c_i64(k_blocks)), blk_ref);
    std::vector<NodeRef> inner;
    for (int r = 0; r < rows; ++r) {
      NodeRef a_block = iadd(ref(a_blk[r], kI64), blk_ref);
      inner.push_back(assign(acc[r], add(ref(acc[r], acc_t), qdot(k, o.a, a_block, o.b, b_block, qdot_blocks))));
    }
    per_n.push_back(for_loop(blk, c_i64(0), c_i64(k_blocks), c_i64(qdot_blocks), std::move(inner)));
    main_k = o.k;
  } else if (quantised) {
    // Whole blocks: K is a multiple of the block size for a quantised B.
    const int64_t per_block = ir::dtype_block_elems(o.b_dtype);
    std::string blk = kb.fresh("blk"), sub = kb.fresh("sub");
    NodeRef block = iadd(imul(ref(brow, kI64), c_i64(o.k / per_block)), ref(blk, kI64));
    NodeRef first = imul(ref(sub, kI64), c_i64(32));
    std::string bq = kb.fresh("bq");
    std::vector<NodeRef> inner{let(bq, dequant(k, o.b, block, first))};
    NodeRef kk = iadd(imul(ref(blk, kI64), c_i64(per_block)), first);
    for (int r = 0; r < rows; ++r)
      inner.push_back(assign(acc[r], fma(a_chunk(r, kk, 32), ref(bq, acc_t), ref(acc[r], acc_t))));
    per_n.push_back(for_loop(blk, c_i64(0), c_i64(o.k / per_block), c_i64(1),
                             {for_loop(sub, c_i64(0), c_i64(per_block / 32), c_i64(1), std::move(inner))}));
    main_k = o.k;
  } else if (lanes > 1) {
    main_k = o.k / lanes * lanes;
    std::string kv = kb.fresh("k"), bv = kb.fresh("bv");
    NodeRef kk = ref(kv, kI64);
    std::vector<NodeRef> inner{let(bv, mm.b_value(ref(brow, kI64), batch_ref, n_ref, kk, lanes))};
    for (int r = 0; r < rows; ++r)
      inner.push_back(assign(acc[r], fma(a_chunk(r, kk, lanes), ref(bv, acc_t), ref(acc[r], acc_t))));
    if (main_k > 0) per_n.push_back(for_loop(kv, c_i64(0), c_i64(main_k), c_i64(lanes), std::move(inner)));
  }
  std::vector<std::string> tail(static_cast<size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    tail[r] = kb.fresh("sum");
    per_n.push_back(var(tail[r], reduce(ReduceOp::add, ref(acc[r], acc_t))));
  }
  if (main_k < o.k) {
    std::string kv = kb.fresh("k"), bv = kb.fresh("bv");
    NodeRef kk = ref(kv, kI64);
    std::vector<NodeRef> inner{let(bv, mm.b_value(ref(brow, kI64), batch_ref, n_ref, kk, 1))};
    for (int r = 0; r < rows; ++r)
      inner.push_back(assign(tail[r], fma(a_chunk(r, kk, 1), ref(bv, kF32), ref(tail[r], kF32))));
    per_n.push_back(for_loop(kv, c_i64(main_k), c_i64(o.k), c_i64(1), std::move(inner)));
  }
  for (int r = 0; r < rows; ++r) {
    NodeRef m = iadd(ref(m0, kI64), c_i64(r));
    NodeRef st = mm.store_out(batch_ref, m, n_ref, ref(tail[r], kF32));
    per_n.push_back(o.m % rows == 0 ? st : if_then(lt(m, c_i64(o.m)), {st}));
  }
  NodeRef n0 = imul(builtin(Builtin::group_id, 0), c_i64(cols));
  body.push_back(for_loop(n, n0, min_(iadd(n0, c_i64(cols)), c_i64(o.n)), c_i64(1), std::move(per_n)));
  return body;
}

}  // namespace

const MatmulStrategy kTiled{"tiled", applies, lower};

}  // namespace moat::jit::matmul
