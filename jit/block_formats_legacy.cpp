// Block formats of q4_1, q5_0, q5_1: fields and decode rules (jit/block_formats.h), in
// ggml's order of operations (ir/quant_legacy_k_blocks.h). Element i < 16 is the low
// nibble of qs[i], element 16 + i its high nibble; q5's fifth bit of element i is bit
// i of the little-endian u32 qh.
#include "jit/block_rules.h"

namespace moat::jit {

namespace {

using namespace block_rules;

// The nibble of element e (i64) as u8.
NodeRef nibble(const BlockAccess& b, const NodeRef& e) {
  NodeRef byte = b.bytes("qs", bit_and(e, i64c(15)));
  return select(lt(e, i64c(16)), bit_and(byte, c_u8(15)), shr(byte, c_u8(4)));
}

// The 32 nibbles in element order (u8 x 32): low nibbles, then high.
NodeRef nibbles(const BlockAccess& b) {
  NodeRef bytes = b.bind(b.bytes("qs", i64c(0), Scalar::u8, 16));
  return concat(bit_and(bytes, c_u8(15, 16)), shr(bytes, c_u8(4, 16)));
}

// The 5-bit value of element e (i64) as u8: its nibble | bit e of qh << 4.
NodeRef q5_one(const BlockAccess& b, const NodeRef& e) {
  NodeRef bit = bit_and(shr(b.bytes("qh", shr(e, i64c(3))), cast({Scalar::u8, 1}, bit_and(e, i64c(7)))), c_u8(1));
  return bit_or(nibble(b, e), shl(bit, c_u8(4)));
}

// The 32 5-bit values (u8 x 32): lane e takes byte e / 8 of qh shifted right by e % 8.
NodeRef q5_integers(const BlockAccess& b) {
  NodeRef lane = concat(concat(c_u8(0), c_u8(1)), concat(c_u8(2), c_u8(3)));
  lane = concat(lane, concat(concat(c_u8(4), c_u8(5)), concat(c_u8(6), c_u8(7))));  // 0..7
  NodeRef shifts = concat(concat(lane, lane), concat(lane, lane));
  auto qh8 = [&](int i) { return broadcast(b.bytes("qh", i64c(i)), 8); };
  NodeRef bytes = concat(concat(qh8(0), qh8(1)), concat(qh8(2), qh8(3)));
  NodeRef high = shl(bit_and(shr(bytes, shifts), c_u8(1, 32)), c_u8(4, 32));
  return bit_or(nibbles(b), high);
}

// x = q * d + m, the product rounded before the sum (as ggml: no fma).
NodeRef scaled_plus_min(const BlockAccess& b, const NodeRef& q, int lanes) {
  NodeRef d = b.f16("d"), m = b.f16("m");
  if (lanes > 1) {
    d = broadcast(b.bind(d), lanes);
    m = broadcast(b.bind(m), lanes);
  }
  return add(mul(to_f32(q), d), m);
}

// --- q4_1: d, m (f16), 16 bytes of nibbles: x = nibble * d + m.

NodeRef q4_1_one(const BlockAccess& b, const NodeRef& e) { return scaled_plus_min(b, nibble(b, e), 1); }
NodeRef q4_1_chunk(const BlockAccess& b, const NodeRef&) { return scaled_plus_min(b, nibbles(b), 32); }

// --- q5_0: d (f16), qh (4 bytes), qs (16 bytes): x = (q5 - 16) * d.

NodeRef q5_0_one(const BlockAccess& b, const NodeRef& e) {
  return mul(to_f32(sub(cast(kI32, q5_one(b, e)), c_i32(16))), b.f16("d"));
}

NodeRef q5_0_chunk(const BlockAccess& b, const NodeRef&) {
  NodeRef q = sub(cast({Scalar::i8, 32}, q5_integers(b)), c_i8(16, 32));
  return mul(to_f32(q), splat32(b.bind(b.f16("d"))));
}

// --- q5_1: d, m (f16), qh, qs: x = q5 * d + m.

NodeRef q5_1_one(const BlockAccess& b, const NodeRef& e) { return scaled_plus_min(b, q5_one(b, e), 1); }
NodeRef q5_1_chunk(const BlockAccess& b, const NodeRef&) { return scaled_plus_min(b, q5_integers(b), 32); }

// The int8 path of q4_1 / q5_1 (a q8_0 A, llama.cpp's q8_1): u = q, x = d * u + m.
NodeRef min_of(const BlockAccess& b) { return b.f16("m"); }

}  // namespace

std::vector<BlockFormat> legacy_block_formats() {
  using S = Scalar;
  return {
      {.dtype = ir::DType::q4_1,
       .fields = {{"d", 0, 2, S::f16, 16}, {"m", 2, 2, S::f16, 16}, {"qs", 4, 16, S::u8, 4}},
       .one = q4_1_one,
       .chunk = q4_1_chunk,
       .integers = nibbles,
       .integer_min = min_of},
      {ir::DType::q5_0,
       {{"d", 0, 2, S::f16, 16}, {"qh", 2, 4, S::u8, 1}, {"qs", 6, 16, S::u8, 4}},
       q5_0_one,
       q5_0_chunk,
       q5_integers,
       16},
      {.dtype = ir::DType::q5_1,
       .fields = {{"d", 0, 2, S::f16, 16}, {"m", 2, 2, S::f16, 16}, {"qh", 4, 4, S::u8, 1}, {"qs", 8, 16, S::u8, 4}},
       .one = q5_1_one,
       .chunk = q5_1_chunk,
       .integers = q5_integers,
       .integer_min = min_of},
  };
}

}  // namespace moat::jit
