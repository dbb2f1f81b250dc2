// Block formats of iq4_nl, iq4_xs and mxfp4: fields and decode rules (jit/block_formats.h).
// Each 4-bit index selects a codebook value (ir/quant_iq4.h), read from a constant table
// of the kernel (kir.h's table_load): one element by a scalar index, 32 by a gather.
#include "ir/quant_iq4.h"
#include "jit/block_rules.h"

namespace moat::jit {

namespace {

using namespace block_rules;

// A codebook as a table of the kernel being legalised.
template <size_t N>
int codebook(const BlockAccess& b, std::string_view name, const std::array<int8_t, N>& values) {
  static_assert(N == 16);
  const std::vector<int64_t> wide(values.begin(), values.end());
  return b.table(name, Scalar::i8, wide);
}
int iq4nl_table(const BlockAccess& b) { return codebook(b, "iq4nl_values", ir::kIq4nlValues); }
int mxfp4_table(const BlockAccess& b) { return codebook(b, "mxfp4_values", ir::kMxfp4Values); }

// The int8 path: the codebooks made unsigned (jit/block_formats.h's unsigned_codebook).
template <size_t N>
TableDecl unsigned_table(std::string name, const std::array<int8_t, N>& values) {
  TableDecl t{std::move(name), Scalar::u8, {}};
  for (int8_t v : values) t.values.push_back(v + kCodebookOffset);
  return t;
}
int lookup_table(const BlockAccess& b, ir::DType dtype) {
  const TableDecl& t = *unsigned_codebook(dtype);
  return b.table(t.name, t.scalar, t.values);
}
int iq4nl_unsigned_table(const BlockAccess& b) { return lookup_table(b, ir::DType::iq4_nl); }
int mxfp4_unsigned_table(const BlockAccess& b) { return lookup_table(b, ir::DType::mxfp4); }

// Element l (0..31, i64) of 16 bytes of nibbles in q4_0's order: byte l % 16, low
// nibble for l < 16, else high (u8).
NodeRef nibble(const BlockAccess& b, std::string_view field, const NodeRef& first_byte, const NodeRef& l) {
  NodeRef byte = b.bytes(field, add(first_byte, bit_and(l, i64c(15))));
  return select(lt(l, i64c(16)), bit_and(byte, c_u8(15)), shr(byte, c_u8(4)));
}

// The 32 nibbles of 16 bytes from byte `first_byte` of `field`, in element order, as
// i64 table indices.
NodeRef nibbles32(const BlockAccess& b, std::string_view field, const NodeRef& first_byte) {
  NodeRef bytes = b.bind(b.bytes(field, first_byte, Scalar::u8, 16));
  return cast({Scalar::i64, 32}, concat(bit_and(bytes, c_u8(15, 16)), shr(bytes, c_u8(4, 16))));
}

// The codebook value of an index (u8 or i64 x 32), as f32.
NodeRef value_of(const BlockAccess& b, int table, const NodeRef& index) {
  return to_f32(b.lookup(table, cast({Scalar::i64, index->type.lanes}, index)));
}

// --- iq4_nl: d (f16), 16 bytes of nibbles: x = d * kvalues_iq4nl[nibble].

NodeRef iq4_nl_one(const BlockAccess& b, const NodeRef& e) {
  return mul(b.f16("d"), value_of(b, iq4nl_table(b), nibble(b, "qs", i64c(0), e)));
}

NodeRef iq4_nl_chunk(const BlockAccess& b, const NodeRef&) {
  return mul(splat32(b.bind(b.f16("d"))), value_of(b, iq4nl_table(b), nibbles32(b, "qs", i64c(0))));
}

// The int8 path (q8_0 A): u = kvalues_iq4nl[nibble] + 128, x = d * (u - 128).
NodeRef iq4_nl_integers(const BlockAccess& b) { return b.lookup(iq4nl_unsigned_table(b), nibbles32(b, "qs", i64c(0))); }

// --- iq4_xs: d (f16), scales_h (u16: 2 bits per sub-block), scales_l (4 bits per
// sub-block), 128 bytes of nibbles, 16 per sub-block j of 32: x = (d * (ls_j - 32)) *
// kvalues_iq4nl[nibble].

// d * (ls_j - 32) for sub-block j (i64), f32.
NodeRef iq4_xs_scale(const BlockAccess& b, const NodeRef& j) {
  NodeRef low_shift = cast({Scalar::u8, 1}, mul(bit_and(j, i64c(1)), i64c(4)));
  NodeRef high_shift = cast({Scalar::u8, 1}, mul(bit_and(j, i64c(3)), i64c(2)));
  NodeRef low = bit_and(shr(b.bytes("scales_l", shr(j, i64c(1))), low_shift), c_u8(15));
  NodeRef high = bit_and(shr(b.bytes("scales_h", shr(j, i64c(2))), high_shift), c_u8(3));  // little-endian u16
  NodeRef ls = cast(kI32, bit_or(low, shl(high, c_u8(4))));
  return b.bind(mul(b.f16("d"), to_f32(sub(ls, c_i32(32)))));
}

NodeRef iq4_xs_one(const BlockAccess& b, const NodeRef& e) {
  NodeRef j = b.bind(shr(e, i64c(5)));
  NodeRef q = nibble(b, "qs", mul(j, i64c(16)), bit_and(e, i64c(31)));
  return mul(iq4_xs_scale(b, j), value_of(b, iq4nl_table(b), q));
}

NodeRef iq4_xs_chunk(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  return mul(splat32(iq4_xs_scale(b, j)), value_of(b, iq4nl_table(b), nibbles32(b, "qs", mul(j, i64c(16)))));
}

// The int8 path (q8_k A): sub-block c's u = kvalues_iq4nl[nibble] + 128, s = d * (ls_c - 32),
// m = 128 s.
NodeRef iq4_xs_sub_integers(const BlockAccess& b, int c) {
  return b.lookup(iq4nl_unsigned_table(b), nibbles32(b, "qs", i64c(16 * c)));
}

SubScales iq4_xs_sub_scales(const BlockAccess& b, int c) {
  NodeRef scale = broadcast(iq4_xs_scale(b, i64c(c)), 8);
  return {scale, mul(scale, broadcast(c_f32(static_cast<double>(kCodebookOffset)), 8))};
}

// --- mxfp4: e (E8M0), 16 bytes of nibbles: x = kvalues_mxfp4[nibble] * d with d =
// 2^(e - 127) / 2 built from its bits as ggml's GGML_E8M0_TO_FP32_HALF (e < 2:
// 0x00200000 << e, a subnormal; else (e - 1) << 23). Both arms stay defined for every
// e (the C-like targets evaluate both): shift amounts below 32, no negative operand.

NodeRef mxfp4_scale(const BlockAccess& b) { return b.bind(e8m0_to_f32_half(b.bind(cast(kI32, b.bytes("e", i64c(0)))))); }

NodeRef mxfp4_one(const BlockAccess& b, const NodeRef& e) {
  return mul(value_of(b, mxfp4_table(b), nibble(b, "qs", i64c(0), e)), mxfp4_scale(b));
}

NodeRef mxfp4_chunk(const BlockAccess& b, const NodeRef&) {
  return mul(value_of(b, mxfp4_table(b), nibbles32(b, "qs", i64c(0))), splat32(mxfp4_scale(b)));
}

// The int8 path (q8_0 A, as llama.cpp's vec_dot_mxfp4_q8_0): u = kvalues_mxfp4[nibble] + 128,
// x = mxfp4_scale * (u - 128).
NodeRef mxfp4_integers(const BlockAccess& b) { return b.lookup(mxfp4_unsigned_table(b), nibbles32(b, "qs", i64c(0))); }

}  // namespace

NodeRef e8m0_to_f32_half(const NodeRef& e) {
  const int lanes = e->type.lanes;
  auto i32s = [&](int64_t v) { return broadcast(c_i32(v), lanes); };
  NodeRef subnormal = shl(i32s(0x00200000), bit_and(e, i32s(1)));
  NodeRef normal = shl(max_(sub(e, i32s(1)), i32s(0)), i32s(23));
  return bitcast(kF32.with_lanes(lanes), select(lt(e, i32s(2)), subnormal, normal));
}

const TableDecl* unsigned_codebook(ir::DType dtype) {
  static const TableDecl iq4nl = unsigned_table("iq4nl_unsigned", ir::kIq4nlValues);
  static const TableDecl mxfp4 = unsigned_table("mxfp4_unsigned", ir::kMxfp4Values);
  if (dtype == ir::DType::iq4_nl || dtype == ir::DType::iq4_xs) return &iq4nl;
  if (dtype == ir::DType::mxfp4) return &mxfp4;
  return nullptr;
}

std::vector<BlockFormat> iq4_block_formats() {
  using S = Scalar;
  return {
      {.dtype = ir::DType::iq4_nl,
       .fields = {{"d", 0, 2, S::f16, 16}, {"qs", 2, 16, S::u8, 4}},
       .one = iq4_nl_one,
       .chunk = iq4_nl_chunk,
       .integers = iq4_nl_integers,
       .integer_offset = kCodebookOffset},
      {.dtype = ir::DType::iq4_xs,
       .fields = {{"d", 0, 2, S::f16, 16}, {"scales_h", 2, 2, S::u8, 2}, {"scales_l", 4, 4, S::u8, 4}, {"qs", 8, 128, S::u8, 4}},
       .one = iq4_xs_one,
       .chunk = iq4_xs_chunk,
       .sub_integers = iq4_xs_sub_integers,
       .sub_scales = iq4_xs_sub_scales},
      {.dtype = ir::DType::mxfp4,
       .fields = {{"e", 0, 1, S::u8, 8}, {"qs", 1, 16, S::u8, 4}},
       .one = mxfp4_one,
       .chunk = mxfp4_chunk,
       .integers = mxfp4_integers,
       .integer_offset = kCodebookOffset,
       .integer_scale = mxfp4_scale},
  };
}

}  // namespace moat::jit
