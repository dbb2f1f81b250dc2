// Conversions and float min / max for the PTX emitter (contracts in emit_ptx_numeric.h). Arithmetic that must round like the LLVM emitter uses explicit
// .rn (which also keeps ptxas from contracting a*b+c into an fma); nothing flushes
// subnormals.
#include "jit/emit_ptx_numeric.h"

#include <iterator>
#include <limits>

#include "support/error.h"

namespace moat::jit::ptx {

namespace {

std::string F(float v) { return f32_imm(v); }

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
    case Scalar::f64: return b.def(Reg::f32, "cvt.rn.f32.f64", {v});
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
    case Scalar::f64: return b.def(Reg::f64, "cvt.f64.f32", {v});
  }
  MOAT_INTERNAL_ERROR("ptx emitter: no conversion to ", scalar_name(s));
}

std::string pred_or(Builder& b, const std::string& p, const std::string& q) { return b.def(Reg::pred, "or.pred", {p, q}); }

// Conversions of the math rules' f64 intermediates: from and to f32 and the integers
// (to integers: truncated and saturated by cvt.rzi, NaN -> 0 as kir.h says).
std::string f64_convert(Builder& b, const std::string& v, Scalar from, Scalar to) {
  if (from == Scalar::f64) {
    if (to == Scalar::f32) return b.def(Reg::f32, "cvt.rn.f32.f64", {v});
    std::string nan = b.def(Reg::pred, "setp.nan.f64", {v, v});
    if (to == Scalar::i64) return b.def(Reg::b64, "selp.b64", {"0", b.def(Reg::b64, "cvt.rzi.s64.f64", {v}), nan});
    if (to == Scalar::i32) return b.def(Reg::b32, "selp.b32", {"0", b.def(Reg::b32, "cvt.rzi.s32.f64", {v}), nan});
  } else {
    if (from == Scalar::f32) return b.def(Reg::f64, "cvt.f64.f32", {v});
    if (from == Scalar::i64) return b.def(Reg::f64, "cvt.rn.f64.s64", {v});
    if (from == Scalar::i32) return b.def(Reg::f64, "cvt.rn.f64.s32", {v});
  }
  MOAT_INTERNAL_ERROR("ptx emitter: no conversion from ", scalar_name(from), " to ", scalar_name(to));
}

}  // namespace

Reg reg_class(Scalar s) {
  switch (s) {
    case Scalar::f32: return Reg::f32;
    case Scalar::f16: case Scalar::bf16: return Reg::b16;
    case Scalar::f8: case Scalar::i8: case Scalar::u8: case Scalar::i32: return Reg::b32;
    case Scalar::i64: return Reg::b64;
    case Scalar::i1: return Reg::pred;
    case Scalar::f64: return Reg::f64;
  }
  MOAT_INTERNAL_ERROR("ptx emitter: unknown scalar type");
}

std::string convert(Builder& b, const std::string& v, Scalar from, Scalar to) {
  if (from == to) return v;
  if (from == Scalar::f64 || to == Scalar::f64) return f64_convert(b, v, from, to);
  if (!is_float(from) && !is_float(to)) return int_convert(b, v, from, to);
  if (from == Scalar::f32 && to == Scalar::f16) return b.def(Reg::b16, "cvt.rn.f16.f32", {v});
  return from_f32(b, to_f32(b, v, from), to);
}

std::string reinterpret(Builder& b, const std::string& v, Scalar from, Scalar to) {
  if (from == Scalar::f64) return b.def(Reg::b64, "mov.b64", {v});
  if (to == Scalar::f64) return b.def(Reg::f64, "mov.b64", {v});
  if (from == Scalar::f32) return bits_of(b, v);
  if (to == Scalar::f32) return float_of(b, v);
  if (to == Scalar::i32) return reg_class(from) == Reg::b16 ? b.def(Reg::b32, "cvt.u32.u16", {v}) : b.def(Reg::b32, "and.b32", {v, "255"});
  if (reg_class(to) == Reg::b16) return b.def(Reg::b16, "cvt.u16.u32", {v});
  return b.def(Reg::b32, "and.b32", {v, "255"});  // f8: its byte, zero-extended in a b32
}

std::string float_max(Builder& b, const std::string& x, const std::string& y, const std::string& t) {
  std::string take_x = pred_or(b, b.def(Reg::pred, "setp.gt." + t, {x, y}), b.def(Reg::pred, "setp.nan." + t, {x, x}));
  return b.def(t == "f64" ? Reg::f64 : Reg::f32, "selp." + t, {x, y, take_x});
}

std::string float_min(Builder& b, const std::string& x, const std::string& y, const std::string& t) {
  std::string take_x = pred_or(b, b.def(Reg::pred, "setp.lt." + t, {x, y}), b.def(Reg::pred, "setp.nan." + t, {x, x}));
  return b.def(t == "f64" ? Reg::f64 : Reg::f32, "selp." + t, {x, y, take_x});
}

}  // namespace moat::jit::ptx
