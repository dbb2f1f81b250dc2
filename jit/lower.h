// Lowering: a Tensor IR graph, specialised to concrete symbol values, becomes a plan of
// buffers and Kernel IR kernels in launch order.
//
// Composites are expanded first (ir/expand.h), except attention, which has kernels of its
// own (lower_attention.cpp: streaming, the key count a run-time value). Then every node is either
// materialised (it gets a buffer: sources, graph outputs, reductions, matmuls, top-k,
// concat, and elementwise values used more than once or needed contiguous) or inlined:
// elementwise ops, casts, views and gathers become index arithmetic and math inside
// the kernel of the materialised node that consumes them, so an elementwise chain is
// fused into its consumer (a reduction, a matmul operand, an output). A reshape of a
// materialised buffer is the same buffer.
//
// Kernels follow the reference interpreter's meaning (ir/interpreter.h) with these
// documented differences, all because a kernel cannot stop with an error:
//   - an out-of-range gather / take_along index is clamped to the table
//   - an integer division by zero gives 0
//   - float sums may be accumulated in another order (vector lanes, tiles): results
//     agree within the f32 tolerance of the conformance suite, not bit for bit.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "jit/kir.h"
#include "jit/schedule.h"

namespace moat::jit {

struct PlanBuffer {
  enum class Role : uint8_t { input, param, constant, intermediate, output };
  Role role = Role::intermediate;
  std::string name;              // the bound name of an input / param; else a label
  ir::DType dtype = ir::DType::f32;
  std::vector<int64_t> shape;
  int64_t bytes = 0;
  std::vector<uint8_t> data;     // a constant's contents, in the dtype's encoding
  int alias_of = -1;             // >= 0: the same memory as that buffer (a reshape)
  // write_rows updated input `alias_of` in place: as an output, the input's own buffer
  // (state such as a KV cache that stays on the device), not a copy.
  bool in_place = false;
};

struct PlanKernel {
  Kernel kernel;
  std::vector<int> args;  // plan buffer of each global buffer parameter, in ABI order
};

struct Plan {
  std::vector<PlanBuffer> buffers;
  std::vector<PlanKernel> kernels;  // in launch order
  std::vector<int> outputs;         // one buffer per graph output

  // The buffer whose memory buffer `b` is: itself, or the end of its alias_of chain.
  int root_of(int b) const {
    while (buffers[static_cast<size_t>(b)].alias_of >= 0) b = buffers[static_cast<size_t>(b)].alias_of;
    return b;
  }
};

// What the caller knows of its weights and the graph does not say.
struct LowerOptions {
  // Whether float weight `name` may be read from a copy in another layout (the CPU's
  // tiles of 16 rows, jit/weight_packing.h): yes where the copy takes the place of the
  // weight's resident bytes (a file-mapped weight, whose pages go), no where both would
  // stay in memory (a weight built in memory by the loader). Unset: every weight may.
  std::function<bool(const std::string& name)> may_copy;
};

// UserError when a symbol is unbound or a shape does not fit; InternalError for an op
// the lowering does not handle (a bug: every primitive is lowered).
Plan lower(const ir::Graph& graph, const ir::SymbolValues& symbols, const Schedule& schedule,
           const LowerOptions& options = {});

}  // namespace moat::jit
