// Kernel IR -> Kernel IR rewrites a target needs before it is printed (STYLE.md rule 2:
// legalise, then print; a printer never rewrites).
#pragma once

#include "jit/kir.h"

namespace moat::jit {

// Every vector value becomes one scalar per lane: vector lets / vars become `name_lN`,
// vector loads and stores become per-lane element accesses, dot4 lanes sums of 4
// products, horizontal reductions trees, extracts pick a lane (a dynamic lane: a select
// chain). Runs after `legalize_numerics`. The result has no vector types (targets whose
// printers are scalar: C-like, PTX).
Kernel scalarize(const Kernel& kernel);

// `dequant`, `qscale`, `qdot` and `quantize` become loads, stores and arithmetic, from
// the rules of jit/block_formats.h (vector nodes stay vectors: run it before
// `scalarize`). Every target runs it first; printers never see those nodes.
Kernel legalize_numerics(const Kernel& kernel);

// Whether any expression of the kernel has more than one lane.
bool has_vectors(const Kernel& kernel);

}  // namespace moat::jit
