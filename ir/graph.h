// The Tensor IR graph: a list of nodes in topological order (every operand precedes
// its user), the symbolic dimensions it uses, and its outputs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "ir/ops.h"
#include "ir/shape.h"

namespace moat::ir {

using NodeId = int32_t;

using AttrValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>, std::vector<double>>;
using Attrs = std::map<std::string, AttrValue>;

AttrKind attr_kind(const AttrValue& value);

struct Node {
  Op op = Op::input;
  std::vector<NodeId> operands;
  Attrs attrs;
  TensorType type;  // the result
};

struct Graph {
  std::string name = "main";
  std::vector<std::string> symbols;  // symbolic dimension names, declaration order
  std::vector<Node> nodes;           // topological order; NodeId = index
  std::vector<NodeId> outputs;

  const Node& node(NodeId id) const { return nodes.at(static_cast<size_t>(id)); }
  const TensorType& type(NodeId id) const { return node(id).type; }
};

// Typed attribute access for code that runs after verification: a missing or
// mistyped attribute there is a bug (InternalError).
int64_t attr_int(const Node& node, const std::string& key);
double attr_float(const Node& node, const std::string& key);
bool attr_bool(const Node& node, const std::string& key);
const std::string& attr_string(const Node& node, const std::string& key);
const std::vector<int64_t>& attr_ints(const Node& node, const std::string& key);
const std::vector<double>& attr_floats(const Node& node, const std::string& key);

// Where an attention node's optional operands are (-1: absent): q, k, v, q_positions,
// then key_starts, key_bias (in that order, each optional; a bias comes with starts),
// and last, when its attribute "sinks" is true, the per-head sink logits.
struct AttentionOperands {
  int key_starts = -1, key_bias = -1, sinks = -1;
};
AttentionOperands attention_operands(const Node& node);

// "%12 (matmul)": how messages name a node.
std::string describe(const Graph& graph, NodeId id);

}  // namespace moat::ir
