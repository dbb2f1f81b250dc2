#include "ir/verify.h"

#include <algorithm>

#include "ir/infer.h"
#include "support/error.h"

namespace moat::ir {

void verify(const Graph& graph) {
  auto declared = [&](const Shape& shape) -> const Dim* {
    for (const Dim& d : shape) {
      if (!d.is_static() && std::find(graph.symbols.begin(), graph.symbols.end(), d.symbol) == graph.symbols.end())
        return &d;
      if (d.is_static() && d.value < 0) return &d;
    }
    return nullptr;
  };
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    NodeId id = static_cast<NodeId>(i);
    auto fail = [&](const std::string& what) { user_error("graph ", graph.name, ": ", describe(graph, id), ": ", what); };
    for (NodeId operand : node.operands)
      if (operand < 0 || operand >= id) fail(cat("operand %", operand, " is not defined before this node"));
    if (const Dim* bad = declared(node.type.shape))
      fail(bad->is_static() ? cat("negative dimension ", bad->value) : cat("undeclared symbol ", bad->symbol));
    TensorType inferred;
    try {
      inferred = infer_type(graph, node);
    } catch (const UserError& e) {
      fail(e.what());
    }
    if (!(inferred == node.type))
      fail(cat("result type is ", to_string(node.type), " but the operands give ", to_string(inferred)));
  }
  if (graph.outputs.empty()) user_error("graph ", graph.name, ": has no outputs");
  for (NodeId out : graph.outputs)
    if (out < 0 || static_cast<size_t>(out) >= graph.nodes.size())
      user_error("graph ", graph.name, ": output %", out, " does not exist");
}

}  // namespace moat::ir
