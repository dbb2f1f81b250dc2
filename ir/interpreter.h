// The reference interpreter: the executable definition of every op of ir/ops.h and the
// oracle of every backend test. Plain loops, no cleverness.
//
// Arithmetic: floats are computed in f32 (every intermediate and accumulator; sums in
// plain index order), integers in int64; each node's result is stored in its own dtype
// (f16 / bf16 results are rounded: that rounding is part of the meaning). Integer
// add / sub / mul / neg / abs wrap around in the node's width; integer div truncates
// toward zero, and a zero divisor is a UserError naming the node.
//
// Op details beyond ops.h:
//   unary      rsqrt(x) = 1 / sqrt(x), recip(x) = 1 / x, sigmoid(x) = 1 / (1 + exp(-x)),
//              silu(x) = x / (1 + exp(-x)), all in f32 (std:: float functions).
//   NaN        max / min / reduce_max propagate NaN (any NaN operand gives NaN);
//              cmp_* with a NaN operand is false; topk ranks NaN above every number
//              (NaNs among themselves by index). An empty reduce_max gives -inf (float)
//              or the dtype's minimum (int); an empty reduce_sum gives 0.
//   cast       decode + encode with the rules of ir/tensor.h: float -> int truncates
//              toward zero and saturates (NaN -> 0), int -> int wraps, int -> float is
//              the nearest float, bool -> 0 / 1, anything -> bool is != 0,
//              quantised / f8 -> float dequantises.
//   constant   the double values are rounded to f32, then to the node's dtype (int
//              dtypes: truncated toward zero and saturated, straight from the double).
//   gather,    an index outside [0, rows) is a UserError naming the node, the index
//   take_along and its position (never undefined behaviour); negative indices too.
//   matmul     out[.., m, n] = sum_k A[.., m, k] * B(k, n) in f32, k ascending, with
//              B(k, n) dequantised row by row (dequantize_row) for a quantised B and
//              fp8(B[n, k]) * scale[n / bn][k / bk] for an f8_e4m3 B with block scales.
//   views      reshape / permute / slice / concat / broadcast copy bytes unchanged
//              (quantised tensors move whole blocks and stay quantised).
//   composites are expanded (ir/expand.h) and the expansion is interpreted: the
//              expansion is the definition.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace moat::ir {

struct Bindings {
  std::map<std::string, HostTensor> tensors;  // inputs and params, by name
  SymbolValues symbols = {};                  // optional explicit symbol values
};

// Runs `graph` (verified first) and returns one tensor per graph output, in order.
// Symbol values come from `bindings.symbols` and from the shapes of the bound inputs
// and params. UserError (naming the input / node) for: a missing binding, a bound
// tensor whose dtype or shape does not fit its declaration, a symbol bound to two
// different values, an unbound symbol, an out-of-range index, integer division by zero.
std::vector<HostTensor> interpret(const Graph& graph, const Bindings& bindings);

// The value of constant node `node` with concrete shape `shape` (the rule above; the
// JIT uses it so that kernels see exactly the interpreter's constants).
HostTensor evaluate_constant(const Node& node, const std::vector<int64_t>& shape);

}  // namespace moat::ir
