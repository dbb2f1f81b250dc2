// exp, log, sin, cos, tanh, pow and f32 remainder as Kernel IR, written once for the
// targets that have no exact enough native function (PTX: ex2.approx / lg2.approx /
// sin.approx are not). legalize_numerics uses them where NumericsOptions::native_math
// is off; every value is lane-wise (any lanes), f32 in and out, with f64 intermediates.
//
// Accuracy (f32 results, no flush to zero; tests/jit/math_functions_test.cpp measures
// them on the CPU against libm):
//   exp        Cody-Waite reduction by ln2 in f32 (fma), degree-7 polynomial, exact
//              scaling by 2^k: ~1 ulp over the whole range, subnormal results included
//   log        in f64: x = m * 2^k, m in [sqrt(1/2), sqrt(2)), atanh series: ~0.5 ulp
//   sin / cos  in f64: reduction by pi/2 in three parts (fma), FreeBSD's __kernel_sindf
//              / __kernel_cosdf: ~1 ulp for |x| < 2^50; beyond that (|x| > ~1e15) the
//              reduction loses the quadrant: the result is only kept within [-1, 1]
//   tanh       Cephes tanhf: polynomial for |x| <= 0.625, 1 - 2 / (exp(2|x|) + 1)
//              beyond: a few ulp
//   pow        exp(y * log|x|) in f64 (~1 ulp), C99 special cases (powf)
//   rem        C fmod, exact: a subtraction loop in f64 (statements, through `emit`)
#pragma once

#include <functional>
#include <vector>

#include "jit/kir.h"

namespace moat::jit {

NodeRef exp_rule(const NodeRef& x, const Binder& bind);
NodeRef log_rule(const NodeRef& x, const Binder& bind);
NodeRef sin_rule(const NodeRef& x, const Binder& bind);
NodeRef cos_rule(const NodeRef& x, const Binder& bind);
NodeRef tanh_rule(const NodeRef& x, const Binder& bind);
NodeRef pow_rule(const NodeRef& x, const NodeRef& y, const Binder& bind);
// fmod(x, y) of scalars: statements computing it go to `emit` (placed before the
// statement being rewritten), `fresh` names their variables; the result is returned.
NodeRef fmod_rule(const NodeRef& x, const NodeRef& y, const Binder& bind,
                  const std::function<void(NodeRef statement)>& emit, const std::function<std::string()>& fresh);

}  // namespace moat::jit
