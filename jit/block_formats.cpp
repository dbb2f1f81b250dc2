// The block formats (ggml layouts, ir/quant.h) and their decode rules in ggml's order of
// operations. Narrow-integer arithmetic stays in range (kir.h): nibbles and crumbs are
// combined as u8, offsets are taken in i8 or i32.
#include "jit/block_formats.h"

#include "jit/block_rules.h"
#include "support/error.h"

namespace moat::jit {

namespace {

using namespace block_rules;

// --- q8_0: d (f16), then 32 int8: x = d * q.

NodeRef q8_0_one(const BlockAccess& b, const NodeRef& e) {
  return mul(b.f16("d"), to_f32(b.bytes("qs", e, Scalar::i8)));
}

NodeRef q8_0_chunk(const BlockAccess& b, const NodeRef&) {
  return mul(splat32(b.bind(b.f16("d"))), to_f32(b.bytes("qs", i64c(0), Scalar::i8, 32)));
}

// The int8 made unsigned: u = q + 128.
NodeRef q8_0_integers(const BlockAccess& b) {
  NodeRef q = cast({Scalar::i32, 32}, b.bytes("qs", i64c(0), Scalar::i8, 32));
  return cast({Scalar::u8, 32}, add(q, broadcast(c_i32(128), 32)));
}

// ir/quant.cpp's quantize_row_q8_0: d = amax / 127 (stored as f16), q = x * (1 / d)
// rounded half away from zero. The rounding is exact: q = trunc(v) then a step by the
// remainder v - q, which is exact below 2^23 (|v| <= 127.5 here). A NaN gives a NaN d
// and zeros (the float -> int cast takes NaN to 0).
std::vector<NodeRef> q8_0_encode(const BlockAccess& b, const std::vector<NodeRef>& operands) {
  const Type f32x32 = kF32.with_lanes(32), i32x32{Scalar::i32, 32};
  NodeRef x = b.bind(operands.at(0));
  NodeRef d = b.bind(div(reduce(ReduceOp::max, unary(UnaryOp::abs, x)), c_f32(127.0)));
  NodeRef inverse = b.bind(select(binary(BinaryOp::ne, d, c_f32(0.0)), div(c_f32(1.0), d), c_f32(0.0)));
  NodeRef v = b.bind(mul(x, broadcast(inverse, 32)));
  NodeRef t = b.bind(cast(i32x32, v));
  NodeRef rest = sub(v, cast(f32x32, t));
  NodeRef one = broadcast(c_i32(1), 32), zero = broadcast(c_i32(0), 32);
  NodeRef up = select(binary(BinaryOp::le, broadcast(c_f32(0.5), 32), rest), one, zero);
  NodeRef down = select(binary(BinaryOp::le, rest, broadcast(c_f32(-0.5), 32)), one, zero);
  NodeRef q = sub(add(t, up), down);
  return {b.store_f16("d", cast({Scalar::f16, 1}, d)), b.store_bytes("qs", i64c(0), cast({Scalar::i8, 32}, q))};
}

// --- q4_0: d (f16), then 16 bytes; element i < 16 is the low nibble of byte i, element
// 16 + i its high nibble: x = (nibble - 8) * d.

NodeRef q4_0_one(const BlockAccess& b, const NodeRef& e) {
  NodeRef byte = b.bytes("qs", bit_and(e, i64c(15)));
  NodeRef nibble = select(lt(e, i64c(16)), bit_and(byte, c_u8(15)), shr(byte, c_u8(4)));
  return mul(b.f16("d"), to_f32(sub(cast(kI32, nibble), c_i32(8))));
}

// The nibbles in element order (u = q + 8).
NodeRef q4_0_integers(const BlockAccess& b) {
  NodeRef bytes = b.bind(b.bytes("qs", i64c(0), Scalar::u8, 16));
  return concat(bit_and(bytes, c_u8(15, 16)), shr(bytes, c_u8(4, 16)));  // low nibbles, then high
}

NodeRef q4_0_chunk(const BlockAccess& b, const NodeRef&) {
  NodeRef nibbles = q4_0_integers(b);
  NodeRef q = sub(cast({Scalar::i8, 32}, nibbles), c_i8(8, 32));
  return mul(splat32(b.bind(b.f16("d"))), to_f32(q));
}

// --- q4_k: a super-block of 8 sub-blocks of 32: d, dmin (f16), 12 bytes of 6-bit
// scales and mins, 128 bytes of nibbles. Sub-block j has scale sc and min m (packed as
// ggml's get_scale_min_k4) and x = (d * sc) * q - dmin * m; its nibbles are the low (j
// even) or high (j odd) halves of qs[32 * (j / 2) ..].

NodeRef q4_k_one(const BlockAccess& b, const NodeRef& e) {
  NodeRef j = b.bind(shr(e, i64c(5)));
  const ScaleMin s = q4_k_scale_min(b, j);
  NodeRef byte = b.bytes("qs", add(mul(shr(j, i64c(1)), i64c(32)), bit_and(e, i64c(31))));
  NodeRef odd = binary(BinaryOp::ne, bit_and(j, i64c(1)), i64c(0));
  NodeRef nibble = select(odd, shr(byte, c_u8(4)), bit_and(byte, c_u8(15)));
  return sub(mul(s.scale, to_f32(nibble)), s.min);
}

// The int8 path (q8_k A): u = the nibbles of sub-block c, s = d * sc, m = dmin * m.
NodeRef q4_k_sub_integers(const BlockAccess& b, int c) {
  NodeRef bytes = b.bind(b.bytes("qs", i64c(32 * (c / 2)), Scalar::u8, 32));
  return c % 2 == 0 ? bit_and(bytes, c_u8(15, 32)) : shr(bytes, c_u8(4, 32));
}

SubScales q4_k_sub_scales(const BlockAccess& b, int c) {
  const ScaleMin s = q4_k_scale_min(b, i64c(c));
  return {broadcast(s.scale, 8), broadcast(s.min, 8)};
}

NodeRef q4_k_chunk(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  const ScaleMin s = q4_k_scale_min(b, j);
  NodeRef bytes = b.bytes("qs", mul(shr(j, i64c(1)), i64c(32)), Scalar::u8, 32);
  NodeRef shift = splat32(b.bind(cast({Scalar::u8, 1}, mul(bit_and(j, i64c(1)), i64c(4)))));
  NodeRef nibbles = bit_and(shr(bytes, shift), c_u8(15, 32));
  return sub(mul(splat32(s.scale), to_f32(nibbles)), splat32(s.min));
}

// --- q6_k: 128 bytes of low nibbles (ql), 64 of high 2-bit crumbs (qh), 16 int8
// scales, d (f16). Element e lies in half h = e / 128, quarter c = (e / 32) % 4, at l =
// e % 32: low bits ql[64h + 32(c & 1) + l] >> 4(c >> 1), high bits qh[32h + l] >> 2c,
// scale scales[8h + 2c + l / 16]: x = (d * scale) * (q - 32).

NodeRef q6_k_one(const BlockAccess& b, const NodeRef& e) {
  NodeRef h = shr(e, i64c(7)), c = bit_and(shr(e, i64c(5)), i64c(3)), l = bit_and(e, i64c(31));
  NodeRef ql_at = add(add(mul(h, i64c(64)), mul(bit_and(c, i64c(1)), i64c(32))), l);
  NodeRef ql_shift = cast({Scalar::u8, 1}, mul(shr(c, i64c(1)), i64c(4)));
  NodeRef qh_shift = cast({Scalar::u8, 1}, mul(c, i64c(2)));
  NodeRef low = bit_and(shr(b.bytes("ql", ql_at), ql_shift), c_u8(15));
  NodeRef high = bit_and(shr(b.bytes("qh", add(mul(h, i64c(32)), l)), qh_shift), c_u8(3));
  NodeRef q = sub(cast(kI32, bit_or(low, shl(high, c_u8(4)))), c_i32(32));
  NodeRef sc_at = add(add(mul(h, i64c(8)), mul(c, i64c(2))), shr(l, i64c(4)));
  NodeRef scale = mul(b.f16("d"), to_f32(b.bytes("scales", sc_at, Scalar::i8)));
  return mul(scale, to_f32(q));
}

NodeRef q6_k_chunk(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  NodeRef h = b.bind(shr(j, i64c(2))), c = b.bind(bit_and(j, i64c(3)));
  NodeRef ql_shift = splat32(b.bind(cast({Scalar::u8, 1}, mul(shr(c, i64c(1)), i64c(4)))));
  NodeRef qh_shift = splat32(b.bind(cast({Scalar::u8, 1}, mul(c, i64c(2)))));
  NodeRef ql = b.bytes("ql", add(mul(h, i64c(64)), mul(bit_and(c, i64c(1)), i64c(32))), Scalar::u8, 32);
  NodeRef qh = b.bytes("qh", mul(h, i64c(32)), Scalar::u8, 32);
  NodeRef low = bit_and(shr(ql, ql_shift), c_u8(15, 32));
  NodeRef high = bit_and(shr(qh, qh_shift), c_u8(3, 32));
  NodeRef q = sub(cast({Scalar::i8, 32}, bit_or(low, shl(high, c_u8(4, 32)))), c_i8(32, 32));
  NodeRef sc_at = b.bind(add(mul(h, i64c(8)), mul(c, i64c(2))));
  NodeRef d = b.bind(b.f16("d"));
  NodeRef s0 = b.bind(mul(d, to_f32(b.bytes("scales", sc_at, Scalar::i8))));                   // lanes 0..15
  NodeRef s1 = b.bind(mul(d, to_f32(b.bytes("scales", add(sc_at, i64c(1)), Scalar::i8))));    // lanes 16..31
  return mul(concat(broadcast(s0, 16), broadcast(s1, 16)), to_f32(q));
}

// The int8 path (q8_k A): u = q6 (0..63), per 16 elements s = d * scale, m = 32 * s.
NodeRef q6_k_sub_integers(const BlockAccess& b, int c) {
  const int h = c / 4, quarter = c % 4;
  NodeRef ql = b.bytes("ql", i64c(64 * h + 32 * (quarter & 1)), Scalar::u8, 32);
  NodeRef qh = b.bytes("qh", i64c(32 * h), Scalar::u8, 32);
  NodeRef low = quarter >= 2 ? shr(ql, c_u8(4, 32)) : bit_and(ql, c_u8(15, 32));
  NodeRef high = bit_and(shr(qh, c_u8(2 * quarter, 32)), c_u8(3, 32));
  return bit_or(low, shl(high, c_u8(4, 32)));
}

SubScales q6_k_sub_scales(const BlockAccess& b, int c) {
  const int h = c / 4, quarter = c % 4, at = 8 * h + 2 * quarter;
  NodeRef d = b.bind(b.f16("d"));
  NodeRef s0 = b.bind(mul(d, to_f32(b.bytes("scales", i64c(at), Scalar::i8))));      // lanes 0..3: elements 0..15
  NodeRef s1 = b.bind(mul(d, to_f32(b.bytes("scales", i64c(at + 1), Scalar::i8))));  // lanes 4..7
  NodeRef scale = concat(broadcast(s0, 4), broadcast(s1, 4));
  return {scale, mul(scale, broadcast(c_f32(32.0), 8))};
}

std::vector<BlockFormat> make_formats() {
  using S = Scalar;
  std::vector<BlockFormat> formats = {
      {ir::DType::q8_0, {{"d", 0, 2, S::f16, 16}, {"qs", 2, 32, S::i8, 8}}, q8_0_one, q8_0_chunk, q8_0_integers, 128, q8_0_encode},
      {ir::DType::q4_0, {{"d", 0, 2, S::f16, 16}, {"qs", 2, 16, S::u8, 4}}, q4_0_one, q4_0_chunk, q4_0_integers, 8},
      {ir::DType::q4_k,
       {{"d", 0, 2, S::f16, 16}, {"dmin", 2, 2, S::f16, 16}, {"scales", 4, 12, S::u8, 6}, {"qs", 16, 128, S::u8, 4}},
       q4_k_one,
       q4_k_chunk,
       nullptr,
       0,
       nullptr,
       q4_k_sub_integers,
       q4_k_sub_scales},
      {ir::DType::q6_k,
       {{"ql", 0, 128, S::u8, 4}, {"qh", 128, 64, S::u8, 2}, {"scales", 192, 16, S::i8, 8}, {"d", 208, 2, S::f16, 16}},
       q6_k_one,
       q6_k_chunk,
       nullptr,
       0,
       nullptr,
       q6_k_sub_integers,
       q6_k_sub_scales},
  };
  for (auto* family : {legacy_block_formats, k_block_formats, q8_k_block_formats, iq4_block_formats, iq_grid_block_formats})
    for (BlockFormat& f : family()) formats.push_back(std::move(f));
  return formats;
}

}  // namespace

namespace block_rules {

ScaleMin q4_k_scale_min(const BlockAccess& b, const NodeRef& j) {
  NodeRef j3 = bit_and(j, i64c(3));
  NodeRef lo = b.bytes("scales", j3);                    // scales[j & 3]
  NodeRef hi = b.bytes("scales", add(j3, i64c(4)));      // scales[(j & 3) + 4]
  NodeRef top = b.bytes("scales", add(j3, i64c(8)));     // scales[(j & 3) + 8]
  NodeRef first_four = lt(j, i64c(4));
  NodeRef sc = select(first_four, bit_and(lo, c_u8(63)), bit_or(bit_and(top, c_u8(15)), shl(shr(lo, c_u8(6)), c_u8(4))));
  NodeRef m = select(first_four, bit_and(hi, c_u8(63)), bit_or(shr(top, c_u8(4)), shl(shr(hi, c_u8(6)), c_u8(4))));
  return {b.bind(mul(b.f16("d"), to_f32(sc))), b.bind(mul(b.f16("dmin"), to_f32(m)))};
}

}  // namespace block_rules

const BlockField& BlockFormat::field(std::string_view name) const {
  for (const BlockField& f : fields)
    if (f.name == name) return f;
  MOAT_INTERNAL_ERROR("block format ", ir::dtype_name(dtype), " has no field ", name);
}

const std::vector<BlockFormat>& block_formats() {
  static const std::vector<BlockFormat> formats = make_formats();
  return formats;
}

const BlockFormat* find_block_format(ir::DType dtype) {
  for (const BlockFormat& f : block_formats())
    if (f.dtype == dtype) return &f;
  return nullptr;
}

bool has_integer_form(ir::DType dtype) {
  const BlockFormat* f = find_block_format(dtype);
  return f != nullptr && f->integers != nullptr;
}

BlockAccess::BlockAccess(Kernel& kernel, int buffer, const BlockFormat& format, NodeRef block, Binder bind)
    : kernel_(kernel), buffer_(buffer), format_(format), block_(std::move(block)), bind_(std::move(bind)) {}

NodeRef BlockAccess::byte_index(const BlockField& f, const NodeRef& at) const {
  NodeRef start = mul(block_, c_i64(ir::dtype_block_bytes(format_.dtype)));
  return add(add(start, c_i64(f.offset)), at);
}

NodeRef BlockAccess::scalar_index(std::string_view name, Scalar scalar, int64_t bytes) const {
  const BlockField& f = format_.field(name);
  const int64_t block_bytes = ir::dtype_block_bytes(format_.dtype);
  MOAT_INTERNAL_CHECK(f.scalar == scalar && f.offset % bytes == 0 && block_bytes % bytes == 0, "block format ",
                      ir::dtype_name(format_.dtype), ": field ", name, " is not an aligned ", scalar_name(scalar));
  return add(mul(block_, c_i64(block_bytes / bytes)), c_i64(f.offset / bytes));
}

NodeRef BlockAccess::f16_index(std::string_view name) const { return scalar_index(name, Scalar::f16, 2); }

NodeRef BlockAccess::f32_index(std::string_view name) const { return scalar_index(name, Scalar::f32, 4); }

NodeRef BlockAccess::f32(std::string_view name) const { return load_as(kernel_, buffer_, f32_index(name), kF32); }

NodeRef BlockAccess::store_f32(std::string_view name, const NodeRef& value) const {
  return store(kernel_, buffer_, f32_index(name), value);
}

NodeRef BlockAccess::f16(std::string_view name) const {
  return cast(kF32, load_as(kernel_, buffer_, f16_index(name), {Scalar::f16, 1}));
}

NodeRef BlockAccess::store_f16(std::string_view name, const NodeRef& value) const {
  return store(kernel_, buffer_, f16_index(name), value);
}

NodeRef BlockAccess::store_bytes(std::string_view name, const NodeRef& at, const NodeRef& value) const {
  return store(kernel_, buffer_, byte_index(format_.field(name), at), value);
}

NodeRef BlockAccess::bytes(std::string_view name, const NodeRef& at, Scalar s, int lanes) const {
  const BlockField& f = format_.field(name);
  MOAT_INTERNAL_CHECK(s == Scalar::u8 || s == Scalar::i8, "block bytes are read as u8 or i8");
  return load_as(kernel_, buffer_, byte_index(f, at), {s, lanes});
}

int BlockAccess::table(std::string_view name, Scalar s, std::span<const int64_t> values) const {
  return kernel_.add_table({std::string(name), s, std::vector<int64_t>(values.begin(), values.end())});
}

NodeRef BlockAccess::lookup(int table, const NodeRef& index, int lanes) const {
  return table_load(kernel_, table, index, lanes);
}

NodeRef c_u8(int64_t v, int lanes) { return broadcast(constant({Scalar::u8, 1}, static_cast<double>(v)), lanes); }
NodeRef c_i8(int64_t v, int lanes) { return broadcast(constant({Scalar::i8, 1}, static_cast<double>(v)), lanes); }

}  // namespace moat::jit
