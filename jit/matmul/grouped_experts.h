// Internal to the two grouped-experts strategies (grouped_experts.cpp,
// grouped_experts_int8.cpp): when a MoE layer's expert matmul is worth grouping.
#pragma once

#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

// CPU, B gathered from a table [E, N, K] by each slot's expert index, one row of A per
// slot, and enough slots per expert (at least 2) to share its rows; the rows of B a
// group dequantises and its slot list fit in a quarter of local memory each.
bool grouped_experts_fit(const Schedule& s, const MatmulShape& mm);

}  // namespace moat::jit::matmul
