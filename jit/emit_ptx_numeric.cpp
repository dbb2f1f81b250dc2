// Conversions, math and dequantisation for the PTX emitter (contracts and accuracy in
// emit_ptx_numeric.h). Arithmetic that must round like the LLVM emitter uses explicit
// .rn (which also keeps ptxas from contracting a*b+c into an fma); nothing flushes
// subnormals.
#include "jit/emit_ptx_numeric.h"

#include <iterator>
#include <limits>

#include "support/error.h"

namespace moat::jit::ptx {

namespace {

std::string F(float v) { return f32_imm(v); }
std::string D(double v) { return f64_imm(v); }

std::string bits_of(Builder& b, const std::string& f) { return b.def(Reg::b32, "mov.b32", {f}); }
std::string float_of(Builder& b, const std::string& bits) { return b.def(Reg::f32, "mov.b32", {bits}); }

// --- conversions -------------------------------------------------------------------

std::string int_convert(Builder& b, const std::string& v, Scalar from, Scalar to) {
  if (to == Scalar::i1) return b.def(Reg::pred, from == Scalar::i64 ? "setp.ne.s64" : "setp.ne.s32", {v, "0"});
  if (from == Scalar::i1) return b.def(reg_class(to), to == Scalar::i64 ? "selp.b64" : "selp.b32", {"1", "0", v});
  // Narrow values live sign- (i8) or zero- (u8) extended in 32 bits, so widening to
  // 32 bits is the register itself; an i64 source is truncated first.
  const std::string low = from == Scalar::i64 && to != Scalar::i64 ? b.def(Reg::b32, "cvt.u32.u64", {v}) : v;
  switch (to) {
    case Scalar::i64: return b.def(Reg::b64, from == Scalar::u8 ? "cvt.u64.u32" : "cvt.s64.s32", {v});
    case Scalar::i32: return low;
    case Scalar::i8: return b.def(Reg::b32, "cvt.s32.s8", {low});
    case Scalar::u8: return b.def(Reg::b32, "and.b32", {low, "255"});
    default: break;
  }
  MOAT_INTERNAL_ERROR("ptx emitter: no integer conversion from ", scalar_name(from), " to ", scalar_name(to));
}

std::string to_f32(Builder& b, const std::string& v, Scalar s) {
  switch (s) {
    case Scalar::f32: return v;
    case Scalar::f16: return b.def(Reg::f32, "cvt.f32.f16", {v});
    case Scalar::bf16: case Scalar::f8: break;  // written out by legalize_numerics
    case Scalar::i64: return b.def(Reg::f32, "cvt.rn.f32.s64", {v});
    case Scalar::i32: case Scalar::i8: return b.def(Reg::f32, "cvt.rn.f32.s32", {v});
    case Scalar::u8: return b.def(Reg::f32, "cvt.rn.f32.u32", {v});
    case Scalar::i1: return b.def(Reg::f32, "selp.f32", {F(1.0f), F(0.0f), v});
  }
  MOAT_INTERNAL_ERROR("ptx emitter: no conversion from ", scalar_name(s));
}

// f32 -> integers saturate, NaN -> 0 (llvm.fpto[su]i.sat). PTX cvt.rzi clamps to the
// destination range; NaN gives 0 for 32-bit destinations but MININT for 64-bit ones
// (PTX ISA, cvt), so the i64 case selects 0 for NaN itself.
std::string from_f32(Builder& b, const std::string& v, Scalar s) {
  switch (s) {
    case Scalar::f32: return v;
    case Scalar::f16: return b.def(Reg::b16, "cvt.rn.f16.f32", {v});
    case Scalar::bf16: case Scalar::f8: break;  // written out by legalize_numerics
    case Scalar::i1: return b.def(Reg::pred, "setp.neu.f32", {v, F(0.0f)});
    case Scalar::u8: return b.def(Reg::b32, "min.u32", {b.def(Reg::b32, "cvt.rzi.u32.f32", {v}), "255"});
    case Scalar::i8: {
      std::string t = b.def(Reg::b32, "cvt.rzi.s32.f32", {v});
      return b.def(Reg::b32, "min.s32", {b.def(Reg::b32, "max.s32", {t, "-128"}), "127"});
    }
    case Scalar::i32: return b.def(Reg::b32, "cvt.rzi.s32.f32", {v});
    case Scalar::i64: {
      std::string t = b.def(Reg::b64, "cvt.rzi.s64.f32", {v});
      return b.def(Reg::b64, "selp.b64", {"0", t, b.def(Reg::pred, "setp.nan.f32", {v, v})});
    }
  }
  MOAT_INTERNAL_ERROR("ptx emitter: no conversion to ", scalar_name(s));
}

// --- f64 helpers of the math sequences -------------------------------------------------

// Horner: ((c[0] * x + c[1]) * x + ...) + c[n-1], with fma.
template <size_t N>
std::string horner64(Builder& b, const std::string& x, const double (&c)[N]) {
  std::string p = b.def(Reg::f64, "mov.f64", {D(c[0])});
  for (size_t i = 1; i < N; ++i) p = b.def(Reg::f64, "fma.rn.f64", {p, x, D(c[i])});
  return p;
}

// 2^k as an f64 for an integer k (b64) in [-1022, 1023].
std::string pow2_64(Builder& b, const std::string& k) {
  return b.def(Reg::f64, "mov.b64", {b.def(Reg::b64, "shl.b64", {b.def(Reg::b64, "add.s64", {k, "1023"}), "52"})});
}

// log(x) for a positive normal f64 x (other inputs give garbage the caller replaces):
// x = m * 2^k with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m - 1) / (m + 1),
// |s| <= 0.1716; the series to s^13 is within 2^-39 relative.
std::string log64(Builder& b, const std::string& x) {
  std::string bits = b.def(Reg::b64, "mov.b64", {x});
  std::string k = b.def(Reg::b64, "shr.s64", {b.def(Reg::b64, "sub.s64", {bits, "0x3FE6A09E667F3BCD"}), "52"});
  std::string m = b.def(Reg::f64, "mov.b64", {b.def(Reg::b64, "sub.s64", {bits, b.def(Reg::b64, "shl.b64", {k, "52"})})});
  std::string f = b.def(Reg::f64, "sub.rn.f64", {m, D(1.0)});
  std::string s = b.def(Reg::f64, "div.rn.f64", {f, b.def(Reg::f64, "add.rn.f64", {f, D(2.0)})});
  std::string z = b.def(Reg::f64, "mul.rn.f64", {s, s});
  static constexpr double kSeries[] = {1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 1.0};
  std::string p = horner64(b, z, kSeries);
  std::string log_m = b.def(Reg::f64, "mul.rn.f64", {b.def(Reg::f64, "add.rn.f64", {s, s}), p});
  std::string kd = b.def(Reg::f64, "cvt.rn.f64.s64", {k});
  return b.def(Reg::f64, "fma.rn.f64", {kd, D(0.6931471805599453094), log_m});
}

// exp(t) of an f64 t rounded once to f32: Cody-Waite by ln2 (FreeBSD e_exp.c's split),
// degree-11 polynomial (|r| <= 0.347: truncation < 2^-47), exact scaling in f64; the
// final cvt rounds overflow to inf and tiny results to f32 subnormals / 0. NaN -> NaN.
std::string exp64_to_f32(Builder& b, const std::string& t) {
  std::string tc = b.def(Reg::f64, "min.f64", {b.def(Reg::f64, "max.f64", {t, D(-200.0)}), D(200.0)});
  std::string kd = b.def(Reg::f64, "cvt.rni.f64.f64", {b.def(Reg::f64, "mul.rn.f64", {tc, D(1.44269504088896338700)})});
  std::string nk = b.def(Reg::f64, "neg.f64", {kd});
  std::string r = b.def(Reg::f64, "fma.rn.f64", {nk, D(6.93147180369123816490e-01), tc});
  r = b.def(Reg::f64, "fma.rn.f64", {nk, D(1.90821492927058770002e-10), r});
  static constexpr double kTaylor[] = {1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040, 1.0 / 720,
                                       1.0 / 120,      1.0 / 24,      1.0 / 6,      0.5,          1.0,        1.0};
  std::string p = horner64(b, r, kTaylor);
  std::string k = b.def(Reg::b64, "cvt.rzi.s64.f64", {kd});
  std::string out = b.def(Reg::f32, "cvt.rn.f32.f64", {b.def(Reg::f64, "mul.rn.f64", {p, pow2_64(b, k)})});
  return b.def(Reg::f32, "selp.f32", {F(std::numeric_limits<float>::quiet_NaN()), out, b.def(Reg::pred, "setp.nan.f64", {t, t})});
}

// sin (want_sin) or cos of an f32, reduced in f64 (see the header for the range).
std::string sincos_f32(Builder& b, const std::string& x, bool want_sin) {
  std::string xd = b.def(Reg::f64, "cvt.f64.f32", {x});
  std::string kd = b.def(Reg::f64, "cvt.rni.f64.f64", {b.def(Reg::f64, "mul.rn.f64", {xd, D(0.63661977236758134308)})});
  std::string nk = b.def(Reg::f64, "neg.f64", {kd});
  // pi/2 = 0x3FF921FB54442D18 + 0x3C91A62633145C07 + 0xB91F1976B7ED8FBC
  std::string r = b.def(Reg::f64, "fma.rn.f64", {nk, "0d3FF921FB54442D18", xd});
  r = b.def(Reg::f64, "fma.rn.f64", {nk, "0d3C91A62633145C07", r});
  r = b.def(Reg::f64, "fma.rn.f64", {nk, "0dB91F1976B7ED8FBC", r});
  std::string z = b.def(Reg::f64, "mul.rn.f64", {r, r});
  std::string w = b.def(Reg::f64, "mul.rn.f64", {z, z});
  // FreeBSD k_sinf.c: (x + s*(S1 + z*S2)) + s*w*(S3 + z*S4), s = z*x
  std::string s3 = b.def(Reg::f64, "fma.rn.f64", {z, D(0x16cd878c3b46a7.0p-71), D(-0x1a00f9e2cae774.0p-65)});
  std::string s1 = b.def(Reg::f64, "fma.rn.f64", {z, D(0x111110896efbb2.0p-59), D(-0x15555554cbac77.0p-55)});
  std::string zs = b.def(Reg::f64, "mul.rn.f64", {z, r});
  std::string sin_r = b.def(Reg::f64, "fma.rn.f64", {zs, s1, r});
  sin_r = b.def(Reg::f64, "fma.rn.f64", {b.def(Reg::f64, "mul.rn.f64", {zs, w}), s3, sin_r});
  // FreeBSD k_cosf.c: ((1 + z*C0) + w*C1) + (w*z)*(C2 + z*C3)
  std::string c2 = b.def(Reg::f64, "fma.rn.f64", {z, D(0x199342e0ee5069.0p-68), D(-0x16c087e80f1e27.0p-62)});
  std::string cos_r = b.def(Reg::f64, "fma.rn.f64", {z, D(-0x1ffffffd0c5e81.0p-54), D(1.0)});
  cos_r = b.def(Reg::f64, "fma.rn.f64", {w, D(0x155553e1053a42.0p-57), cos_r});
  cos_r = b.def(Reg::f64, "fma.rn.f64", {b.def(Reg::f64, "mul.rn.f64", {w, z}), c2, cos_r});
  // quadrant n = k mod 4: sin x = (sin r, cos r, -sin r, -cos r)[n]; cos x = sin(x + pi/2)
  std::string n = b.def(Reg::b32, "cvt.u32.u64", {b.def(Reg::b64, "cvt.rzi.s64.f64", {kd})});
  if (!want_sin) n = b.def(Reg::b32, "add.s32", {n, "1"});
  std::string odd = b.def(Reg::pred, "setp.ne.s32", {b.def(Reg::b32, "and.b32", {n, "1"}), "0"});
  std::string negative = b.def(Reg::pred, "setp.ne.s32", {b.def(Reg::b32, "and.b32", {n, "2"}), "0"});
  std::string v = b.def(Reg::f64, "selp.f64", {cos_r, sin_r, odd});
  v = b.def(Reg::f64, "selp.f64", {b.def(Reg::f64, "neg.f64", {v}), v, negative});
  // inf / NaN inputs: NaN through the reduction. |x| >= 2^50: the reduction has lost the
  // quadrant; the clamp (NaN-preserving) only keeps such results within [-1, 1].
  std::string out = b.def(Reg::f32, "cvt.rn.f32.f64", {v});
  return b.def(Reg::f32, "min.NaN.f32", {b.def(Reg::f32, "max.NaN.f32", {out, F(-1.0f)}), F(1.0f)});
}

std::string pred_or(Builder& b, const std::string& p, const std::string& q) { return b.def(Reg::pred, "or.pred", {p, q}); }

}  // namespace

Reg reg_class(Scalar s) {
  switch (s) {
    case Scalar::f32: return Reg::f32;
    case Scalar::f16: case Scalar::bf16: return Reg::b16;
    case Scalar::f8: case Scalar::i8: case Scalar::u8: case Scalar::i32: return Reg::b32;
    case Scalar::i64: return Reg::b64;
    case Scalar::i1: return Reg::pred;
  }
  MOAT_INTERNAL_ERROR("ptx emitter: unknown scalar type");
}

std::string convert(Builder& b, const std::string& v, Scalar from, Scalar to) {
  if (from == to) return v;
  if (!is_float(from) && !is_float(to)) return int_convert(b, v, from, to);
  if (from == Scalar::f32 && to == Scalar::f16) return b.def(Reg::b16, "cvt.rn.f16.f32", {v});
  return from_f32(b, to_f32(b, v, from), to);
}

std::string reinterpret(Builder& b, const std::string& v, Scalar from, Scalar to) {
  if (from == Scalar::f32) return bits_of(b, v);
  if (to == Scalar::f32) return float_of(b, v);
  if (to == Scalar::i32) return reg_class(from) == Reg::b16 ? b.def(Reg::b32, "cvt.u32.u16", {v}) : b.def(Reg::b32, "and.b32", {v, "255"});
  if (reg_class(to) == Reg::b16) return b.def(Reg::b16, "cvt.u16.u32", {v});
  return b.def(Reg::b32, "and.b32", {v, "255"});  // f8: its byte, zero-extended in a b32
}

std::string float_max(Builder& b, const std::string& x, const std::string& y) {
  std::string take_x = pred_or(b, b.def(Reg::pred, "setp.gt.f32", {x, y}), b.def(Reg::pred, "setp.nan.f32", {x, x}));
  return b.def(Reg::f32, "selp.f32", {x, y, take_x});
}

std::string float_min(Builder& b, const std::string& x, const std::string& y) {
  std::string take_x = pred_or(b, b.def(Reg::pred, "setp.lt.f32", {x, y}), b.def(Reg::pred, "setp.nan.f32", {x, x}));
  return b.def(Reg::f32, "selp.f32", {x, y, take_x});
}

std::string exp_f32(Builder& b, const std::string& x) {
  // Clamped to [-104, 89] (results past it are 0 / inf anyway); NaN restored at the end.
  std::string xc = b.def(Reg::f32, "min.f32", {b.def(Reg::f32, "max.f32", {x, F(-104.0f)}), F(89.0f)});
  std::string kf = b.def(Reg::f32, "cvt.rni.f32.f32", {b.def(Reg::f32, "mul.rn.f32", {xc, F(1.44269504f)})});
  std::string nk = b.def(Reg::f32, "neg.f32", {kf});
  // ln2 = 0x3F317200 + 0x35BFBE8E (FreeBSD e_expf.c); k * ln2_hi is exact
  std::string r = b.def(Reg::f32, "fma.rn.f32", {nk, "0f3F317200", xc});
  r = b.def(Reg::f32, "fma.rn.f32", {nk, "0f35BFBE8E", r});
  // e^r, |r| <= 0.347: Taylor to r^7 (truncation < 2^-27)
  static constexpr float kTaylor[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
  std::string p = b.def(Reg::f32, "mov.f32", {F(kTaylor[0])});
  for (size_t i = 1; i < std::size(kTaylor); ++i) p = b.def(Reg::f32, "fma.rn.f32", {p, r, F(kTaylor[i])});
  // * 2^k in two exact steps (k in [-150, 128]: each half within the normal exponents)
  std::string k = b.def(Reg::b32, "cvt.rni.s32.f32", {kf});
  std::string k1 = b.def(Reg::b32, "shr.s32", {k, "1"});
  std::string k2 = b.def(Reg::b32, "sub.s32", {k, k1});
  std::string s1 = float_of(b, b.def(Reg::b32, "shl.b32", {b.def(Reg::b32, "add.s32", {k1, "127"}), "23"}));
  std::string s2 = float_of(b, b.def(Reg::b32, "shl.b32", {b.def(Reg::b32, "add.s32", {k2, "127"}), "23"}));
  std::string y = b.def(Reg::f32, "mul.rn.f32", {b.def(Reg::f32, "mul.rn.f32", {p, s1}), s2});
  return b.def(Reg::f32, "selp.f32", {x, y, b.def(Reg::pred, "setp.nan.f32", {x, x})});
}

std::string log_f32(Builder& b, const std::string& x) {
  std::string v = b.def(Reg::f32, "cvt.rn.f32.f64", {log64(b, b.def(Reg::f64, "cvt.f64.f32", {x}))});
  // log(+inf) = +inf, log(±0) = -inf, log(x < 0) = NaN, log(NaN) = NaN
  v = b.def(Reg::f32, "selp.f32", {x, v, b.def(Reg::pred, "setp.eq.f32", {x, F(std::numeric_limits<float>::infinity())})});
  v = b.def(Reg::f32, "selp.f32", {F(-std::numeric_limits<float>::infinity()), v, b.def(Reg::pred, "setp.eq.f32", {x, F(0.0f)})});
  v = b.def(Reg::f32, "selp.f32", {F(std::numeric_limits<float>::quiet_NaN()), v, b.def(Reg::pred, "setp.lt.f32", {x, F(0.0f)})});
  return b.def(Reg::f32, "selp.f32", {x, v, b.def(Reg::pred, "setp.nan.f32", {x, x})});
}

std::string sin_f32(Builder& b, const std::string& x) { return sincos_f32(b, x, true); }
std::string cos_f32(Builder& b, const std::string& x) { return sincos_f32(b, x, false); }

std::string tanh_f32(Builder& b, const std::string& x) {
  // Cephes tanhf. |x| > 0.625: 1 - 2 / (e^(2|x|) + 1) with x's sign.
  std::string ax = b.def(Reg::f32, "abs.f32", {x});
  std::string e = exp_f32(b, b.def(Reg::f32, "add.rn.f32", {ax, ax}));
  std::string q = b.def(Reg::f32, "div.rn.f32", {F(2.0f), b.def(Reg::f32, "add.rn.f32", {e, F(1.0f)})});
  std::string big = b.def(Reg::f32, "sub.rn.f32", {F(1.0f), q});
  big = b.def(Reg::f32, "selp.f32", {b.def(Reg::f32, "neg.f32", {big}), big, b.def(Reg::pred, "setp.lt.f32", {x, F(0.0f)})});
  // |x| <= 0.625 (and NaN): x + x^3 P(x^2)
  std::string z = b.def(Reg::f32, "mul.rn.f32", {x, x});
  static constexpr float kP[] = {-5.70498872745e-3f, 2.06390887954e-2f, -5.37397155531e-2f, 1.33314422036e-1f, -3.33332819422e-1f};
  std::string p = b.def(Reg::f32, "mov.f32", {F(kP[0])});
  for (size_t i = 1; i < std::size(kP); ++i) p = b.def(Reg::f32, "fma.rn.f32", {p, z, F(kP[i])});
  std::string small = b.def(Reg::f32, "fma.rn.f32", {b.def(Reg::f32, "mul.rn.f32", {p, z}), x, x});
  return b.def(Reg::f32, "selp.f32", {big, small, b.def(Reg::pred, "setp.gt.f32", {ax, F(0.625f)})});
}

std::string pow_f32(Builder& b, const std::string& x, const std::string& y) {
  // |x|^y = exp(y log|x|) in f64; log|x| is -inf at 0 and +inf at inf, which gives the
  // C99 zero / infinity cases through the product.
  std::string ax = b.def(Reg::f64, "cvt.f64.f32", {b.def(Reg::f32, "abs.f32", {x})});
  std::string lg = log64(b, ax);
  lg = b.def(Reg::f64, "selp.f64", {D(-std::numeric_limits<double>::infinity()), lg, b.def(Reg::pred, "setp.eq.f64", {ax, D(0.0)})});
  lg = b.def(Reg::f64, "selp.f64", {ax, lg, b.def(Reg::pred, "setp.eq.f64", {ax, D(std::numeric_limits<double>::infinity())})});
  std::string yd = b.def(Reg::f64, "cvt.f64.f32", {y});
  std::string mag = exp64_to_f32(b, b.def(Reg::f64, "mul.rn.f64", {yd, lg}));  // NaN x: log64 gives NaN
  mag = b.def(Reg::f32, "selp.f32", {x, mag, b.def(Reg::pred, "setp.nan.f32", {x, x})});
  // sign: x < 0 and y an odd integer (|y| >= 2^24 is even; inf counts as even)
  std::string y_int = b.def(Reg::pred, "setp.eq.f32", {b.def(Reg::f32, "cvt.rni.f32.f32", {y}), y});
  std::string y_small = b.def(Reg::pred, "setp.lt.f32", {b.def(Reg::f32, "abs.f32", {y}), F(16777216.0f)});
  std::string y_low = b.def(Reg::b32, "cvt.rzi.s32.f32", {b.def(Reg::f32, "selp.f32", {y, F(0.0f), y_small})});
  std::string y_odd = b.def(Reg::pred, "setp.ne.s32", {b.def(Reg::b32, "and.b32", {y_low, "1"}), "0"});
  std::string x_neg = b.def(Reg::pred, "setp.lt.f32", {x, F(0.0f)});
  std::string x_sign = b.def(Reg::pred, "setp.lt.s32", {bits_of(b, x), "0"});  // -0 too: pow(-0, -1) = -inf
  std::string flip = b.def(Reg::pred, "and.pred", {x_sign, b.def(Reg::pred, "and.pred", {y_int, y_odd})});
  std::string v = b.def(Reg::f32, "selp.f32", {b.def(Reg::f32, "neg.f32", {mag}), mag, flip});
  // negative finite x with a non-integer y -> NaN (y NaN: NaN already; pow(-inf, y) is
  // +inf / +0 by the product)
  std::string x_finite = b.def(Reg::pred, "setp.ne.f32", {x, F(-std::numeric_limits<float>::infinity())});
  std::string bad = b.def(Reg::pred, "and.pred", {b.def(Reg::pred, "and.pred", {x_neg, x_finite}), b.def(Reg::pred, "not.pred", {y_int})});
  v = b.def(Reg::f32, "selp.f32", {F(std::numeric_limits<float>::quiet_NaN()), v, bad});
  // pow(x, ±0) = 1, pow(1, y) = 1, pow(-1, ±inf) = 1 (even for NaN operands)
  std::string one = pred_or(b, b.def(Reg::pred, "setp.eq.f32", {y, F(0.0f)}), b.def(Reg::pred, "setp.eq.f32", {x, F(1.0f)}));
  std::string minus_one_inf = b.def(Reg::pred, "and.pred", {b.def(Reg::pred, "setp.eq.f32", {x, F(-1.0f)}),
                                                             b.def(Reg::pred, "setp.eq.f32", {b.def(Reg::f32, "abs.f32", {y}), F(std::numeric_limits<float>::infinity())})});
  return b.def(Reg::f32, "selp.f32", {F(1.0f), v, pred_or(b, one, minus_one_inf)});
}

std::string fmod_f32(Builder& b, const std::string& x, const std::string& y) {
  // C fmod, exact: r = |x|; while r >= |y|: r -= the largest |y| * 2^k <= r (exact by
  // Sterbenz; in f64, where every f32 is normal); the result takes x's sign.
  std::string result = b.reg(Reg::f32);
  std::string done = b.label("fmod_done"), loop = b.label("fmod_loop"), end = b.label("fmod_end");
  std::string ax = b.def(Reg::f32, "abs.f32", {x});
  std::string ay = b.def(Reg::f32, "abs.f32", {y});
  b.op("mov.f32", {result, F(std::numeric_limits<float>::quiet_NaN())});
  std::string special = pred_or(b, b.def(Reg::pred, "setp.nan.f32", {x, y}),
                                pred_or(b, b.def(Reg::pred, "setp.eq.f32", {ay, F(0.0f)}),
                                        b.def(Reg::pred, "setp.eq.f32", {ax, F(std::numeric_limits<float>::infinity())})));
  b.branch_if(special, false, done);
  b.op("mov.f32", {result, x});
  b.branch_if(b.def(Reg::pred, "setp.lt.f32", {ax, ay}), false, done);
  std::string r = b.def(Reg::f64, "cvt.f64.f32", {ax});
  std::string yd = b.def(Reg::f64, "cvt.f64.f32", {ay});
  std::string ey = b.def(Reg::b64, "shr.u64", {b.def(Reg::b64, "mov.b64", {yd}), "52"});
  b.place(loop);
  b.branch_if(b.def(Reg::pred, "setp.lt.f64", {r, yd}), false, end);
  std::string k = b.def(Reg::b64, "sub.s64", {b.def(Reg::b64, "shr.u64", {b.def(Reg::b64, "mov.b64", {r}), "52"}), ey});
  std::string t = b.def(Reg::f64, "mul.rn.f64", {yd, pow2_64(b, k)});
  t = b.def(Reg::f64, "selp.f64", {b.def(Reg::f64, "mul.rn.f64", {t, D(0.5)}), t, b.def(Reg::pred, "setp.gt.f64", {t, r})});
  b.op("sub.rn.f64", {r, r, t});
  b.jump(loop);
  b.place(end);
  std::string rf = bits_of(b, b.def(Reg::f32, "cvt.rn.f32.f64", {r}));
  std::string sign = b.def(Reg::b32, "and.b32", {bits_of(b, x), "0x80000000"});
  b.op("mov.b32", {result, b.def(Reg::b32, "or.b32", {rf, sign})});
  b.place(done);
  return result;
}

}  // namespace moat::jit::ptx
