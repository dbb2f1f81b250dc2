// Graph verifier: every node's operands precede it, its attributes follow the op's
// schema, its stored type equals the inferred one, symbols are declared, outputs exist.
#pragma once

#include "ir/graph.h"

namespace moat::ir {

// Throws UserError "graph NAME: %ID (OP): what is wrong" at the first problem.
void verify(const Graph& graph);

}  // namespace moat::ir
