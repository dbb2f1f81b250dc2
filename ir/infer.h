// Result-type inference and operand checking for one node: the rules of ops.h as code.
#pragma once

#include "ir/graph.h"

namespace moat::ir {

// Checks `node` (operand count, attribute schema, operand dtypes and shapes) against
// the nodes of `graph` it refers to and returns its result type. For ops that take a
// declared type (op_takes_declared_type) node.type is that declaration and is checked.
// Throws UserError describing the mismatch (without naming the node: callers add that).
TensorType infer_type(const Graph& graph, const Node& node);

// Numpy broadcasting of two shapes; nullopt when they do not broadcast.
std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b);

// Normalises a possibly negative axis for a tensor of `rank`; throws UserError when out
// of range.
int64_t normalise_axis(int64_t axis, size_t rank);

}  // namespace moat::ir
