// Internal to the PTX emitter: instruction sequences for conversions, float min / max
// and math functions. Each takes operand registers and returns the register holding
// the result. The meaning is the LLVM emitter's (emit_llvm_numeric.h,
// support/half.h), bit for bit where it is a bit manipulation there.
//
// Math accuracy (f32 results, no flush to zero; the conformance tolerance is 1e-4):
//   exp        Cody-Waite reduction by ln2 in f32 (fma), degree-7 polynomial, exact
//              scaling by 2^k: ~1 ulp over the whole range, subnormal results included
//   log        in f64: x = m * 2^k, m in [sqrt(1/2), sqrt(2)), atanh series: ~0.5 ulp
//   sin / cos  in f64: reduction by pi/2 in three parts (fma), FreeBSD's __kernel_sindf
//              / __kernel_cosdf: ~1 ulp for |x| < 2^50; beyond that (|x| > ~1e15) the
//              reduction loses the quadrant: the result is only kept within [-1, 1]
//              (a Payne-Hanek reduction would fix it; rope arguments are < 1e7)
//   tanh       Cephes tanhf: polynomial for |x| <= 0.625, 1 - 2 / (exp(2|x|) + 1)
//              beyond: a few ulp
//   pow        exp(y * log|x|) in f64 (~1 ulp), C99 special cases (powf)
//   rem (f32)  exact fmod (a subtraction loop in f64, at most ~280 steps)
//   sqrt, div, recip: IEEE (sqrt.rn, div.rn, rcp.rn); rsqrt = 1 / sqrt (two roundings,
//   as the LLVM emitter)
// f16 NaNs: cvt.rn.f16.f32 / cvt.f32.f16 give a NaN for a NaN, but its sign and payload
// may differ from support/half.h's (which keeps them); every other f16 value is exact.
#pragma once

#include <string>
#include <vector>

#include "jit/emit_ptx_builder.h"
#include "jit/kir.h"

namespace moat::jit::ptx {

// The register class holding values of scalar type s.
Reg reg_class(Scalar s);

// Numeric conversion between any two scalar types (jit/kir.cpp `cast`).
std::string convert(Builder& b, const std::string& v, Scalar from, Scalar to);

// kir.h's bitcast: f32 <-> i32, or a narrow float's bits <-> i32 (zero-extended).
std::string reinterpret(Builder& b, const std::string& v, Scalar from, Scalar to);

// NaN-propagating max / min of f32: x when x > y (x < y) or x is NaN, else y.
std::string float_max(Builder& b, const std::string& x, const std::string& y);
std::string float_min(Builder& b, const std::string& x, const std::string& y);

std::string exp_f32(Builder& b, const std::string& x);
std::string log_f32(Builder& b, const std::string& x);
std::string sin_f32(Builder& b, const std::string& x);
std::string cos_f32(Builder& b, const std::string& x);
std::string tanh_f32(Builder& b, const std::string& x);
std::string pow_f32(Builder& b, const std::string& x, const std::string& y);
std::string fmod_f32(Builder& b, const std::string& x, const std::string& y);

}  // namespace moat::jit::ptx
