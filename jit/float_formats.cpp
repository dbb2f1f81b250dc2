// Conversions between f32 and the narrow storage floats (f16, bf16, E4M3FN f8) as Kernel
// IR on the bits, bit for bit support/half.h (the interpreter's definitions): round to
// nearest even with subnormals, f16 overflow to inf, f8 saturation at 448, NaNs kept
// quiet with their sign. All arithmetic is on non-negative i32 values (the sign is
// handled apart), so no shift overflows and no lane needs more than 32 bits.
#include "jit/float_formats.h"

#include "support/error.h"

namespace moat::jit {

namespace {

struct Lanes {
  int n;
  const Binder& bind;
  NodeRef i(int64_t v) const { return broadcast(c_i32(v), n); }
  NodeRef f(double v) const { return broadcast(c_f32(v), n); }
};

NodeRef band(NodeRef a, NodeRef b) { return binary(BinaryOp::land, std::move(a), std::move(b)); }
NodeRef bor(NodeRef a, NodeRef b) { return binary(BinaryOp::lor, std::move(a), std::move(b)); }
NodeRef shl(NodeRef a, NodeRef b) { return binary(BinaryOp::shl, std::move(a), std::move(b)); }
NodeRef shr(NodeRef a, NodeRef b) { return binary(BinaryOp::shr, std::move(a), std::move(b)); }
NodeRef eq(NodeRef a, NodeRef b) { return binary(BinaryOp::eq, std::move(a), std::move(b)); }
NodeRef ne(NodeRef a, NodeRef b) { return binary(BinaryOp::ne, std::move(a), std::move(b)); }
NodeRef le(NodeRef a, NodeRef b) { return binary(BinaryOp::le, std::move(a), std::move(b)); }

struct Format {
  int mant_bits;  // fraction bits
  int bias;       // exponent bias
  int64_t sign;   // the sign bit
};
constexpr Format kF16{10, 15, 0x8000};
constexpr Format kBf16{7, 127, 0x8000};
constexpr Format kF8{3, 7, 0x80};

Format format_of(Scalar s) {
  switch (s) {
    case Scalar::f16: return kF16;
    case Scalar::bf16: return kBf16;
    case Scalar::f8: return kF8;
    default: break;
  }
  MOAT_INTERNAL_ERROR("float_formats: ", scalar_name(s), " is not a narrow float");
}

// A finite f32 magnitude (its bits ax, non-negative) rounded to `f` to nearest even with
// f's subnormals (f32 subnormals and magnitudes below half f's smallest subnormal give
// 0): the magnitude's code, before any saturation.
NodeRef round_magnitude(const Lanes& l, const NodeRef& ax, Format f) {
  NodeRef e = l.bind(sub(shr(ax, l.i(23)), l.i(127)));
  const int64_t emin = 1 - f.bias, base_shift = 23 - f.mant_bits;
  NodeRef mant = l.bind(band(ax, l.i(0x7fffff)));
  NodeRef normal = l.bind(le(l.i(emin), e));
  NodeRef sub_shift = l.bind(sub(l.i(base_shift + emin), e));
  NodeRef shift = l.bind(select(normal, l.i(base_shift), min_(sub_shift, l.i(25))));
  NodeRef full = l.bind(select(normal, mant, bor(mant, l.i(0x800000))));
  NodeRef kept = l.bind(select(normal, bor(shl(add(e, l.i(f.bias)), l.i(f.mant_bits)), shr(mant, l.i(base_shift))), shr(full, shift)));
  NodeRef rest = l.bind(band(full, sub(shl(l.i(1), shift), l.i(1))));
  NodeRef halfway = l.bind(shl(l.i(1), sub(shift, l.i(1))));
  NodeRef up = binary(BinaryOp::lor, binary(BinaryOp::lt, halfway, rest),
                      binary(BinaryOp::land, eq(rest, halfway), ne(band(kept, l.i(1)), l.i(0))));
  NodeRef rounded = add(kept, select(up, l.i(1), l.i(0)));
  NodeRef vanishes = binary(BinaryOp::lor, binary(BinaryOp::lt, ax, l.i(0x00800000)), binary(BinaryOp::lt, l.i(24), sub_shift));
  return select(binary(BinaryOp::land, unary(UnaryOp::lnot, normal), vanishes), l.i(0), rounded);
}

// The narrow float's bits (i32, zero-extended) as an f32.
NodeRef decode(const Lanes& l, const NodeRef& bits_value, Scalar s) {
  NodeRef bits = l.bind(bits_value);
  const Format f = format_of(s);
  NodeRef negative = ne(band(bits, l.i(f.sign)), l.i(0));
  NodeRef magnitude;
  if (s == Scalar::bf16) {
    magnitude = bitcast(kF32.with_lanes(l.n), shl(band(bits, l.i(0x7fff)), l.i(16)));
  } else {
    const int exp_bits = s == Scalar::f16 ? 5 : 4;
    const int64_t top = (int64_t{1} << exp_bits) - 1;
    NodeRef ex = l.bind(band(shr(bits, l.i(f.mant_bits)), l.i(top)));
    NodeRef mant = l.bind(band(bits, l.i((int64_t{1} << f.mant_bits) - 1)));
    NodeRef normal = bor(shl(add(ex, l.i(127 - f.bias)), l.i(23)), shl(mant, l.i(23 - f.mant_bits)));
    NodeRef special;  // f16: inf / NaN with the payload; f8 E4M3FN: only 0x7f is NaN
    if (s == Scalar::f16) {
      special = select(eq(ex, l.i(top)), bor(l.i(0x7f800000), shl(mant, l.i(13))), normal);
    } else {
      special = select(eq(band(bits, l.i(0x7f)), l.i(0x7f)), l.i(0x7fc00000), normal);
    }
    const double quantum = s == Scalar::f16 ? 5.9604644775390625e-8 : 0.001953125;  // the smallest subnormal
    NodeRef subnormal = mul(cast(kF32.with_lanes(l.n), mant), l.f(quantum));
    magnitude = select(eq(ex, l.i(0)), subnormal, bitcast(kF32.with_lanes(l.n), special));
  }
  magnitude = l.bind(magnitude);
  return select(negative, unary(UnaryOp::neg, magnitude), magnitude);
}

// An f32 as the narrow float's bits (i32).
NodeRef encode(const Lanes& l, const NodeRef& value, Scalar s) {
  const Format f = format_of(s);
  NodeRef x = l.bind(bitcast({Scalar::i32, l.n}, value));
  NodeRef ax = l.bind(band(x, l.i(0x7fffffff)));
  NodeRef sign = select(binary(BinaryOp::lt, x, l.i(0)), l.i(f.sign), l.i(0));
  NodeRef nan = binary(BinaryOp::lt, l.i(0x7f800000), ax);
  NodeRef code, nan_code;
  if (s == Scalar::bf16) {
    NodeRef odd = band(shr(ax, l.i(16)), l.i(1));
    code = shr(add(add(ax, l.i(0x7fff)), odd), l.i(16));
    nan_code = bor(shr(ax, l.i(16)), l.i(0x40));
  } else if (s == Scalar::f16) {
    code = min_(round_magnitude(l, ax, f), l.i(0x7c00));
    nan_code = bor(l.i(0x7e00), band(shr(ax, l.i(13)), l.i(0x3ff)));
  } else {
    code = min_(round_magnitude(l, ax, f), l.i(0x7e));
    nan_code = l.i(0x7f);
  }
  return bor(sign, select(nan, nan_code, code));
}

}  // namespace

bool is_narrow_float(Scalar s) { return s == Scalar::f16 || s == Scalar::bf16 || s == Scalar::f8; }

NodeRef narrow_to_f32(const NodeRef& x, const Binder& bind) {
  const Lanes l{x->type.lanes, bind};
  return decode(l, bitcast({Scalar::i32, l.n}, x), x->type.scalar);
}

NodeRef f32_to_narrow(const NodeRef& x, Scalar to, const Binder& bind) {
  MOAT_INTERNAL_CHECK(x->type.scalar == Scalar::f32, "f32_to_narrow takes f32");
  const Lanes l{x->type.lanes, bind};
  return bitcast({to, l.n}, encode(l, x, to));
}

}  // namespace moat::jit
