#include <cmath>

#include "ir/text.h"
#include "support/strings.h"

namespace moat::ir {

namespace {

std::string print_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  std::string s = format_float(v);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string print_attr(const AttrValue& value) {
  struct Printer {
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return print_float(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return quoted(v); }
    std::string operator()(const std::vector<int64_t>& v) const { return "[" + join(v, ", ") + "]"; }
    std::string operator()(const std::vector<double>& v) const {
      std::string out = "[";
      for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + print_float(v[i]);
      return out + "]";
    }
  };
  return std::visit(Printer{}, value);
}

}  // namespace

std::string print(const Graph& graph) {
  std::string out = "graph " + graph.name + "(" + join(graph.symbols, ", ") + ") {\n";
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    out += cat("  %", i, " = ", op_name(node.op), "(");
    for (size_t j = 0; j < node.operands.size(); ++j) out += cat(j ? ", " : "", "%", node.operands[j]);
    out += ")";
    if (!node.attrs.empty()) {
      out += " {";
      bool first = true;
      for (const auto& [key, value] : node.attrs) {
        out += (first ? "" : ", ") + key + " = " + print_attr(value);
        first = false;
      }
      out += "}";
    }
    out += " : " + to_string(node.type) + "\n";
  }
  out += "  return";
  for (size_t i = 0; i < graph.outputs.size(); ++i) out += cat(i ? ", " : " ", "%", graph.outputs[i]);
  return out + "\n}\n";
}

}  // namespace moat::ir
