// The math functions of math_functions.h as Kernel IR (accuracy in the header). Every
// rule is lane-wise; constants are broadcast to the operand's lanes.
#include "jit/math_functions.h"

#include <bit>
#include <iterator>
#include <limits>

namespace moat::jit {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Constants and shared values of one rule, at the operand's lane count.
struct Math {
  int lanes;
  const Binder& bind;
  NodeRef f32(double v) const { return broadcast(c_f32(v), lanes); }
  NodeRef f64(double v) const { return broadcast(c_f64(v), lanes); }
  NodeRef f64_bits(uint64_t bits) const { return f64(std::bit_cast<double>(bits)); }
  NodeRef i32(int64_t v) const { return broadcast(c_i32(v), lanes); }
  NodeRef i64(int64_t v) const { return broadcast(c_i64(v), lanes); }
  Type t(Scalar s) const { return {s, lanes}; }
};

NodeRef eq(NodeRef a, NodeRef b) { return binary(BinaryOp::eq, std::move(a), std::move(b)); }
NodeRef ne(NodeRef a, NodeRef b) { return binary(BinaryOp::ne, std::move(a), std::move(b)); }
NodeRef both(NodeRef a, NodeRef b) { return binary(BinaryOp::land, std::move(a), std::move(b)); }
NodeRef either(NodeRef a, NodeRef b) { return binary(BinaryOp::lor, std::move(a), std::move(b)); }
NodeRef neg(NodeRef x) { return unary(UnaryOp::neg, std::move(x)); }
NodeRef abs_(NodeRef x) { return unary(UnaryOp::abs, std::move(x)); }
NodeRef rint(NodeRef x) { return unary(UnaryOp::rint, std::move(x)); }
NodeRef is_nan(NodeRef x) { return unary(UnaryOp::isnan, std::move(x)); }

// Horner: ((c[0] * x + c[1]) * x + ...) + c[n-1], with fma, in x's type.
template <class C, size_t N>
NodeRef horner(const Math& m, const NodeRef& x, const C (&c)[N]) {
  const bool wide = x->type.scalar == Scalar::f64;
  auto k = [&](C v) { return wide ? m.f64(static_cast<double>(v)) : m.f32(static_cast<double>(v)); };
  NodeRef p = k(c[0]);
  for (size_t i = 1; i < N; ++i) p = fma(p, x, k(c[i]));
  return p;
}

// 2^k as an f64 for an integer k (i64) in [-1022, 1023].
NodeRef pow2_64(const Math& m, const NodeRef& k) {
  return bitcast(m.t(Scalar::f64), binary(BinaryOp::shl, add(k, m.i64(1023)), m.i64(52)));
}

// log(x) for a positive normal f64 x (other inputs give garbage the caller replaces):
// x = m * 2^k with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m - 1) / (m + 1),
// |s| <= 0.1716; the series to s^13 is within 2^-39 relative.
NodeRef log64(const Math& m, const NodeRef& x) {
  NodeRef bits = m.bind(bitcast(m.t(Scalar::i64), x));
  NodeRef k = m.bind(binary(BinaryOp::shr, sub(bits, m.i64(0x3FE6A09E667F3BCD)), m.i64(52)));
  NodeRef mant = bitcast(m.t(Scalar::f64), sub(bits, binary(BinaryOp::shl, k, m.i64(52))));
  NodeRef f = m.bind(sub(mant, m.f64(1.0)));
  NodeRef s = m.bind(div(f, add(f, m.f64(2.0))));
  NodeRef z = m.bind(mul(s, s));
  static constexpr double kSeries[] = {1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 1.0};
  NodeRef log_m = mul(add(s, s), horner(m, z, kSeries));
  return fma(cast(m.t(Scalar::f64), k), m.f64(0.6931471805599453094), log_m);
}

// exp(t) of an f64 t rounded once to f32: Cody-Waite by ln2 (FreeBSD e_exp.c's split),
// degree-11 polynomial (|r| <= 0.347: truncation < 2^-47), exact scaling in f64; the
// final conversion rounds overflow to inf and tiny results to f32 subnormals / 0.
NodeRef exp64_to_f32(const Math& m, const NodeRef& t) {
  NodeRef tc = m.bind(min_(max_(t, m.f64(-200.0)), m.f64(200.0)));
  NodeRef kd = m.bind(rint(mul(tc, m.f64(1.44269504088896338700))));
  NodeRef nk = m.bind(neg(kd));
  NodeRef r = fma(nk, m.f64(6.93147180369123816490e-01), tc);
  r = m.bind(fma(nk, m.f64(1.90821492927058770002e-10), r));
  static constexpr double kTaylor[] = {1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040, 1.0 / 720,
                                       1.0 / 120,      1.0 / 24,      1.0 / 6,      0.5,          1.0,        1.0};
  NodeRef p = horner(m, r, kTaylor);
  NodeRef out = cast(m.t(Scalar::f32), mul(p, pow2_64(m, cast(m.t(Scalar::i64), kd))));
  return select(is_nan(t), m.f32(kNaN), out);
}

NodeRef sincos(const NodeRef& x, const Binder& bind, bool want_sin) {
  const Math m{x->type.lanes, bind};
  NodeRef xd = m.bind(cast(m.t(Scalar::f64), x));
  NodeRef kd = m.bind(rint(mul(xd, m.f64(0.63661977236758134308))));
  NodeRef nk = m.bind(neg(kd));
  // pi/2 = 0x3FF921FB54442D18 + 0x3C91A62633145C07 + 0xB91F1976B7ED8FBC (bits)
  NodeRef r = fma(nk, m.f64_bits(0x3FF921FB54442D18), xd);
  r = fma(nk, m.f64_bits(0x3C91A62633145C07), r);
  r = m.bind(fma(nk, m.f64_bits(0xB91F1976B7ED8FBC), r));
  NodeRef z = m.bind(mul(r, r));
  NodeRef w = m.bind(mul(z, z));
  // FreeBSD k_sinf.c: (x + s*(S1 + z*S2)) + s*w*(S3 + z*S4), s = z*x
  NodeRef s3 = fma(z, m.f64(0x16cd878c3b46a7.0p-71), m.f64(-0x1a00f9e2cae774.0p-65));
  NodeRef s1 = fma(z, m.f64(0x111110896efbb2.0p-59), m.f64(-0x15555554cbac77.0p-55));
  NodeRef zs = m.bind(mul(z, r));
  NodeRef sin_r = fma(mul(zs, w), s3, fma(zs, s1, r));
  // FreeBSD k_cosf.c: ((1 + z*C0) + w*C1) + (w*z)*(C2 + z*C3)
  NodeRef c2 = fma(z, m.f64(0x199342e0ee5069.0p-68), m.f64(-0x16c087e80f1e27.0p-62));
  NodeRef cos_r = fma(z, m.f64(-0x1ffffffd0c5e81.0p-54), m.f64(1.0));
  cos_r = fma(w, m.f64(0x155553e1053a42.0p-57), cos_r);
  cos_r = fma(mul(w, z), c2, cos_r);
  // quadrant n = k mod 4: sin x = (sin r, cos r, -sin r, -cos r)[n]; cos x = sin(x + pi/2)
  NodeRef n = cast(m.t(Scalar::i32), cast(m.t(Scalar::i64), kd));
  if (!want_sin) n = add(n, m.i32(1));
  n = m.bind(n);
  NodeRef odd = ne(binary(BinaryOp::land, n, m.i32(1)), m.i32(0));
  NodeRef negative = ne(binary(BinaryOp::land, n, m.i32(2)), m.i32(0));
  NodeRef v = m.bind(select(odd, cos_r, sin_r));
  v = select(negative, neg(v), v);
  // inf / NaN inputs: NaN through the reduction. |x| >= 2^50: the reduction has lost the
  // quadrant; the clamp (NaN-propagating) only keeps such results within [-1, 1].
  return min_(max_(cast(m.t(Scalar::f32), v), m.f32(-1.0)), m.f32(1.0));
}

}  // namespace

NodeRef exp_rule(const NodeRef& x, const Binder& bind) {
  const Math m{x->type.lanes, bind};
  // Clamped to [-104, 89] (results past it are 0 / inf anyway); NaN restored at the end.
  NodeRef xc = m.bind(min_(max_(x, m.f32(-104.0)), m.f32(89.0)));
  NodeRef kf = m.bind(rint(mul(xc, m.f32(1.44269504f))));
  NodeRef nk = m.bind(neg(kf));
  // ln2 = 0x3F317200 + 0x35BFBE8E (FreeBSD e_expf.c); k * ln2_hi is exact
  NodeRef r = fma(nk, m.f32(std::bit_cast<float>(0x3F317200u)), xc);
  r = m.bind(fma(nk, m.f32(std::bit_cast<float>(0x35BFBE8Eu)), r));
  // e^r, |r| <= 0.347: Taylor to r^7 (truncation < 2^-27)
  static constexpr float kTaylor[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
  NodeRef p = horner(m, r, kTaylor);
  // * 2^k in two exact steps (k in [-150, 128]: each half within the normal exponents)
  NodeRef k = m.bind(cast(m.t(Scalar::i32), kf));
  NodeRef k1 = m.bind(div(k, m.i32(2)));
  NodeRef k2 = sub(k, k1);
  auto scale = [&](const NodeRef& e) {
    return bitcast(m.t(Scalar::f32), binary(BinaryOp::shl, add(e, m.i32(127)), m.i32(23)));
  };
  NodeRef y = mul(mul(p, scale(k1)), scale(k2));
  return select(is_nan(x), x, y);
}

NodeRef log_rule(const NodeRef& x, const Binder& bind) {
  const Math m{x->type.lanes, bind};
  NodeRef v = cast(m.t(Scalar::f32), log64(m, cast(m.t(Scalar::f64), x)));
  // log(+inf) = +inf, log(±0) = -inf, log(x < 0) = NaN, log(NaN) = NaN
  v = select(eq(x, m.f32(kInf)), x, v);
  v = select(eq(x, m.f32(0.0)), m.f32(-kInf), v);
  v = select(lt(x, m.f32(0.0)), m.f32(kNaN), v);
  return select(is_nan(x), x, v);
}

NodeRef sin_rule(const NodeRef& x, const Binder& bind) { return sincos(x, bind, true); }
NodeRef cos_rule(const NodeRef& x, const Binder& bind) { return sincos(x, bind, false); }

NodeRef tanh_rule(const NodeRef& x, const Binder& bind) {
  const Math m{x->type.lanes, bind};
  // Cephes tanhf. |x| > 0.625: 1 - 2 / (e^(2|x|) + 1) with x's sign.
  NodeRef ax = m.bind(abs_(x));
  NodeRef e = exp_rule(add(ax, ax), bind);
  NodeRef big = m.bind(sub(m.f32(1.0), div(m.f32(2.0), add(e, m.f32(1.0)))));
  big = select(lt(x, m.f32(0.0)), neg(big), big);
  // |x| <= 0.625 (and NaN): x + x^3 P(x^2)
  NodeRef z = m.bind(mul(x, x));
  static constexpr float kP[] = {-5.70498872745e-3f, 2.06390887954e-2f, -5.37397155531e-2f, 1.33314422036e-1f,
                                 -3.33332819422e-1f};
  NodeRef small = fma(mul(horner(m, z, kP), z), x, x);
  return select(lt(m.f32(0.625), ax), big, small);
}

NodeRef pow_rule(const NodeRef& x, const NodeRef& y, const Binder& bind) {
  const Math m{x->type.lanes, bind};
  // |x|^y = exp(y log|x|) in f64; log|x| is -inf at 0 and +inf at inf, which gives the
  // C99 zero / infinity cases through the product.
  NodeRef ax = m.bind(cast(m.t(Scalar::f64), abs_(x)));
  NodeRef lg = log64(m, ax);
  lg = select(eq(ax, m.f64(0.0)), m.f64(-kInf), lg);
  lg = select(eq(ax, m.f64(kInf)), ax, lg);
  NodeRef mag = exp64_to_f32(m, mul(cast(m.t(Scalar::f64), y), lg));  // NaN x: log64 gives NaN
  mag = m.bind(select(is_nan(x), x, mag));
  // sign: x < 0 and y an odd integer (|y| >= 2^24 is even; inf counts as even)
  NodeRef y_int = m.bind(eq(rint(y), y));
  NodeRef y_small = lt(abs_(y), m.f32(16777216.0));
  NodeRef y_low = cast(m.t(Scalar::i32), select(y_small, y, m.f32(0.0)));
  NodeRef y_odd = ne(binary(BinaryOp::land, y_low, m.i32(1)), m.i32(0));
  NodeRef x_sign = lt(bitcast(m.t(Scalar::i32), x), m.i32(0));  // -0 too: pow(-0, -1) = -inf
  NodeRef v = select(both(x_sign, both(y_int, y_odd)), neg(mag), mag);
  // negative finite x with a non-integer y -> NaN (y NaN: NaN already; pow(-inf, y) is
  // +inf / +0 by the product)
  NodeRef bad = both(both(lt(x, m.f32(0.0)), ne(x, m.f32(-kInf))), unary(UnaryOp::lnot, y_int));
  v = select(bad, m.f32(kNaN), v);
  // pow(x, ±0) = 1, pow(1, y) = 1, pow(-1, ±inf) = 1 (even for NaN operands)
  NodeRef one = either(eq(y, m.f32(0.0)), eq(x, m.f32(1.0)));
  NodeRef minus_one_inf = both(eq(x, m.f32(-1.0)), eq(abs_(y), m.f32(kInf)));
  return select(either(one, minus_one_inf), m.f32(1.0), v);
}

NodeRef fmod_rule(const NodeRef& x, const NodeRef& y, const Binder& bind,
                  const std::function<void(NodeRef statement)>& emit, const std::function<std::string()>& fresh) {
  const Math m{x->type.lanes, bind};
  // C fmod, exact: r = |x|; while r >= |y|: r -= the largest |y| * 2^k <= r (exact by
  // Sterbenz; in f64, where every f32 is normal); the result takes x's sign. A fixed
  // count of steps (the f32 exponent range) with a per-lane condition.
  NodeRef ax = m.bind(abs_(x)), ay = m.bind(abs_(y));
  NodeRef special = either(either(is_nan(x), is_nan(y)), either(eq(ay, m.f32(0.0)), eq(ax, m.f32(kInf))));
  NodeRef yd = m.bind(cast(m.t(Scalar::f64), ay));
  NodeRef ey = m.bind(binary(BinaryOp::shr, bitcast(m.t(Scalar::i64), yd), m.i64(52)));
  const std::string r_name = fresh(), step = fresh();
  const Type f64 = m.t(Scalar::f64);
  emit(var(r_name, cast(f64, ax)));
  NodeRef r = ref(r_name, f64);
  NodeRef k = sub(binary(BinaryOp::shr, bitcast(m.t(Scalar::i64), r), m.i64(52)), ey);
  NodeRef t = mul(yd, pow2_64(m, max_(k, m.i64(0))));
  t = select(lt(r, t), mul(t, m.f64(0.5)), t);
  NodeRef reduced = select(binary(BinaryOp::le, yd, r), sub(r, t), r);
  emit(for_loop(step, c_i64(0), c_i64(280), c_i64(1), {assign(r_name, reduced)}));
  NodeRef rf = bitcast(m.t(Scalar::i32), cast(m.t(Scalar::f32), r));
  NodeRef sign = binary(BinaryOp::land, bitcast(m.t(Scalar::i32), x), m.i32(std::numeric_limits<int32_t>::min()));
  NodeRef signed_r = bitcast(m.t(Scalar::f32), binary(BinaryOp::lor, rf, sign));
  return select(special, m.f32(kNaN), signed_r);
}

}  // namespace moat::jit
