#include "ir/interpreter.h"

#include <cmath>
#include <limits>
#include <optional>

#include "ir/builder.h"
#include "ir/expand.h"
#include "ir/interpreter_ops.h"
#include "ir/verify.h"
#include "support/error.h"

namespace moat::ir {

namespace {

using interp::Ctx;

std::string tensor_text(const HostTensor& t) {
  return cat(dtype_name(t.dtype()), "[", join(t.shape(), ", "), "]");
}

// Binds every input / param to its tensor and returns the symbol values: the explicit
// ones, then each symbolic dimension of a bound tensor in node order.
SymbolValues bind_symbols(const Graph& graph, const Bindings& bindings) {
  struct Known {
    int64_t value;
    std::string from;
  };
  std::map<std::string, Known> known;
  for (const auto& [name, value] : bindings.symbols) {
    if (value < 0) user_error("graph ", graph.name, ": symbol ", name, " = ", value, " is negative");
    known[name] = Known{value, "the explicit symbol values"};
  }
  for (const Node& node : graph.nodes) {
    if (node.op != Op::input && node.op != Op::param) continue;
    const std::string& name = attr_string(node, "name");
    const char* kind = node.op == Op::input ? "input" : "param";
    auto it = bindings.tensors.find(name);
    if (it == bindings.tensors.end())
      user_error("graph ", graph.name, ": ", kind, " ", quoted(name), " (", to_string(node.type),
                 ") has no tensor bound to it");
    const HostTensor& t = it->second;
    auto mismatch = [&](const std::string& why) {
      user_error("graph ", graph.name, ": ", kind, " ", quoted(name), " is declared ", to_string(node.type),
                 " but bound to ", tensor_text(t), why);
    };
    if (t.dtype() != node.type.dtype || t.shape().size() != node.type.shape.size()) mismatch("");
    for (size_t d = 0; d < t.shape().size(); ++d) {
      const Dim& dim = node.type.shape[d];
      int64_t actual = t.shape()[d];
      if (dim.is_static()) {
        if (dim.value != actual) mismatch("");
        continue;
      }
      auto k = known.find(dim.symbol);
      if (k == known.end())
        known[dim.symbol] = Known{actual, cat(kind, " ", quoted(name))};
      else if (k->second.value != actual)
        mismatch(cat(" (", dim.symbol, " = ", actual, " here, but ", k->second.value, " from ", k->second.from, ")"));
    }
  }
  SymbolValues out;
  for (const auto& [name, k] : known) out[name] = k.value;
  return out;
}

}  // namespace

HostTensor evaluate_constant(const Node& node, const std::vector<int64_t>& shape) {
  const DType t = node.type.dtype;
  const int64_t n = interp::product(shape);
  const auto& values = attr_floats(node, "value");
  auto value = [&](int64_t i) { return values[values.size() == 1 ? 0 : static_cast<size_t>(i)]; };
  if (is_float(t)) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(value(i));
    return HostTensor::from_f32(shape, v, t);
  }
  // Integers: truncated toward zero and saturated to the dtype's range; bool: != 0.
  double lo = t == DType::i32 ? INT32_MIN : t == DType::i8 ? INT8_MIN : t == DType::u8 ? 0.0 : -HUGE_VAL;
  double hi = t == DType::i32 ? INT32_MAX : t == DType::i8 ? INT8_MAX : t == DType::u8 ? UINT8_MAX : HUGE_VAL;
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double x = value(i);
    v[static_cast<size_t>(i)] = t == DType::boolean ? x != 0.0 : saturating_to_i64(x < lo ? lo : x > hi ? hi : x);
  }
  return HostTensor::from_i64(shape, v, t);
}

namespace {

HostTensor eval_source(const Ctx& c, const Bindings& bindings) {
  const Node& node = c.node;
  const DType t = c.out_dtype();
  const int64_t n = interp::product(c.out_shape);
  switch (node.op) {
    case Op::input:
    case Op::param:
      return bindings.tensors.at(attr_string(node, "name"));  // shares or borrows: no copy
    case Op::constant:
      return evaluate_constant(node, c.out_shape);
    case Op::iota: {
      std::vector<int64_t> v(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
      return HostTensor::from_i64(c.out_shape, v, t);
    }
    default:
      break;
  }
  throw InternalError("eval_source: not a source");
}

// A composite runs as its expansion: a subgraph whose inputs are the operands.
HostTensor eval_composite(const Ctx& c, const SymbolValues& symbols) {
  Graph sub;
  sub.name = cat(c.graph.name, ".", op_name(c.node.op));
  sub.symbols = c.graph.symbols;
  Builder b(sub);
  Bindings args;
  args.symbols = symbols;
  std::vector<NodeId> operands;
  for (size_t i = 0; i < c.node.operands.size(); ++i) {
    std::string name = cat("arg", i);
    operands.push_back(b.input(name, c.graph.type(c.node.operands[i])));
    args.tensors.emplace(name, c.arg(i));
  }
  b.output(expand_composite(b, c.node, operands));
  try {
    return interpret(sub, args).at(0);
  } catch (const UserError& e) {
    c.fail("in its expansion: ", e.what());
  }
}

HostTensor eval(const Ctx& c, const Bindings& bindings, const SymbolValues& symbols) {
  switch (op_kind(c.node.op)) {
    case OpKind::Source: return eval_source(c, bindings);
    case OpKind::Unary:
    case OpKind::Binary:
    case OpKind::Ternary: return interp::eval_elementwise(c);
    case OpKind::Reduce: return interp::eval_reduce(c);
    case OpKind::Matmul: return interp::eval_matmul(c);
    case OpKind::Gather: return interp::eval_gather(c);
    case OpKind::Update: return interp::eval_write_rows(c);
    case OpKind::View: return interp::eval_view(c);
    case OpKind::Cast: return interp::eval_cast(c);
    case OpKind::TopK: return c.node.op == Op::topk ? interp::eval_topk(c) : interp::eval_kth_largest(c);
    case OpKind::Composite: return eval_composite(c, symbols);
  }
  throw InternalError(cat("interpreter: unhandled op ", op_name(c.node.op)));
}

}  // namespace

std::vector<HostTensor> interpret(const Graph& graph, const Bindings& bindings) {
  verify(graph);
  const SymbolValues symbols = bind_symbols(graph, bindings);
  const size_t count = graph.nodes.size();

  // A value is dropped after its last user (outputs are kept).
  std::vector<size_t> last_use(count);
  for (size_t i = 0; i < count; ++i) {
    last_use[i] = i;
    for (NodeId o : graph.nodes[i].operands) last_use[static_cast<size_t>(o)] = i;
  }
  for (NodeId o : graph.outputs) last_use[static_cast<size_t>(o)] = std::numeric_limits<size_t>::max();

  std::vector<std::optional<HostTensor>> values(count);
  for (size_t i = 0; i < count; ++i) {
    const Node& node = graph.nodes[i];
    const NodeId id = static_cast<NodeId>(i);
    std::vector<int64_t> shape;
    try {
      shape = resolve(node.type.shape, symbols);
    } catch (const UserError& e) {
      user_error("graph ", graph.name, ": ", describe(graph, id), ": ", e.what());
    }
    std::vector<const HostTensor*> args;
    for (NodeId o : node.operands) args.push_back(&*values[static_cast<size_t>(o)]);
    Ctx c{graph, id, node, std::move(shape), std::move(args)};
    HostTensor v = eval(c, bindings, symbols);
    MOAT_INTERNAL_CHECK(v.dtype() == node.type.dtype && v.shape() == c.out_shape, describe(graph, id),
                        " produced ", tensor_text(v), " for ", to_string(node.type));
    values[i] = std::move(v);
    for (NodeId o : node.operands)
      if (last_use[static_cast<size_t>(o)] == i) values[static_cast<size_t>(o)].reset();
    if (last_use[i] == i) values[i].reset();
  }
  std::vector<HostTensor> out;
  for (NodeId o : graph.outputs) out.push_back(*values[static_cast<size_t>(o)]);
  return out;
}

}  // namespace moat::ir
