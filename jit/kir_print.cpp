// Stable text of a kernel: golden tests and kernel cache keys depend on it, so the
// format changes only on purpose. Expressions print nested, statements one per line.
#include <sstream>

#include "jit/kir.h"
#include "support/error.h"

namespace moat::jit {

namespace {

std::string number(double v) {
  std::ostringstream s;
  s.precision(9);
  s << v;
  std::string text = s.str();
  if (text.find_first_of(".einf") == std::string::npos) text += ".0";
  return text;
}

class Printer {
 public:
  explicit Printer(const Kernel& k) : k_(k) {}

  std::string expr(const Node& n) const {
    switch (n.kind) {
      case NodeKind::constant:
        if (is_float(n.type.scalar)) return type_name(n.type) + " " + number(n.f);
        return type_name(n.type) + " " + std::to_string(n.i);
      case NodeKind::scalar_arg: return "$" + k_.scalars.at(n.i).name;
      case NodeKind::ref: return "%" + n.name;
      case NodeKind::builtin: return std::string(builtin_name(static_cast<Builtin>(n.op))) + "(" + std::to_string(n.i) + ")";
      case NodeKind::unary: return std::string(unary_name(static_cast<UnaryOp>(n.op))) + "(" + expr(*n.args[0]) + ")";
      case NodeKind::binary:
        return std::string(binary_name(static_cast<BinaryOp>(n.op))) + "(" + expr(*n.args[0]) + ", " + expr(*n.args[1]) + ")";
      case NodeKind::fma: return "fma(" + expr(*n.args[0]) + ", " + expr(*n.args[1]) + ", " + expr(*n.args[2]) + ")";
      case NodeKind::select:
        return "select(" + expr(*n.args[0]) + ", " + expr(*n.args[1]) + ", " + expr(*n.args[2]) + ")";
      case NodeKind::cast: return "cast." + type_name(n.type) + "(" + expr(*n.args[0]) + ")";
      case NodeKind::bitcast: return "bitcast." + type_name(n.type) + "(" + expr(*n.args[0]) + ")";
      case NodeKind::broadcast: return "broadcast." + type_name(n.type) + "(" + expr(*n.args[0]) + ")";
      case NodeKind::concat: return "concat." + type_name(n.type) + "(" + expr(*n.args[0]) + ", " + expr(*n.args[1]) + ")";
      case NodeKind::extract: return "extract(" + expr(*n.args[0]) + ", " + expr(*n.args[1]) + ")";
      case NodeKind::reduce:
        return "reduce." + std::string(reduce_name(static_cast<ReduceOp>(n.op))) + "(" + expr(*n.args[0]) + ")";
      case NodeKind::subgroup_reduce:
        return "subgroup.reduce." + std::string(reduce_name(static_cast<ReduceOp>(n.op))) +
               (n.i > 0 ? "." + std::to_string(n.i) : std::string()) + "(" + expr(*n.args[0]) + ")";
      case NodeKind::dot4_words:
        return "dot4.words(" + expr(*n.args[0]) + ", " + expr(*n.args[1]) + ", " + expr(*n.args[2]) + ")";
      case NodeKind::load: return "load." + type_name(n.type) + " %" + k_.buffers.at(n.i).name + "[" + expr(*n.args[0]) + "]";
      case NodeKind::table_load:
        return "table." + type_name(n.type) + " %" + k_.tables.at(n.i).name + "[" + expr(*n.args[0]) + "]";
      case NodeKind::dequant:
        return "dequant." + std::string(ir::dtype_name(k_.buffers.at(n.i).dtype)) + "." + type_name(n.type) + " %" +
               k_.buffers.at(n.i).name + "[" + expr(*n.args[0]) + ", " + expr(*n.args[1]) + "]";
      case NodeKind::dot4:
        return "dot4(" + expr(*n.args[0]) + ", " + expr(*n.args[1]) + ", " + expr(*n.args[2]) + ")";
      case NodeKind::qscale:
        return "qscale." + std::string(ir::dtype_name(k_.buffers.at(n.i).dtype)) + " %" + k_.buffers.at(n.i).name + "[" +
               expr(*n.args[0]) + "]";
      case NodeKind::qdot:
        return "qdot." + std::string(ir::dtype_name(k_.buffers.at(n.j).dtype)) + "." + type_name(n.type) + " %" +
               k_.buffers.at(n.i).name + "[" + expr(*n.args[0]) + "], %" + k_.buffers.at(n.j).name + "[" +
               expr(*n.args[1]) + "]";
      default: break;
    }
    MOAT_INTERNAL_ERROR("kernel IR printer: ", node_kind_name(n.kind), " is not an expression");
  }

  void stmt(const Node& n, int depth) {
    std::string pad(static_cast<size_t>(depth) * 2, ' ');
    switch (n.kind) {
      case NodeKind::block:
        for (const NodeRef& s : n.body) stmt(*s, depth);
        return;
      case NodeKind::let: out_ << pad << "%" << n.name << " = " << expr(*n.args[0]) << "\n"; return;
      case NodeKind::var: out_ << pad << "var %" << n.name << " = " << expr(*n.args[0]) << "\n"; return;
      case NodeKind::assign: out_ << pad << "%" << n.name << " := " << expr(*n.args[0]) << "\n"; return;
      case NodeKind::store:
        out_ << pad << "store %" << k_.buffers.at(n.i).name << "[" << expr(*n.args[0]) << "], " << expr(*n.args[1]) << "\n";
        return;
      case NodeKind::for_loop:
        out_ << pad << "for %" << n.name << " = " << expr(*n.args[0]) << " to " << expr(*n.args[1]) << " step "
             << expr(*n.args[2]) << " {\n";
        for (const NodeRef& s : n.body) stmt(*s, depth + 1);
        out_ << pad << "}\n";
        return;
      case NodeKind::if_then:
        out_ << pad << "if " << expr(*n.args[0]) << " {\n";
        for (const NodeRef& s : n.body) stmt(*s, depth + 1);
        if (!n.else_body.empty()) {
          out_ << pad << "} else {\n";
          for (const NodeRef& s : n.else_body) stmt(*s, depth + 1);
        }
        out_ << pad << "}\n";
        return;
      case NodeKind::barrier: out_ << pad << "barrier\n"; return;
      case NodeKind::load_vector:
        out_ << pad << "%" << n.name << "_l0.." << n.type.lanes - 1 << " = load.vector." << type_name(n.type) << " %"
             << k_.buffers.at(n.i).name << "[" << expr(*n.args[0]) << "]\n";
        return;
      case NodeKind::quantize:  // the value, or (scalar targets) its 32 lanes
        out_ << pad << "quantize." << ir::dtype_name(k_.buffers.at(n.i).dtype) << " %" << k_.buffers.at(n.i).name << "[" << expr(*n.args[0]) << "], ";
        for (size_t a = 1; a < n.args.size(); ++a) out_ << (a > 1 ? ", " : "") << expr(*n.args[a]);
        out_ << "\n";
        return;
      default: break;
    }
    MOAT_INTERNAL_ERROR("kernel IR printer: ", node_kind_name(n.kind), " is not a statement");
  }

  std::string run() {
    out_ << "kernel " << k_.name << "(";
    for (size_t p = 0; p < k_.params.size(); ++p) {
      if (p) out_ << ", ";
      const Param& param = k_.params[p];
      if (param.is_buffer) {
        const BufferDecl& b = k_.buffers[param.index];
        out_ << "%" << b.name << ": global " << (b.written ? "" : "readonly ") << ir::dtype_name(b.dtype) << "["
             << b.elements << "]";
      } else {
        out_ << "$" << k_.scalars[param.index].name << ": " << scalar_name(k_.scalars[param.index].scalar);
      }
    }
    out_ << ")\n  grid groups=[" << k_.groups[0] << ", " << k_.groups[1] << ", " << k_.groups[2] << "] items=["
         << k_.items[0] << ", " << k_.items[1] << ", " << k_.items[2] << "]\n";
    for (const BufferDecl& b : k_.buffers)
      if (b.space == Space::local) out_ << "  local %" << b.name << ": " << ir::dtype_name(b.dtype) << "[" << b.elements << "]\n";
    for (const TableDecl& t : k_.tables) {  // every value: the text names the kernel (its hash)
      out_ << "  table %" << t.name << ": " << scalar_name(t.scalar) << "[" << t.values.size() << "] = {";
      for (size_t v = 0; v < t.values.size(); ++v) out_ << (v ? ", " : "") << t.values[v];
      out_ << "}\n";
    }
    if (k_.body) stmt(*k_.body, 1);
    return out_.str();
  }

 private:
  const Kernel& k_;
  std::ostringstream out_;
};

}  // namespace

std::string print(const Kernel& k) { return Printer(k).run(); }

}  // namespace moat::jit
