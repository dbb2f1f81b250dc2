// Internal to the PTX emitter: instruction sequences for conversions and float min /
// max. Each takes operand registers and returns the register holding the result. The
// meaning is the LLVM emitter's (emit_llvm_numeric.h), bit for bit. The math functions
// (exp, log, sin, cos, tanh, pow, f32 rem) arrive written out in Kernel IR
// (jit/math_functions.h, with f64 intermediates); sqrt, div, recip are IEEE (sqrt.rn,
// div.rn, rcp.rn), rsqrt = 1 / sqrt (two roundings, as the LLVM emitter).
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

// kir.h's bitcast: f32 <-> i32, f64 <-> i64, or a narrow float's bits <-> i32
// (zero-extended).
std::string reinterpret(Builder& b, const std::string& v, Scalar from, Scalar to);

// NaN-propagating max / min of f32 or f64 (`t`): x when x > y (x < y) or x is NaN, else y.
std::string float_max(Builder& b, const std::string& x, const std::string& y, const std::string& t);
std::string float_min(Builder& b, const std::string& x, const std::string& y, const std::string& t);

}  // namespace moat::jit::ptx
