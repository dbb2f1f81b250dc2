// Kernel IR -> Kernel IR rewrites a target needs before it is printed (STYLE.md rule 2:
// legalise, then print; a printer never rewrites).
#pragma once

#include "jit/kir.h"

namespace moat::jit {

// Every vector value becomes one scalar per lane: vector lets / vars become `name_lN`,
// vector loads and stores become per-lane element accesses, a 32-lane dequant becomes
// 32 one-element dequants, a qdot lane 4 products of one-element dequants, a quantize
// takes its value as 32 scalar operands, horizontal reductions become trees, extracts pick a lane
// (a dynamic lane of a dequant reads that one element; of anything else, a select
// chain). The result has no vector types (targets whose printers are scalar: C-like,
// PTX).
Kernel scalarize(const Kernel& kernel);

// Whether any expression of the kernel has more than one lane.
bool has_vectors(const Kernel& kernel);

}  // namespace moat::jit
