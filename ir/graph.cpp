#include "ir/graph.h"

#include "support/error.h"

namespace moat::ir {

AttrKind attr_kind(const AttrValue& value) {
  static constexpr AttrKind kByIndex[] = {AttrKind::Int,    AttrKind::Float,   AttrKind::Bool,
                                          AttrKind::String, AttrKind::IntList, AttrKind::FloatList};
  return kByIndex[value.index()];
}

namespace {
template <class T>
const T& get_attr(const Node& node, const std::string& key) {
  auto it = node.attrs.find(key);
  MOAT_INTERNAL_CHECK(it != node.attrs.end(), op_name(node.op), " has no attribute ", key);
  const T* value = std::get_if<T>(&it->second);
  MOAT_INTERNAL_CHECK(value != nullptr, op_name(node.op), " attribute ", key, " has the wrong kind");
  return *value;
}
}  // namespace

int64_t attr_int(const Node& node, const std::string& key) { return get_attr<int64_t>(node, key); }
double attr_float(const Node& node, const std::string& key) { return get_attr<double>(node, key); }
bool attr_bool(const Node& node, const std::string& key) { return get_attr<bool>(node, key); }

AttentionOperands attention_operands(const Node& node) {
  AttentionOperands a;
  int n = static_cast<int>(node.operands.size());
  if (attr_bool(node, "sinks")) a.sinks = --n;
  if (n > 4) a.key_starts = 4;
  if (n > 5) a.key_bias = 5;
  return a;
}
const std::string& attr_string(const Node& node, const std::string& key) { return get_attr<std::string>(node, key); }
const std::vector<int64_t>& attr_ints(const Node& node, const std::string& key) {
  return get_attr<std::vector<int64_t>>(node, key);
}
const std::vector<double>& attr_floats(const Node& node, const std::string& key) {
  return get_attr<std::vector<double>>(node, key);
}

std::string describe(const Graph& graph, NodeId id) {
  if (id < 0 || static_cast<size_t>(id) >= graph.nodes.size()) return cat("%", id);
  return cat("%", id, " (", op_name(graph.nodes[static_cast<size_t>(id)].op), ")");
}

}  // namespace moat::ir
