// Block format of q8_k, the activations of K-type matmuls (ir/quant.h): f32 d, 256 int8
// qs, 16 int16 bsums (each stored as 2 bytes, little-endian; Kernel IR has no i16).
// x = d * q. Its encode rule is quantize_row_q8_k's, one group of 16 at a time.
#include "jit/block_rules.h"

namespace moat::jit {

namespace {

using namespace block_rules;

NodeRef q8_k_one(const BlockAccess& b, const NodeRef& e) {
  return mul(b.f32("d"), to_f32(b.bytes("qs", e, Scalar::i8)));
}

NodeRef q8_k_chunk(const BlockAccess& b, const NodeRef& first) {
  return mul(splat32(b.bind(b.f32("d"))), to_f32(b.bytes("qs", first, Scalar::i8, 32)));
}

// Operands: 16 values (f32 x 16) of group g (i64), the block's signed max v (f32).
// iscale = -127 / v (0 for v = 0: zeros, d = 0), q = min(127, round-half-even(x *
// iscale)), rounded exactly as ggml's nearest_int: t = trunc(y), then a step by the
// exact remainder y - t (|y| <= 127), a tie towards the even neighbour. NaN gives
// unspecified bytes (float -> int casts of NaN are 0 in Kernel IR).
std::vector<NodeRef> q8_k_encode(const BlockAccess& b, const std::vector<NodeRef>& operands) {
  const Type f32x16 = kF32.with_lanes(16), i32x16{Scalar::i32, 16};
  NodeRef x = b.bind(operands.at(0)), group = operands.at(1), vmax = b.bind(operands.at(2));
  NodeRef nonzero = b.bind(binary(BinaryOp::ne, vmax, c_f32(0.0)));
  NodeRef iscale = b.bind(select(nonzero, div(c_f32(-127.0), vmax), c_f32(0.0)));
  NodeRef y = b.bind(mul(x, broadcast(iscale, 16)));
  NodeRef t = b.bind(cast(i32x16, y));
  NodeRef rest = b.bind(sub(y, cast(f32x16, t)));
  NodeRef one = broadcast(c_i32(1), 16), zero = broadcast(c_i32(0), 16);
  NodeRef odd = b.bind(bit_and(t, one));
  auto at = [](const NodeRef& v, double c) { return broadcast(c_f32(c), v->type.lanes); };
  NodeRef up = add(select(lt(at(rest, 0.5), rest), one, zero), select(binary(BinaryOp::eq, rest, at(rest, 0.5)), odd, zero));
  NodeRef down =
      add(select(lt(rest, at(rest, -0.5)), one, zero), select(binary(BinaryOp::eq, rest, at(rest, -0.5)), odd, zero));
  NodeRef q = b.bind(min_(sub(add(t, up), down), broadcast(c_i32(127), 16)));
  NodeRef sum = b.bind(reduce(ReduceOp::add, q));
  NodeRef low = cast({Scalar::u8, 1}, bit_and(sum, c_i32(255)));
  NodeRef high = cast({Scalar::u8, 1}, bit_and(shr(sum, c_i32(8)), c_i32(255)));
  NodeRef d = select(nonzero, div(c_f32(1.0), iscale), c_f32(0.0));
  NodeRef pair = b.bind(mul(group, i64c(2)));
  return {b.store_bytes("qs", mul(group, i64c(16)), cast({Scalar::i8, 16}, q)),
          b.store_bytes("bsums", pair, low),
          b.store_bytes("bsums", add(pair, i64c(1)), high),
          b.store_f32("d", d)};
}

}  // namespace

std::vector<BlockFormat> q8_k_block_formats() {
  using S = Scalar;
  return {{ir::DType::q8_k,
           {{"d", 0, 4, S::f32, 32}, {"qs", 4, 256, S::i8, 8}, {"bsums", 260, 32, S::u8, 16}},
           q8_k_one,
           q8_k_chunk,
           nullptr,
           0,
           q8_k_encode}};
}

}  // namespace moat::jit
