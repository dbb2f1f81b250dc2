// CPU, one row of A times a packed weight (decode; also each slot's expert when few
// slots share one): a work-group takes kTilesPerGroup tiles of 16 columns; the row's
// blocks are prepared once (int8_rows' accumulator start and d_a, in local memory),
// then each tile's blocks stream by in order, 16 columns per dot4. Only this strategy
// and the other int8 ones read the packed layout, which the lowering makes only for
// weights whose every use they take.
#include <algorithm>

#include "jit/matmul/int8_tiles.h"
#include "jit/weight_packing.h"
#include "support/error.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kTilesPerGroup = 8;

// K-quants (q8_k A): each tile through int8_rows_k with the one row.
std::vector<NodeRef> k_tiles(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  Kernel& k = kb.kernel();
  const int64_t tiles = o.n / kTileCols, per_group = std::min(kTilesPerGroup, tiles);
  k.groups[0] = ceil_div(tiles, per_group);
  k.groups[2] = numel(mm.out_batch);
  std::string batch = kb.fresh("batch"), a_blk = kb.fresh("a_blk"), first = kb.fresh("first"), t = kb.fresh("t");
  NodeRef batch_ref = ref(batch, kI64), t_ref = ref(t, kI64);
  std::vector<NodeRef> body{let(batch, builtin(Builtin::group_id, 2)), let(a_blk, mm.a_row_block(batch_ref, c_i64(0))),
                            let(first, imul(mm.batch_b(batch_ref), c_i64(tiles)))};
  const KRowTerms terms = k_row_terms(mm, a_blk, body);  // the row's sums and d_a, once per group
  std::vector<std::string> acc;
  std::vector<NodeRef> per_tile = int8_rows_k(mm, packed_tile(iadd(ref(first, kI64), t_ref)), {a_blk}, acc, &terms);
  per_tile.push_back(mm.store_out(batch_ref, c_i64(0), imul(t_ref, c_i64(kTileCols)), ref(acc[0], {Scalar::f32, 16})));
  NodeRef t0 = imul(builtin(Builtin::group_id, 0), c_i64(per_group));
  body.push_back(for_loop(t, t0, min_(iadd(t0, c_i64(per_group)), c_i64(tiles)), c_i64(1), std::move(per_tile)));
  return body;
}

bool applies(const Schedule&, const MatmulShape& mm) { return mm.packed_b; }

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const int64_t batches = numel(mm.out_batch);
  Kernel& k = kb.kernel();
  MOAT_INTERNAL_CHECK(o.m == 1 && o.n % kTileCols == 0, "a packed weight's matmul with ", o.m, " rows of A");
  if (packed_super_blocks(o.b_dtype)) return k_tiles(mm);
  const int64_t C = kTileCols, tiles = o.n / C, kb_count = o.k / 32, per_group = std::min(kTilesPerGroup, tiles);
  const int64_t a_bytes = ir::dtype_block_bytes(ir::DType::q8_0);
  k.groups[0] = ceil_div(tiles, per_group);
  k.groups[2] = batches;
  const bool with_min = packed_with_mins(o.b_dtype);
  const int starts = mm.local_buffer("starts", ir::DType::i32, kb_count);
  const int a_scales = mm.local_buffer("a_scales", ir::DType::f32, kb_count);
  const int a_sums = with_min ? mm.local_buffer("a_sums", ir::DType::f32, kb_count) : -1;  // d_a x the quants' sum
  std::string batch = kb.fresh("batch"), a_blk = kb.fresh("a_blk"), first = kb.fresh("first"), blk = kb.fresh("blk");
  NodeRef batch_ref = ref(batch, kI64), blk_ref = bounded_ref(blk, 0, kb_count - 1), a_blk_ref = ref(a_blk, kI64);
  std::vector<NodeRef> body{let(batch, builtin(Builtin::group_id, 2)), let(a_blk, mm.a_row_block(batch_ref, c_i64(0))),
                            let(first, imul(mm.batch_b(batch_ref), c_i64(tiles)))};
  {  // the row's blocks: where their dot4 sums start, d_a (and for a B with mins d_a x the quants' sum)
    NodeRef at = imul(iadd(a_blk_ref, blk_ref), c_i64(a_bytes));
    NodeRef d_a = qscale(k, o.a, iadd(a_blk_ref, blk_ref));
    std::vector<NodeRef> per_block{store(k, starts, blk_ref, a_block_start(mm, at)), store(k, a_scales, blk_ref, d_a)};
    if (with_min) per_block.push_back(store(k, a_sums, blk_ref, binary(BinaryOp::mul, d_a, a_quant_sum(mm, at))));
    body.push_back(for_loop(blk, c_i64(0), c_i64(kb_count), c_i64(1), std::move(per_block)));
  }
  const Type fx{Scalar::f32, static_cast<int>(C)}, ix{Scalar::i32, static_cast<int>(C)};
  std::string t = kb.fresh("t"), acc = kb.fresh("acc"), b2 = kb.fresh("blk"), iacc = kb.fresh("iacc");
  NodeRef t_ref = ref(t, kI64), b2_ref = bounded_ref(b2, 0, kb_count - 1);
  WeightTile w = packed_tile(iadd(ref(first, kI64), t_ref));
  NodeRef sum = broadcast(load(k, starts, b2_ref), static_cast<int>(C));
  NodeRef at = imul(iadd(a_blk_ref, b2_ref), c_i64(a_bytes));
  for (int q = 0; q < 8; ++q)
    sum = dot4(sum, tile_quads(mm, w, b2_ref, q), cast({Scalar::i8, 4}, load(k, o.a, iadd(at, c_i64(2 + 4 * q)), 4)));
  NodeRef scale = binary(BinaryOp::mul, tile_scales(mm, w, b2_ref), broadcast(load(k, a_scales, b2_ref), static_cast<int>(C)));
  NodeRef next = fma(cast(fx, ref(iacc, ix)), scale, ref(acc, fx));
  if (with_min) next = fma(tile_mins(mm, w, b2_ref), broadcast(load(k, a_sums, b2_ref), static_cast<int>(C)), next);
  std::vector<NodeRef> per_tile{
      var(acc, broadcast(c_f32(0.0), static_cast<int>(C))),
      for_loop(b2, c_i64(0), c_i64(kb_count), c_i64(1), {let(iacc, sum), assign(acc, next)}),
      mm.store_out(batch_ref, c_i64(0), imul(t_ref, c_i64(C)), ref(acc, fx))};
  NodeRef t0 = imul(builtin(Builtin::group_id, 0), c_i64(per_group));
  body.push_back(for_loop(t, t0, min_(iadd(t0, c_i64(per_group)), c_i64(tiles)), c_i64(1), std::move(per_tile)));
  return body;
}

}  // namespace

const MatmulStrategy kInt8GemvPacked{"int8_gemv_packed", applies, lower};

}  // namespace moat::jit::matmul
