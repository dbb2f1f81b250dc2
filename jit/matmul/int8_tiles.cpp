// Weight tiles for the int8 strategies: layout, quads, scales, the per-row block loop.
#include "jit/matmul/int8_tiles.h"

#include "jit/weight_packing.h"
#include "support/error.h"

namespace moat::jit::matmul {

namespace {

// The fifth bits of q5_0 block `blk`'s quad q (elements 4q .. 4q + 3: bits 4q .. 4q + 3
// of the little-endian qh at byte 2) as u8 x 4 of 0 or 16: byte q / 2 of qh, each lane
// shifted to move its bit to bit 4.
NodeRef q5_fifth_bits(const Kernel& k, int buffer, const NodeRef& blk, int q) {
  const int64_t bytes = ir::dtype_block_bytes(ir::DType::q5_0);
  NodeRef qh = broadcast(load(k, buffer, iadd(imul(blk, c_i64(bytes)), c_i64(2 + q / 2))), 4);
  auto lanes = [](int a, int b, int c, int d) { return concat(concat(c_u8(a), c_u8(b)), concat(c_u8(c), c_u8(d))); };
  NodeRef at_bit4 =
      q % 2 == 0 ? binary(BinaryOp::shl, qh, lanes(4, 3, 2, 1)) : binary(BinaryOp::shr, qh, lanes(0, 1, 2, 3));
  return binary(BinaryOp::land, at_bit4, u8s(16, 4));
}

}  // namespace

WeightTile packed_tile(NodeRef tile) {
  WeightTile t;
  t.packed_tile = std::move(tile);
  return t;
}

NodeRef tile_quads(MatmulBuilder& mm, const WeightTile& t, const NodeRef& blk, int q) {
  Kernel& k = mm.kb.kernel();
  const int64_t C = kTileCols, kb = mm.o.k / 32;
  if (!t.packed_tile) return load(k, t.quads, imul(iadd(imul(blk, c_i64(8)), c_i64(q)), c_i64(C * 4)), static_cast<int>(4 * C));
  const ir::DType bd = mm.o.b_dtype;
  const bool q5 = bd == ir::DType::q5_0 || bd == ir::DType::q5_1;
  const bool q4 = bd == ir::DType::q4_0 || bd == ir::DType::q4_1 || unsigned_codebook(bd) != nullptr || q5;  // q4: nibbles
  const int64_t vectors = packed_vectors(bd);
  NodeRef first = imul(iadd(imul(t.packed_tile, c_i64(kb)), blk), c_i64(vectors));  // the tile and block's vector 0
  NodeRef raw = load(k, mm.o.b, imul(iadd(first, c_i64(q4 ? q % 4 : q)), c_i64(64)), 64);
  if (!q4) return raw;  // stored + 128
  NodeRef nibble = q < 4 ? binary(BinaryOp::land, raw, u8s(15, 64)) : binary(BinaryOp::shr, raw, u8s(4, 64));
  if (const TableDecl* book = unsigned_codebook(bd)) return codebook_values(k, *book, nibble);  // iq4_nl, mxfp4
  if (!q5) return nibble;
  // q5_0 / q5_1: vector 4, bit q of byte i of a lane the fifth bit of element 4q + i (jit/weight_packing.h)
  NodeRef bits = load(k, mm.o.b, imul(iadd(first, c_i64(4)), c_i64(64)), 64);
  return binary(BinaryOp::lor, nibble, move_bit(bits, q, 4, 64));
}

NodeRef tile_scales(MatmulBuilder& mm, const WeightTile& t, const NodeRef& blk) {
  Kernel& k = mm.kb.kernel();
  const int64_t C = kTileCols, kb = mm.o.k / 32;
  if (!t.packed_tile) return load(k, t.scales, imul(blk, c_i64(C)), static_cast<int>(C));
  NodeRef at = imul(iadd(imul(t.packed_tile, c_i64(kb)), blk), c_i64(packed_block_scales(mm.o.b_dtype)));
  NodeRef slots = load(k, mm.o.b_scales, at, static_cast<int>(C));
  if (mm.o.b_dtype == ir::DType::mxfp4) {  // the E8M0 exponent in each slot's low byte
    const Type ix{Scalar::i32, static_cast<int>(C)};
    return e8m0_to_f32_half(binary(BinaryOp::land, bitcast(ix, slots), broadcast(c_i32(255), static_cast<int>(C))));
  }
  return cast(kF32.with_lanes(static_cast<int>(C)), slots);
}

NodeRef tile_mins(MatmulBuilder& mm, const WeightTile& t, const NodeRef& blk) {
  MOAT_INTERNAL_CHECK(t.packed_tile != nullptr, "the mins of ", ir::dtype_name(mm.o.b_dtype), " come from packed tiles only");
  const int64_t C = kTileCols, kb = mm.o.k / 32;
  NodeRef at = iadd(imul(iadd(imul(t.packed_tile, c_i64(kb)), blk), c_i64(packed_block_scales(mm.o.b_dtype))), c_i64(C));
  return cast(kF32.with_lanes(static_cast<int>(C)), load(mm.kb.kernel(), mm.o.b_scales, at, static_cast<int>(C)));
}

WeightTile weight_tile(MatmulBuilder& mm, const std::function<NodeRef(const NodeRef&)>& b_row_of) {
  Kernel& k = mm.kb.kernel();
  const int64_t C = kTileCols, kb = mm.o.k / 32, b_bytes = ir::dtype_block_bytes(mm.o.b_dtype);
  const bool q5 = mm.o.b_dtype == ir::DType::q5_0, q4 = mm.o.b_dtype == ir::DType::q4_0 || q5;  // q4: nibbles
  const int64_t quants_at = q5 ? 6 : 2;  // byte of qs in a block
  WeightTile t;
  t.quads = mm.local_buffer("quads", ir::DType::u8, kb * 8 * C * 4);
  t.scales = mm.local_buffer("scales", ir::DType::f32, kb * C);
  std::string c = mm.kb.fresh("c"), blk = mm.kb.fresh("blk"), brow = mm.kb.fresh("b_row"), bblk = mm.kb.fresh("b_blk");
  NodeRef c_ref = bounded_ref(c, 0, C - 1), blk_ref = bounded_ref(blk, 0, kb - 1), bblk_ref = ref(bblk, kI64);
  std::vector<NodeRef> per_block{let(bblk, iadd(imul(ref(brow, kI64), c_i64(kb)), blk_ref)),
                                 store(k, t.scales, iadd(imul(blk_ref, c_i64(C)), c_ref), qscale(k, mm.o.b, bblk_ref))};
  for (int q = 0; q < 8; ++q) {
    NodeRef raw = load(k, mm.o.b, iadd(imul(bblk_ref, c_i64(b_bytes)), c_i64(quants_at + 4 * (q4 ? q % 4 : q))), 4);
    NodeRef v = !q4 ? add(raw, u8s(128, 4)) : q < 4 ? binary(BinaryOp::land, raw, u8s(15, 4)) : binary(BinaryOp::shr, raw, u8s(4, 4));
    if (q5) v = binary(BinaryOp::lor, v, q5_fifth_bits(k, mm.o.b, bblk_ref, q));
    NodeRef at = imul(iadd(imul(iadd(imul(blk_ref, c_i64(8)), c_i64(q)), c_i64(C)), c_ref), c_i64(4));
    per_block.push_back(store(k, t.quads, at, v));
  }
  t.stmts.push_back(for_loop(c, c_i64(0), c_i64(C), c_i64(1),
                             {let(brow, b_row_of(c_ref)), for_loop(blk, c_i64(0), c_i64(kb), c_i64(1), std::move(per_block))}));
  return t;
}

std::vector<NodeRef> int8_rows(MatmulBuilder& mm, const WeightTile& t, const std::vector<std::string>& a_blk,
                               std::vector<std::string>& acc) {
  if (packed_super_blocks(mm.o.b_dtype)) return int8_rows_k(mm, t, a_blk, acc);
  Kernel& k = mm.kb.kernel();
  const int64_t C = kTileCols, kb = mm.o.k / 32, a_bytes = ir::dtype_block_bytes(ir::DType::q8_0);
  const Type fx{Scalar::f32, static_cast<int>(C)}, ix{Scalar::i32, static_cast<int>(C)}, ux{Scalar::u8, static_cast<int>(4 * C)};
  std::vector<NodeRef> out;
  acc.assign(a_blk.size(), "");
  for (size_t r = 0; r < a_blk.size(); ++r) {
    acc[r] = mm.kb.fresh("acc");
    out.push_back(var(acc[r], broadcast(c_f32(0.0), static_cast<int>(C))));
  }
  std::string blk = mm.kb.fresh("blk"), db = mm.kb.fresh("db");
  NodeRef blk_ref = bounded_ref(blk, 0, kb - 1);
  std::vector<NodeRef> per_block;
  std::vector<std::string> bq(8);
  for (int q = 0; q < 8; ++q) {
    bq[q] = mm.kb.fresh("bq");
    per_block.push_back(let(bq[q], tile_quads(mm, t, blk_ref, q)));
  }
  per_block.push_back(let(db, tile_scales(mm, t, blk_ref)));
  const bool with_min = packed_with_mins(mm.o.b_dtype);
  std::string mins = mm.kb.fresh("mins");
  if (with_min) per_block.push_back(let(mins, tile_mins(mm, t, blk_ref)));
  for (size_t r = 0; r < a_blk.size(); ++r) {
    std::string a_block = mm.kb.fresh("a_block"), ab = mm.kb.fresh("a_at"), iacc = mm.kb.fresh("iacc");
    per_block.push_back(let(a_block, iadd(ref(a_blk[r], kI64), blk_ref)));
    per_block.push_back(let(ab, imul(ref(a_block, kI64), c_i64(a_bytes))));  // its first byte
    NodeRef sum = broadcast(a_block_start(mm, ref(ab, kI64)), static_cast<int>(C));
    for (int q = 0; q < 8; ++q) {
      NodeRef quad = cast({Scalar::i8, 4}, load(k, mm.o.a, iadd(ref(ab, kI64), c_i64(2 + 4 * q)), 4));
      sum = dot4(sum, ref(bq[q], ux), quad);
    }
    per_block.push_back(let(iacc, sum));
    std::string da = mm.kb.fresh("d_a");
    per_block.push_back(let(da, qscale(k, mm.o.a, ref(a_block, kI64))));
    NodeRef scale = binary(BinaryOp::mul, ref(db, fx), broadcast(ref(da, kF32), static_cast<int>(C)));
    NodeRef next = fma(cast(fx, ref(iacc, ix)), scale, ref(acc[r], fx));
    if (with_min)  // + m_b x d_a x the sum of the block's quants (llama.cpp's q8_1 s)
      next = fma(ref(mins, fx), broadcast(binary(BinaryOp::mul, ref(da, kF32), a_quant_sum(mm, ref(ab, kI64))), static_cast<int>(C)),
                 next);
    per_block.push_back(assign(acc[r], next));
  }
  out.push_back(for_loop(blk, c_i64(0), c_i64(kb), c_i64(1), std::move(per_block)));
  return out;
}

std::vector<NodeRef> store_columns(MatmulBuilder& mm, const NodeRef& batch, const NodeRef& m, const NodeRef& n0,
                                   const std::string& acc) {
  const Type fx{Scalar::f32, static_cast<int>(kTileCols)};
  if (mm.o.n % kTileCols == 0) return {mm.store_out(batch, m, n0, ref(acc, fx))};
  std::vector<NodeRef> st;
  for (int64_t c = 0; c < kTileCols; ++c)
    st.push_back(if_then(lt(iadd(n0, c_i64(c)), c_i64(mm.o.n)),
                         {mm.store_out(batch, m, iadd(n0, c_i64(c)), extract(ref(acc, fx), c_i64(c)))}));
  return st;
}

NodeRef a_quant_sum(MatmulBuilder& mm, const NodeRef& at, Scalar s) {
  NodeRef quants = cast({Scalar::i8, 32}, load(mm.kb.kernel(), mm.o.a, iadd(at, c_i64(2)), 32));
  NodeRef sum = reduce(ReduceOp::add, dot4(broadcast(c_i32(0), 8), u8s(1, 32), quants));
  return s == Scalar::i32 ? sum : cast({s, 1}, sum);
}

NodeRef a_block_start(MatmulBuilder& mm, const NodeRef& at) {
  const int64_t offset = find_block_format(mm.o.b_dtype)->integer_offset;  // the tiles hold the integer form's u
  if (offset == 0) return c_i32(0);  // q4_1 / q5_1: the min's term instead
  return binary(BinaryOp::mul, a_quant_sum(mm, at, Scalar::i32), c_i32(-offset));
}

NodeRef codebook_values(Kernel& k, const TableDecl& book, const NodeRef& nibbles) {
  const int lanes = nibbles->type.lanes;
  return table_load(k, k.add_table(book), cast({Scalar::i64, lanes}, nibbles));  // one element per lane
}

NodeRef u8s(int64_t v, int lanes) { return broadcast(constant({Scalar::u8, 1}, static_cast<double>(v)), lanes); }

NodeRef move_bit(const NodeRef& bytes, int from, int to, int lanes) {
  NodeRef moved = from < to   ? binary(BinaryOp::shl, bytes, u8s(to - from, lanes))
                  : from > to ? binary(BinaryOp::shr, bytes, u8s(from - to, lanes))
                              : bytes;
  return binary(BinaryOp::land, moved, u8s(int64_t{1} << to, lanes));
}

}  // namespace moat::jit::matmul
