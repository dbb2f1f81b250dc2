// Internal to the reference interpreter (ir/interpreter.cpp): the evaluation of each
// primitive op family, given its operands' values and its resolved result shape.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "support/error.h"

namespace moat::ir::interp {

struct Ctx {
  const Graph& graph;
  NodeId id;
  const Node& node;
  std::vector<int64_t> out_shape;          // the node's type with symbols resolved
  std::vector<const HostTensor*> args;     // operand values

  const HostTensor& arg(size_t i) const { return *args[i]; }
  DType out_dtype() const { return node.type.dtype; }
  // UserError "graph G: %ID (OP): what".
  template <class... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    user_error("graph ", graph.name, ": ", describe(graph, id), ": ", parts...);
  }
};

int64_t product(const std::vector<int64_t>& dims);
// For each element of `out_dims` (row-major), the flat index of the element of
// `in_dims` it reads under numpy broadcasting (dims aligned at the right).
std::vector<int64_t> broadcast_offsets(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims);

HostTensor eval_elementwise(const Ctx& c);  // unary, binary, select
HostTensor eval_reduce(const Ctx& c);
HostTensor eval_matmul(const Ctx& c);
HostTensor eval_gather(const Ctx& c);       // gather, take_along
HostTensor eval_write_rows(const Ctx& c);
HostTensor eval_view(const Ctx& c);         // reshape, permute, slice, concat, broadcast
HostTensor eval_cast(const Ctx& c);
HostTensor eval_topk(const Ctx& c);
HostTensor eval_kth_largest(const Ctx& c);

}  // namespace moat::ir::interp
