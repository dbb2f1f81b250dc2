// Kernel IR -> Kernel IR rewrites a target needs before it is printed (STYLE.md rule 2:
// legalise, then print; a printer never rewrites).
#pragma once

#include "jit/kir.h"

namespace moat::jit {

// Every vector value becomes one scalar per lane: vector lets / vars become `name_lN`,
// vector loads and stores become per-lane element accesses (table loads too), dot4 lanes sums of 4
// products, horizontal reductions trees, extracts pick a lane (a dynamic lane: a select
// chain). Runs after `legalize_numerics`. The result has no vector types (targets whose
// printers are scalar: C-like, PTX).
Kernel scalarize(const Kernel& kernel);

// What a target converts itself, exactly as support/half.h does (everything else is
// written out by legalize_numerics).
struct NumericsOptions {
  bool native_f16 = false;   // f16 <-> f32 (LLVM `half`, PTX cvt.rn.f16.f32 / cvt.f32.f16)
  bool native_math = true;   // exp, log, sin, cos, tanh, pow, f32 rem (libm, OpenCL / HIP built-ins)
  bool native_dot4_words = false;  // dot4_words (PTX dp4a.u32.s32)
};

// `dequant`, `qscale`, `qdot` and `quantize` become loads, stores and arithmetic, from
// the rules of jit/block_formats.h (and `dot4_words`, where the target has no such
// instruction, shifts, masks and products); then every cast from or to a narrow float the
// target does not convert natively becomes integer arithmetic on its bits
// (jit/float_formats.h), and without native math the math functions become
// jit/math_functions.h's. Vector nodes stay vectors: run it before `scalarize`. Every
// target runs it first; printers never see those nodes or conversions.
Kernel legalize_numerics(const Kernel& kernel, const NumericsOptions& options = {});

// Index arithmetic in 32 bits wherever the kernel's shapes allow (DESIGN.md: "index
// arithmetic is 32-bit wherever sizes allow"). The range of every integer expression
// follows from the kernel itself: constants, the launch grid (group_id, item_id), loop
// bounds, `let`s, narrow integer types and constant tables. An i64 computation whose
// every intermediate value lies in i32 is computed in i32 and widened where an i64 is
// wanted; a division or remainder of a non-negative value by a positive constant
// becomes a shift or mask (powers of two) or a multiply-high and a shift (BinaryOp::mulhi)
// — never a 64-bit division. Values and types of every statement are unchanged. Runs
// after `legalize_numerics` (its block arithmetic is narrowed too), for targets whose
// integer units are 32-bit (Target::index_bits).
Kernel narrow_index_arithmetic(const Kernel& kernel);

// Whether any expression of the kernel has more than one lane.
bool has_vectors(const Kernel& kernel);

}  // namespace moat::jit
