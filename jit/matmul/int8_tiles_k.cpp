// Packed Q2_K / Q3_K / Q4_K / Q5_K / Q6_K / IQ4_XS weight tiles times rows of a q8_k A (jit/weight_packing.h's
// super-block layout): llama.cpp's vec_dot_q4_K_q8_K / vec_dot_q6_K_q8_K for 16 columns
// at once. Per super-block of 256, each sub-block's integer dot products (dot4 of the
// tile's 16 columns of unsigned quants with the row's int8 quants) are weighted by the
// sub-block's integer scale and summed in i32, exactly; then one conversion to f32 per
// super-block:
//   Q4_K  acc += (d * d_a) * sum_s sc_s * dot_s  -  (dmin * d_a) * sum_s m_s * bsum32_s
//         (Q5_K the same, its quants with the fifth bit)
//   Q6_K  acc += (d * d_a) * sum_s sc_s * (dot_s - 32 * bsum16_s)   (Q3_K: - 4, sc - 32 signed)
//   Q2_K  acc += (d * d_a) * sum_s sc_s * dot_s  -  (dmin * d_a) * sum_s m_s * bsum16_s
//   IQ4_XS acc += (d * d_a) * sum_s (ls_s - 32) * (dot_s - 128 * bsum32_s), the values
//         kvalues_iq4nl + 128 looked up from the nibbles (vec_dot_iq4_xs_q8_K)
// where bsum are the sums of the row's quants over the sub-block (q8_k's bsums).
#include <functional>

#include "jit/matmul/int8_tiles.h"
#include "jit/weight_packing.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kSuperBlock = 256, kABytes = 292;  // q8_k: f32 d, 256 int8 qs, 16 int16 bsums

struct RowTerms {
  std::string block;  // the row's q8_k block for this super-block
  std::string at;     // its first byte
};

// Two of a q8_k block's bsums (16 quants each), numbers 2p and 2p + 1, as one i32 (the
// little-endian i16 pair at byte 260 + 4p; blocks and that field are 4-byte aligned).
NodeRef a_bsum_pair(MatmulBuilder& mm, const NodeRef& at, int p) {
  NodeRef word = load_as(mm.kb.kernel(), mm.o.a, iadd(idiv(at, 4), c_i64(65 + p)), kF32);
  return bitcast(kI32, word);
}
// bsum 2p (the pair's low half) or 2p + 1 (high), sign-extended.
NodeRef pair_low(const NodeRef& pair) { return binary(BinaryOp::shr, binary(BinaryOp::shl, pair, c_i32(16)), c_i32(16)); }
NodeRef pair_high(const NodeRef& pair) { return binary(BinaryOp::shr, pair, c_i32(16)); }

// Whether the type's sub-blocks are 32 elements (Q4_K, Q5_K, IQ4_XS) rather than 16.
bool wide_sub_blocks(ir::DType d) { return d == ir::DType::q4_k || d == ir::DType::q5_k || d == ir::DType::iq4_xs; }
// Whether the type has mins (x = s * q - m): Q2_K, Q4_K, Q5_K.
bool has_mins(ir::DType d) { return d == ir::DType::q2_k || d == ir::DType::q4_k || d == ir::DType::q5_k; }

// The row's per-sub-block term of super-block `at` (A's block's first byte), sub-block s:
// with mins the sum of its quants (the mins' factor: 32 for Q4_K / Q5_K, 16 for Q2_K);
// Q6_K / Q3_K -32 / -4 x the sum of its 16, IQ4_XS -128 x the sum of its 32 (where its
// dot4 chain starts: the unsigned values' offset).
NodeRef a_sub_term(MatmulBuilder& mm, const NodeRef& at, int s) {
  const ir::DType d = mm.o.b_dtype;
  if (wide_sub_blocks(d)) {
    NodeRef pair = a_bsum_pair(mm, at, s);
    NodeRef sum = add(pair_low(pair), pair_high(pair));
    return d == ir::DType::iq4_xs ? mul(sum, c_i32(-kCodebookOffset)) : sum;
  }
  NodeRef pair = a_bsum_pair(mm, at, s / 2);
  NodeRef bsum = s % 2 == 0 ? pair_low(pair) : pair_high(pair);
  if (d == ir::DType::q2_k) return bsum;
  return mul(bsum, c_i32(d == ir::DType::q6_k ? -32 : -4));
}

// Where a 16-element sub-block type's per-sub-block scale bytes start in its packed
// super-block (jit/weight_packing.h).
int64_t sub_scales_at(ir::DType d) { return d == ir::DType::q6_k ? 4096 : d == ir::DType::q3_k ? 1536 : 1024; }

int sub_blocks(ir::DType d) { return wide_sub_blocks(d) ? 8 : 16; }

// The row's int8 quad q (elements 4q .. 4q + 3) of its 32 elements from `first`.
NodeRef a_quad(MatmulBuilder& mm, const NodeRef& at, int64_t first, int q) {
  return load_as(mm.kb.kernel(), mm.o.a, iadd(at, c_i64(4 + first + 4 * q)), {Scalar::i8, 4});
}

NodeRef u8_vector(MatmulBuilder& mm, const NodeRef& at) { return load(mm.kb.kernel(), mm.o.b, at, 64); }

NodeRef i32s(const NodeRef& u8x16) { return cast(Type{Scalar::i32, static_cast<int>(kTileCols)}, u8x16); }

}  // namespace

KRowTerms k_row_terms(MatmulBuilder& mm, const std::string& a_blk, std::vector<NodeRef>& stmts) {
  Kernel& k = mm.kb.kernel();
  const int64_t sb = mm.o.k / kSuperBlock;
  const int subs = sub_blocks(mm.o.b_dtype);
  KRowTerms terms;
  terms.sub = mm.local_buffer("a_terms", ir::DType::i32, sb * subs);
  terms.d = mm.local_buffer("a_d", ir::DType::f32, sb);
  std::string b = mm.kb.fresh("sb"), at = mm.kb.fresh("a_at");
  NodeRef b_ref = bounded_ref(b, 0, sb - 1), block = iadd(ref(a_blk, kI64), b_ref);
  std::vector<NodeRef> body{let(at, imul(block, c_i64(kABytes))),
                            store(k, terms.d, b_ref, load_as(k, mm.o.a, imul(block, c_i64(kABytes / 4)), kF32))};
  for (int s = 0; s < subs; ++s)
    body.push_back(store(k, terms.sub, iadd(imul(b_ref, c_i64(subs)), c_i64(s)), a_sub_term(mm, ref(at, kI64), s)));
  stmts.push_back(for_loop(b, c_i64(0), c_i64(sb), c_i64(1), std::move(body)));
  return terms;
}

std::vector<NodeRef> int8_rows_k(MatmulBuilder& mm, const WeightTile& t, const std::vector<std::string>& a_blk,
                                 std::vector<std::string>& acc, const KRowTerms* terms) {
  Kernel& k = mm.kb.kernel();
  const ir::DType bd = mm.o.b_dtype;
  const bool q4 = bd == ir::DType::q4_k || bd == ir::DType::q5_k;  // scales and mins of 32-element sub-blocks
  const bool q5 = bd == ir::DType::q5_k;     // fifth bits in 8 more vectors
  const bool mins = has_mins(bd);
  const int64_t scales_at = q5 ? 2560 : 2048, mins_at = scales_at + 128;
  const int64_t C = kTileCols, sb = mm.o.k / kSuperBlock;
  const int lanes = static_cast<int>(C);
  const Type fx{Scalar::f32, lanes}, ix{Scalar::i32, lanes};
  std::vector<NodeRef> out;
  acc.assign(a_blk.size(), "");
  for (size_t r = 0; r < a_blk.size(); ++r) {
    acc[r] = mm.kb.fresh("acc");
    out.push_back(var(acc[r], broadcast(c_f32(0.0), lanes)));
  }
  std::string blk = mm.kb.fresh("sb"), base = mm.kb.fresh("base"), sbase = mm.kb.fresh("sbase");
  NodeRef blk_ref = bounded_ref(blk, 0, sb - 1), base_ref = ref(base, kI64), sbase_ref = ref(sbase, kI64);
  NodeRef tb = iadd(imul(t.packed_tile, c_i64(sb)), blk_ref);
  std::vector<NodeRef> per_block{let(base, imul(tb, c_i64(packed_block_bytes(bd)))),
                                 let(sbase, imul(tb, c_i64(packed_block_scales(bd))))};
  std::vector<RowTerms> rows(a_blk.size());
  std::vector<std::string> dot_sum(a_blk.size()), min_sum(a_blk.size());
  for (size_t r = 0; r < a_blk.size(); ++r) {
    rows[r] = {mm.kb.fresh("a_block"), mm.kb.fresh("a_at")};
    per_block.push_back(let(rows[r].block, iadd(ref(a_blk[r], kI64), blk_ref)));
    per_block.push_back(let(rows[r].at, imul(ref(rows[r].block, kI64), c_i64(kABytes))));
    dot_sum[r] = mm.kb.fresh("isum");
    per_block.push_back(var(dot_sum[r], broadcast(c_i32(0), lanes)));
    if (mins) {
      min_sum[r] = mm.kb.fresh("msum");
      per_block.push_back(var(min_sum[r], broadcast(c_i32(0), lanes)));
    }
  }
  auto at_of = [&](size_t r) { return ref(rows[r].at, kI64); };
  // a_sub_term of row r, sub-block s: from `terms` (one row) or A's block
  auto term = [&](size_t r, int s) {
    if (terms == nullptr) return a_sub_term(mm, at_of(r), s);
    return load(k, terms->sub, iadd(imul(blk_ref, c_i64(sub_blocks(bd))), c_i64(s)));
  };
  // One sub-block: its quads (16 columns x 4 unsigned bytes each), the first element of
  // A it multiplies, its scale (i32 x 16), and the value each row's dot4 chain starts at.
  auto sub_block = [&](const std::vector<NodeRef>& quads, int64_t first, const NodeRef& scale,
                       const std::function<NodeRef(size_t)>& start) {
    std::string sc = mm.kb.fresh("sc");
    per_block.push_back(let(sc, scale));
    for (size_t r = 0; r < a_blk.size(); ++r) {
      NodeRef sum = start(r);
      for (size_t q = 0; q < quads.size(); ++q) sum = dot4(sum, quads[q], a_quad(mm, at_of(r), first, static_cast<int>(q)));
      per_block.push_back(assign(dot_sum[r], add(ref(dot_sum[r], ix), mul(sum, ref(sc, ix)))));
    }
  };
  auto zero = [&](size_t) { return broadcast(c_i32(0), lanes); };
  if (bd == ir::DType::iq4_xs) {
    // sub-block s: vectors 4s + v, low nibbles its quads v, high nibbles quads 4 + v, as
    // indices of the codebook; its int8 scale; the chain starts at -128 x the row's sum
    const TableDecl& book = *unsigned_codebook(bd);
    const Type u8{Scalar::u8, 64};
    for (int s = 0; s < 8; ++s) {
      std::vector<NodeRef> quads(8);
      for (int v = 0; v < 4; ++v) {
        std::string raw = mm.kb.fresh("bq"), lo = mm.kb.fresh("bq"), hi = mm.kb.fresh("bq");
        per_block.push_back(let(raw, u8_vector(mm, iadd(base_ref, c_i64((4 * s + v) * 64)))));
        per_block.push_back(let(lo, codebook_values(k, book, binary(BinaryOp::land, ref(raw, u8), u8s(15, 64)))));
        per_block.push_back(let(hi, codebook_values(k, book, binary(BinaryOp::shr, ref(raw, u8), u8s(4, 64)))));
        quads[static_cast<size_t>(v)] = ref(lo, u8);
        quads[static_cast<size_t>(4 + v)] = ref(hi, u8);
      }
      NodeRef scale = i32s(cast(Type{Scalar::i8, lanes}, load(k, mm.o.b, iadd(base_ref, c_i64(2048 + 16 * s)), lanes)));
      sub_block(quads, 32 * s, scale, [&](size_t r) { return broadcast(term(r, s), lanes); });
    }
  } else if (q4) {
    for (int j = 0; j < 4; ++j) {
      std::vector<NodeRef> low, high;
      for (int q = 0; q < 8; ++q) {
        std::string raw = mm.kb.fresh("bq");
        per_block.push_back(let(raw, u8_vector(mm, iadd(base_ref, c_i64((8 * j + q) * 64)))));
        NodeRef lo = binary(BinaryOp::land, ref(raw, {Scalar::u8, 64}), u8s(15, 64));
        NodeRef hi = binary(BinaryOp::shr, ref(raw, {Scalar::u8, 64}), u8s(4, 64));
        if (q5) {  // bit s of the qh vector: sub-blocks 2j (low nibbles) and 2j + 1 (high)
          std::string h = mm.kb.fresh("qh");
          per_block.push_back(let(h, u8_vector(mm, iadd(base_ref, c_i64(2048 + q * 64)))));
          lo = binary(BinaryOp::lor, lo, move_bit(ref(h, {Scalar::u8, 64}), 2 * j, 4, 64));
          hi = binary(BinaryOp::lor, hi, move_bit(ref(h, {Scalar::u8, 64}), 2 * j + 1, 4, 64));
        }
        low.push_back(lo);
        high.push_back(hi);
      }
      for (int half = 0; half < 2; ++half) {
        const int s = 2 * j + half;
        sub_block(half == 0 ? low : high, 32 * s, i32s(load(k, mm.o.b, iadd(base_ref, c_i64(scales_at + 16 * s)), lanes)),
                  zero);
        NodeRef mins = i32s(load(k, mm.o.b, iadd(base_ref, c_i64(mins_at + 16 * s)), lanes));
        for (size_t r = 0; r < a_blk.size(); ++r) {
          NodeRef bsum = term(r, s);
          per_block.push_back(assign(min_sum[r], add(ref(min_sum[r], ix), mul(mins, broadcast(bsum, lanes)))));
        }
      }
    }
  } else {
    // 32 elements g (0..7) = half n, quarter j: 16-element sub-blocks 2g (quads 0..3) and
    // 2g + 1 (quads 4..7). Q6_K: vectors 8g .. 8g + 7, a byte per value; Q2_K / Q3_K: bits
    // 2j, 2j + 1 of qs vectors 8n + q (Q3_K: bit 4n + j of hmask vector q is bit 2)
    const Type u8{Scalar::u8, 64};
    for (int g = 0; g < 8; ++g) {
      const int n = g / 4, j = g % 4;
      std::vector<NodeRef> quads;
      for (int q = 0; q < 8; ++q) {
        if (bd == ir::DType::q6_k) {
          quads.push_back(u8_vector(mm, iadd(base_ref, c_i64((8 * g + q) * 64))));
          continue;
        }
        NodeRef qs = u8_vector(mm, iadd(base_ref, c_i64((8 * n + q) * 64)));
        NodeRef v = binary(BinaryOp::land, j == 0 ? qs : binary(BinaryOp::shr, qs, u8s(2 * j, 64)), u8s(3, 64));
        if (bd == ir::DType::q3_k) {
          NodeRef hm = u8_vector(mm, iadd(base_ref, c_i64(1024 + q * 64)));
          v = binary(BinaryOp::lor, v, move_bit(hm, 4 * n + j, 2, 64));
        }
        std::string name = mm.kb.fresh("bq");
        per_block.push_back(let(name, v));
        quads.push_back(ref(name, u8));
      }
      for (int half = 0; half < 2; ++half) {
        const int s = 2 * g + half;  // 16-element sub-block: quads 4 half .. 4 half + 3
        std::vector<NodeRef> four(quads.begin() + 4 * half, quads.begin() + 4 * half + 4);
        NodeRef raw = load(k, mm.o.b, iadd(base_ref, c_i64(sub_scales_at(bd) + 16 * s)), lanes);
        if (bd == ir::DType::q2_k) {  // scale and min in one byte
          sub_block(four, 32 * g + 16 * half, i32s(binary(BinaryOp::land, raw, u8s(15, lanes))), zero);
          NodeRef m = i32s(binary(BinaryOp::shr, raw, u8s(4, lanes)));
          for (size_t r = 0; r < a_blk.size(); ++r)
            per_block.push_back(assign(min_sum[r], add(ref(min_sum[r], ix), mul(m, broadcast(term(r, s), lanes)))));
          continue;
        }
        sub_block(four, 32 * g + 16 * half, i32s(cast(Type{Scalar::i8, lanes}, raw)),
                  [&](size_t r) { return broadcast(term(r, s), lanes); });
      }
    }
  }
  NodeRef d = cast(fx, load(k, mm.o.b_scales, sbase_ref, lanes));
  for (size_t r = 0; r < a_blk.size(); ++r) {
    NodeRef d_a = broadcast(terms != nullptr ? load(k, terms->d, blk_ref)
                                             : load_as(k, mm.o.a, imul(ref(rows[r].block, kI64), c_i64(kABytes / 4)), kF32),
                            lanes);
    NodeRef value = fma(cast(fx, ref(dot_sum[r], ix)), mul(d, d_a), ref(acc[r], fx));
    if (mins) {
      NodeRef dmin = cast(fx, load(k, mm.o.b_scales, iadd(sbase_ref, c_i64(16)), lanes));
      value = fma(cast(fx, ref(min_sum[r], ix)), unary(UnaryOp::neg, mul(dmin, d_a)), value);
    }
    per_block.push_back(assign(acc[r], value));
  }
  out.push_back(for_loop(blk, c_i64(0), c_i64(sb), c_i64(1), std::move(per_block)));
  return out;
}

}  // namespace moat::jit::matmul
