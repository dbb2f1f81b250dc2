// Block formats of q2_k, q3_k, q5_k: fields and decode rules (jit/block_formats.h), in
// ggml's order of operations (ir/quant_legacy_k_blocks.h). q8_k (activations only)
// belongs to another family and is not here.
//
// q2_k and q3_k share a layout of 2-bit values: element e (half n = e / 128, quarter
// j = (e / 32) % 4, l = e % 32) is bits 2j..2j+1 of qs[32n + l], and sub-block s = e / 16
// has its own scale. A chunk of 32 is quarter j of half n: one 32-byte load of qs.
#include "jit/block_rules.h"

namespace moat::jit {

namespace {

using namespace block_rules;

// The crumb of element e (i64) as u8.
NodeRef crumb(const BlockAccess& b, const NodeRef& e) {
  NodeRef byte = b.bytes("qs", add(mul(shr(e, i64c(7)), i64c(32)), bit_and(e, i64c(31))));
  return bit_and(shr(byte, cast({Scalar::u8, 1}, mul(bit_and(shr(e, i64c(5)), i64c(3)), i64c(2)))), c_u8(3));
}

// The 32 crumbs of chunk j = first / 32 (i64, bound) as u8 x 32.
NodeRef crumbs(const BlockAccess& b, const NodeRef& j) {
  NodeRef bytes = b.bytes("qs", mul(shr(j, i64c(2)), i64c(32)), Scalar::u8, 32);
  NodeRef shift = splat32(b.bind(cast({Scalar::u8, 1}, mul(bit_and(j, i64c(3)), i64c(2)))));
  return bit_and(shr(bytes, shift), c_u8(3, 32));
}

// f32 x 32 whose lanes 0..15 are per_sub_block(2j) and lanes 16..31 per_sub_block(2j + 1).
template <class F>
NodeRef two_sub_blocks(const BlockAccess& b, const NodeRef& j, F per_sub_block) {
  NodeRef s = b.bind(mul(j, i64c(2)));
  return concat(broadcast(b.bind(per_sub_block(s)), 16), broadcast(b.bind(per_sub_block(add(s, i64c(1)))), 16));
}

// --- q2_k: scales (low nibble: scale, high nibble: min, per 16), qs, d, dmin (f16):
// x = (d * scale) * q - (dmin * min).

NodeRef q2_k_scale(const BlockAccess& b, const NodeRef& s) {
  return mul(b.f16("d"), to_f32(bit_and(b.bytes("scales", s), c_u8(15))));
}
NodeRef q2_k_min(const BlockAccess& b, const NodeRef& s) { return mul(b.f16("dmin"), to_f32(shr(b.bytes("scales", s), c_u8(4)))); }

NodeRef q2_k_one(const BlockAccess& b, const NodeRef& e) {
  NodeRef s = b.bind(shr(e, i64c(4)));
  return sub(mul(q2_k_scale(b, s), to_f32(crumb(b, e))), q2_k_min(b, s));
}

// The int8 path (q8_k A, unpacked; the CPU packs these weights for int8_tiles_k.cpp): u =
// the crumbs of sub-block c, per 16 elements s = d * scale, m = dmin * min.
NodeRef q2_k_sub_integers(const BlockAccess& b, int c) { return crumbs(b, i64c(c)); }

// Per 4 lanes (elements 4g ..): f32 x 8 of per_sub_block(2c) for lanes 0..3 and
// per_sub_block(2c + 1) for 4..7.
template <class F>
NodeRef two_sixteens(const BlockAccess& b, int c, F per_sub_block) {
  return concat(broadcast(b.bind(per_sub_block(i64c(2 * c))), 4), broadcast(b.bind(per_sub_block(i64c(2 * c + 1))), 4));
}

SubScales q2_k_sub_scales(const BlockAccess& b, int c) {
  return {two_sixteens(b, c, [&](const NodeRef& s) { return q2_k_scale(b, s); }),
          two_sixteens(b, c, [&](const NodeRef& s) { return q2_k_min(b, s); })};
}

NodeRef q2_k_chunk(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  NodeRef scale = two_sub_blocks(b, j, [&](const NodeRef& s) { return q2_k_scale(b, s); });
  NodeRef min = two_sub_blocks(b, j, [&](const NodeRef& s) { return q2_k_min(b, s); });
  return sub(mul(scale, to_f32(crumbs(b, j))), min);
}

// --- q3_k: hmask, qs, scales (16 6-bit scales stored + 32), d (f16). Element e's
// crumb loses 4 unless bit e / 32 of hmask[e % 32] is set: q = (crumb | bit << 2) - 4,
// x = (d * (scale - 32)) * q.

// Scale s (i64): low 4 bits from the low (s < 8) or high nibble of scales[s % 8], high
// 2 bits from bits 2(s / 4).. of scales[8 + s % 4].
NodeRef q3_k_scale(const BlockAccess& b, const NodeRef& s) {
  NodeRef byte = b.bytes("scales", bit_and(s, i64c(7)));
  NodeRef low = select(lt(s, i64c(8)), bit_and(byte, c_u8(15)), shr(byte, c_u8(4)));
  NodeRef top = b.bytes("scales", add(bit_and(s, i64c(3)), i64c(8)));
  NodeRef high = bit_and(shr(top, cast({Scalar::u8, 1}, mul(shr(s, i64c(2)), i64c(2)))), c_u8(3));
  NodeRef scale = sub(cast(kI32, bit_or(low, shl(high, c_u8(4)))), c_i32(32));
  return mul(b.f16("d"), to_f32(scale));
}

NodeRef q3_k_one(const BlockAccess& b, const NodeRef& e) {
  NodeRef bit = bit_and(shr(b.bytes("hmask", bit_and(e, i64c(31))), cast({Scalar::u8, 1}, shr(e, i64c(5)))), c_u8(1));
  NodeRef q = sub(cast(kI32, bit_or(crumb(b, e), shl(bit, c_u8(2)))), c_i32(4));
  return mul(q3_k_scale(b, shr(e, i64c(4))), to_f32(q));
}

// The 3-bit values (0..7, u8 x 32) of chunk j (i64): the crumb | the hmask bit << 2.
NodeRef q3_k_unsigned(const BlockAccess& b, const NodeRef& j) {
  NodeRef hmask = b.bytes("hmask", i64c(0), Scalar::u8, 32);
  NodeRef bits = bit_and(shr(hmask, splat32(b.bind(cast({Scalar::u8, 1}, j)))), c_u8(1, 32));
  return bit_or(crumbs(b, j), shl(bits, c_u8(2, 32)));
}

// The int8 path (unpacked): u = the 3-bit value, per 16 elements s = d * (scale - 32), m = 4 s.
NodeRef q3_k_sub_integers(const BlockAccess& b, int c) { return q3_k_unsigned(b, i64c(c)); }

SubScales q3_k_sub_scales(const BlockAccess& b, int c) {
  NodeRef scale = two_sixteens(b, c, [&](const NodeRef& s) { return q3_k_scale(b, s); });
  return {scale, mul(scale, broadcast(c_f32(4.0), 8))};
}

NodeRef q3_k_chunk(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  NodeRef q = sub(cast({Scalar::i8, 32}, q3_k_unsigned(b, j)), c_i8(4, 32));
  NodeRef scale = two_sub_blocks(b, j, [&](const NodeRef& s) { return q3_k_scale(b, s); });
  return mul(scale, to_f32(q));
}

// --- q5_k: q4_k (d, dmin, scales, qs) with a fifth bit: bit j of qh[l] for element
// 32j + l. x = (d * sc) * q5 - dmin * m.

NodeRef q5_k_one(const BlockAccess& b, const NodeRef& e) {
  NodeRef j = b.bind(shr(e, i64c(5))), l = b.bind(bit_and(e, i64c(31)));
  const ScaleMin s = q4_k_scale_min(b, j);
  NodeRef byte = b.bytes("qs", add(mul(shr(j, i64c(1)), i64c(32)), l));
  NodeRef low = bit_and(shr(byte, cast({Scalar::u8, 1}, mul(bit_and(j, i64c(1)), i64c(4)))), c_u8(15));
  NodeRef high = bit_and(shr(b.bytes("qh", l), cast({Scalar::u8, 1}, j)), c_u8(1));
  return sub(mul(s.scale, to_f32(bit_or(low, shl(high, c_u8(4))))), s.min);
}

// The 5-bit values (u8 x 32) of chunk j (i64).
NodeRef q5_k_values(const BlockAccess& b, const NodeRef& j) {
  NodeRef bytes = b.bytes("qs", mul(shr(j, i64c(1)), i64c(32)), Scalar::u8, 32);
  NodeRef low = bit_and(shr(bytes, splat32(b.bind(cast({Scalar::u8, 1}, mul(bit_and(j, i64c(1)), i64c(4)))))), c_u8(15, 32));
  NodeRef qh = b.bytes("qh", i64c(0), Scalar::u8, 32);
  NodeRef high = bit_and(shr(qh, splat32(b.bind(cast({Scalar::u8, 1}, j)))), c_u8(1, 32));
  return bit_or(low, shl(high, c_u8(4, 32)));
}

NodeRef q5_k_chunk(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  const ScaleMin s = q4_k_scale_min(b, j);
  return sub(mul(splat32(s.scale), to_f32(q5_k_values(b, j))), splat32(s.min));
}

// The int8 path (unpacked): u = the 5-bit values of sub-block c, s = d * sc, m = dmin * m.
NodeRef q5_k_sub_integers(const BlockAccess& b, int c) { return q5_k_values(b, i64c(c)); }

SubScales q5_k_sub_scales(const BlockAccess& b, int c) {
  const ScaleMin s = q4_k_scale_min(b, i64c(c));
  return {broadcast(s.scale, 8), broadcast(s.min, 8)};
}

}  // namespace

std::vector<BlockFormat> k_block_formats() {
  using S = Scalar;
  return {
      {.dtype = ir::DType::q2_k,
       .fields = {{"scales", 0, 16, S::u8, 4}, {"qs", 16, 64, S::u8, 2}, {"d", 80, 2, S::f16, 16}, {"dmin", 82, 2, S::f16, 16}},
       .one = q2_k_one,
       .chunk = q2_k_chunk,
       .sub_integers = q2_k_sub_integers,
       .sub_scales = q2_k_sub_scales},
      {.dtype = ir::DType::q3_k,
       .fields = {{"hmask", 0, 32, S::u8, 1}, {"qs", 32, 64, S::u8, 2}, {"scales", 96, 12, S::u8, 6}, {"d", 108, 2, S::f16, 16}},
       .one = q3_k_one,
       .chunk = q3_k_chunk,
       .sub_integers = q3_k_sub_integers,
       .sub_scales = q3_k_sub_scales},
      {.dtype = ir::DType::q5_k,
       .fields = {{"d", 0, 2, S::f16, 16},
                  {"dmin", 2, 2, S::f16, 16},
                  {"scales", 4, 12, S::u8, 6},
                  {"qh", 16, 32, S::u8, 1},
                  {"qs", 48, 128, S::u8, 4}},
       .one = q5_k_one,
       .chunk = q5_k_chunk,
       .sub_integers = q5_k_sub_integers,
       .sub_scales = q5_k_sub_scales},
  };
}

}  // namespace moat::jit
