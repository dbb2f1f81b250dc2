// The C-like printer: scalar Kernel IR -> C source in a dialect (emit_c_dialect.h).
#include "jit/emit_c.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <sstream>

#include "jit/emit_c_dialect.h"
#include "jit/float_formats.h"
#include "jit/kir_visitor.h"
#include "jit/legalize.h"
#include "support/error.h"

namespace moat::jit {

namespace {

using c_emit::Dialect;

std::string c_type(Scalar s) {
  switch (s) {
    case Scalar::f32: return "float";
    case Scalar::f16: case Scalar::bf16: return "moat_u16";
    case Scalar::f8: case Scalar::u8: return "moat_u8";
    case Scalar::i64: return "moat_i64";
    case Scalar::i32: return "moat_i32";
    case Scalar::i8: return "moat_i8";
    case Scalar::i1: return "bool";
    case Scalar::f64: return "double";  // not produced for these targets (native math)
  }
  return "?";
}

class UsesSubgroups : public Visitor {
 public:
  bool found = false, clustered = false;
  void visit_subgroup_reduce(const Node& n) override {
    found = true;
    clustered = clustered || n.i > 0;
    visit_children(n);
  }
};

class CPrinter {
 public:
  CPrinter(const Kernel& k, const Dialect& d) : k_(k), d_(d) {}

  // The kernel's function (the prelude and helpers come first in a source file).
  std::string run() {
    MOAT_INTERNAL_CHECK(!has_vectors(k_), "kernel ", k_.name, ": the ", d_.name, " printer takes scalar Kernel IR");
    tables();
    out_ << "\n" << d_.kernel_prefix << " " << k_.name << "(";
    for (size_t p = 0; p < k_.params.size(); ++p) {
      if (p) out_ << ", ";
      const Param& param = k_.params[p];
      if (param.is_buffer) {
        const BufferDecl& b = k_.buffers[param.index];
        out_ << d_.global_ptr << (b.written ? "" : "const ") << c_type(storage_scalar(b.dtype)) << "* " << d_.restrict_ptr
             << " " << buffer_name(param.index);
      } else {
        const ScalarDecl& s = k_.scalars[param.index];
        out_ << c_type(s.scalar) << " s_" << s.name;
      }
    }
    out_ << ") {\n";
    for (size_t i = 0; i < k_.buffers.size(); ++i) {
      const BufferDecl& b = k_.buffers[i];
      if (b.space == Space::local)
        out_ << "  " << d_.local_array << c_type(storage_scalar(b.dtype)) << " " << buffer_name(static_cast<int>(i)) << "["
             << b.elements << "];\n";
    }
    for (const NodeRef& s : k_.body->body) stmt(*s, 1);
    out_ << "}\n";
    return out_.str();
  }

 private:
  // Constant tables at file scope, before the kernel (named after it: one source file
  // holds many kernels).
  void tables() {
    for (size_t t = 0; t < k_.tables.size(); ++t) {
      const TableDecl& d = k_.tables[t];
      out_ << "\n" << d_.table_array << c_type(d.scalar) << " " << table_name(static_cast<int64_t>(t)) << "["
           << d.values.size() << "] = {";
      for (size_t v = 0; v < d.values.size(); ++v) {
        out_ << (v ? (v % 16 ? ", " : ",\n  ") : "");
        const int64_t x = d.values[v];
        if (d.scalar == Scalar::i64) out_ << (x == INT64_MIN ? "MOAT_I64_MIN" : "MOAT_I64(" + std::to_string(x) + ")");
        else if (x == INT32_MIN) out_ << "(-2147483647 - 1)";
        else out_ << x;
      }
      out_ << "};\n";
    }
  }

  std::string table_name(int64_t t) const { return "t_" + k_.name + "_" + k_.tables.at(static_cast<size_t>(t)).name; }

  std::string buffer_name(int64_t i) const { return "p_" + k_.buffers.at(static_cast<size_t>(i)).name; }

  // Buffer i as an array of scalar s: the buffer itself, or (a quantised buffer's bytes
  // read as i8 / f16, kir.h) a pointer cast in the buffer's address space.
  std::string access(int64_t i, Scalar s) const {
    const BufferDecl& b = k_.buffers.at(static_cast<size_t>(i));
    if (s == storage_scalar(b.dtype)) return buffer_name(i);
    const std::string_view space = b.space == Space::local ? d_.local_ptr : d_.global_ptr;
    return "((" + std::string(space) + (b.written || b.space == Space::local ? "" : "const ") + c_type(s) + "*)" +
           buffer_name(i) + ")";
  }

  std::string math(std::string_view fn) const { return std::string(fn) + std::string(d_.math_suffix); }

  std::string constant(const Node& n) const {
    const Scalar s = n.type.scalar;
    if (s == Scalar::i1) return n.i ? "true" : "false";
    if (s == Scalar::f32) {
      const float v = static_cast<float>(n.f);
      if (std::isnan(v)) return "MOAT_AS_FLOAT(0x7fc00000u)";
      if (std::isinf(v)) return v > 0 ? "MOAT_AS_FLOAT(0x7f800000u)" : "MOAT_AS_FLOAT(0xff800000u)";
      char buf[48];
      std::snprintf(buf, sizeof buf, "%.9gf", static_cast<double>(v));
      std::string text = buf;
      if (text.find_first_of(".e") == std::string::npos) text.insert(text.size() - 1, ".0");
      return "(" + text + ")";
    }
    if (is_float(s)) MOAT_INTERNAL_ERROR("kernel ", k_.name, ": a ", scalar_name(s), " constant (storage types are cast from f32)");
    if (s == Scalar::i64) {
      if (n.i == INT64_MIN) return "MOAT_I64_MIN";
      return "MOAT_I64(" + std::to_string(n.i) + ")";
    }
    return "((" + c_type(s) + ")" + std::to_string(n.i) + ")";
  }

  // A lane-wise conversion with the rules of kir.h.
  std::string convert(const std::string& x, Scalar from, Scalar to) const {
    if (from == to) return x;
    if (is_narrow_float(from) || is_narrow_float(to))
      MOAT_INTERNAL_ERROR("kernel ", k_.name, ": a cast between ", scalar_name(from), " and ", scalar_name(to),
                          " reached the ", d_.name, " printer (legalize_numerics writes it out)");
    auto to_f32 = [&]() -> std::string { return from == Scalar::f32 ? x : "((float)" + x + ")"; };
    if (to == Scalar::i1) return is_float(from) ? "(" + to_f32() + " != 0.0f)" : "(" + x + " != 0)";
    if (!is_float(from) && !is_float(to)) return "((" + c_type(to) + ")" + x + ")";
    const std::string f = to_f32();
    switch (to) {
      case Scalar::f32: return f;
      case Scalar::i64: return "moat_f2i64(" + f + ")";
      case Scalar::i32: return "moat_f2i32(" + f + ")";
      case Scalar::i8: return "moat_f2i8(" + f + ")";
      case Scalar::u8: return "moat_f2u8(" + f + ")";
      default: break;
    }
    MOAT_INTERNAL_ERROR("kernel ", k_.name, ": no conversion to ", scalar_name(to));
  }

  // kir.h's bitcast: f32 <-> i32, or a narrow float's bits (held as moat_u16 / moat_u8)
  // <-> i32.
  static std::string reinterpret(const std::string& x, Scalar from, Scalar to) {
    if (from == Scalar::f32) return "((moat_i32)MOAT_AS_UINT(" + x + "))";
    if (to == Scalar::f32) return "MOAT_AS_FLOAT(" + x + ")";
    return "((" + c_type(to) + ")" + x + ")";
  }

  std::string unary(const Node& n) const {
    const std::string x = expr(*n.args[0]);
    const bool fp = n.args[0]->type.scalar == Scalar::f32;
    switch (static_cast<UnaryOp>(n.op)) {
      case UnaryOp::neg: return "(-" + x + ")";
      case UnaryOp::abs: return fp ? math("fabs") + "(" + x + ")" : "(" + x + " < 0 ? -" + x + " : " + x + ")";
      case UnaryOp::exp: return math("exp") + "(" + x + ")";
      case UnaryOp::log: return math("log") + "(" + x + ")";
      case UnaryOp::sqrt: return math("sqrt") + "(" + x + ")";
      case UnaryOp::rsqrt: return "(1.0f / " + math("sqrt") + "(" + x + "))";
      case UnaryOp::recip: return "(1.0f / " + x + ")";
      case UnaryOp::sin: return math("sin") + "(" + x + ")";
      case UnaryOp::cos: return math("cos") + "(" + x + ")";
      case UnaryOp::tanh: return math("tanh") + "(" + x + ")";
      case UnaryOp::lnot: return "(!" + x + ")";
      case UnaryOp::isnan: return "(" + x + " != " + x + ")";
      case UnaryOp::rint: return math("rint") + "(" + x + ")";
    }
    MOAT_INTERNAL_ERROR("kernel ", k_.name, ": unknown unary op for ", d_.name);
  }

  std::string binary(const Node& n) const {
    const std::string a = expr(*n.args[0]), b = expr(*n.args[1]);
    const Scalar s = n.args[0]->type.scalar;
    const bool fp = s == Scalar::f32;
    auto infix = [&](const char* op) { return "(" + a + " " + op + " " + b + ")"; };
    switch (static_cast<BinaryOp>(n.op)) {
      case BinaryOp::add: return infix("+");
      case BinaryOp::sub: return infix("-");
      case BinaryOp::mul: return infix("*");
      case BinaryOp::div: return infix("/");
      case BinaryOp::rem: return fp ? math("fmod") + "(" + a + ", " + b + ")" : infix("%");
      case BinaryOp::max: return fp ? "moat_fmax(" + a + ", " + b + ")" : "(" + a + " > " + b + " ? " + a + " : " + b + ")";
      case BinaryOp::min: return fp ? "moat_fmin(" + a + ", " + b + ")" : "(" + a + " < " + b + " ? " + a + " : " + b + ")";
      case BinaryOp::pow: return math("pow") + "(" + a + ", " + b + ")";
      case BinaryOp::land: return s == Scalar::i1 ? infix("&&") : infix("&");
      case BinaryOp::lor: return s == Scalar::i1 ? infix("||") : infix("|");
      case BinaryOp::shl:  // through unsigned: a negative value's shift is undefined in C
        if (s == Scalar::i32) return "((moat_i32)((moat_u32)" + a + " << " + b + "))";
        if (s == Scalar::i64) return "((moat_i64)((moat_u64)" + a + " << " + b + "))";
        return infix("<<");
      case BinaryOp::shr: return infix(">>");
      case BinaryOp::lt: return infix("<");
      case BinaryOp::le: return infix("<=");
      case BinaryOp::eq: return infix("==");
      case BinaryOp::ne: return infix("!=");
      case BinaryOp::mulhi: return "moat_mulhi(" + a + ", " + b + ")";
    }
    MOAT_INTERNAL_ERROR("kernel ", k_.name, ": unknown binary op for ", d_.name);
  }

  std::string expr(const Node& n) const {
    switch (n.kind) {
      case NodeKind::constant: return constant(n);
      case NodeKind::scalar_arg: return "s_" + k_.scalars.at(static_cast<size_t>(n.i)).name;
      case NodeKind::ref: return "v_" + n.name;
      case NodeKind::builtin: {
        const auto b = static_cast<Builtin>(n.op);
        const std::string_view* table = b == Builtin::group_id ? d_.group_id : b == Builtin::item_id ? d_.item_id
                                        : b == Builtin::num_groups ? d_.num_groups : d_.group_size;
        return "((moat_i64)" + std::string(table[n.i]) + ")";
      }
      case NodeKind::unary: return unary(n);
      case NodeKind::binary: return binary(n);
      case NodeKind::fma: return math("fma") + "(" + expr(*n.args[0]) + ", " + expr(*n.args[1]) + ", " + expr(*n.args[2]) + ")";
      case NodeKind::select: return "(" + expr(*n.args[0]) + " ? " + expr(*n.args[1]) + " : " + expr(*n.args[2]) + ")";
      case NodeKind::cast: return convert(expr(*n.args[0]), n.args[0]->type.scalar, n.type.scalar);
      case NodeKind::bitcast: return reinterpret(expr(*n.args[0]), n.args[0]->type.scalar, n.type.scalar);
      case NodeKind::subgroup_reduce: {
        const auto op = static_cast<ReduceOp>(n.op);
        if (n.i > 0)
          return std::string(d_.clustered_reduce) + std::string(reduce_name(op)) + "(" + expr(*n.args[0]) + ", " + std::to_string(n.i) + ")";
        std::string_view fn = op == ReduceOp::add ? d_.subgroup_add : op == ReduceOp::max ? d_.subgroup_max : d_.subgroup_min;
        return std::string(fn) + "(" + expr(*n.args[0]) + ")";
      }
      case NodeKind::load: return access(n.i, n.type.scalar) + "[" + expr(*n.args[0]) + "]";
      case NodeKind::table_load: return table_name(n.i) + "[" + expr(*n.args[0]) + "]";
      default: break;
    }
    MOAT_INTERNAL_ERROR("kernel ", k_.name, ": the ", d_.name, " printer does not handle ", node_kind_name(n.kind));
  }

  void stmt(const Node& n, int depth) {
    const std::string pad(static_cast<size_t>(depth) * 2, ' ');
    switch (n.kind) {
      case NodeKind::block:
        out_ << pad << "{\n";
        for (const NodeRef& s : n.body) stmt(*s, depth + 1);
        out_ << pad << "}\n";
        return;
      case NodeKind::let:
        out_ << pad << "const " << c_type(n.args[0]->type.scalar) << " v_" << n.name << " = " << expr(*n.args[0]) << ";\n";
        return;
      case NodeKind::var:
        out_ << pad << c_type(n.args[0]->type.scalar) << " v_" << n.name << " = " << expr(*n.args[0]) << ";\n";
        return;
      case NodeKind::assign: out_ << pad << "v_" << n.name << " = " << expr(*n.args[0]) << ";\n"; return;
      case NodeKind::load_vector: {  // one aligned 8- / 16-byte load (int4 / float4 in both dialects)
        const Scalar s = n.type.scalar;
        const std::string vec = (s == Scalar::f32 ? "float" : "int") + std::to_string(n.type.lanes);
        out_ << pad << "const " << vec << " w_" << n.name << " = *((" << d_.global_ptr << "const " << vec << "*)(" << access(n.i, s)
             << " + " << expr(*n.args[0]) << "));\n";
        for (int l = 0; l < n.type.lanes; ++l)
          out_ << pad << "const " << c_type(s) << " v_" << lane_name(n.name, l) << " = w_" << n.name << "." << "xyzw"[l] << ";\n";
        return;
      }
      case NodeKind::store:
        out_ << pad << access(n.i, n.args[1]->type.scalar) << "[" << expr(*n.args[0]) << "] = " << expr(*n.args[1]) << ";\n";
        return;
      case NodeKind::for_loop: {
        // bounds and step are evaluated once, before the loop (kir.h)
        const std::string end = "end_" + n.name, step = "step_" + n.name;
        out_ << pad << "{\n";
        out_ << pad << "  const moat_i64 " << end << " = " << expr(*n.args[1]) << ";\n";
        out_ << pad << "  const moat_i64 " << step << " = " << expr(*n.args[2]) << ";\n";
        out_ << pad << "  for (moat_i64 v_" << n.name << " = " << expr(*n.args[0]) << "; v_" << n.name << " < " << end << "; v_"
             << n.name << " += " << step << ") {\n";
        for (const NodeRef& s : n.body) stmt(*s, depth + 2);
        out_ << pad << "  }\n" << pad << "}\n";
        return;
      }
      case NodeKind::if_then:
        out_ << pad << "if (" << expr(*n.args[0]) << ") {\n";
        for (const NodeRef& s : n.body) stmt(*s, depth + 1);
        if (!n.else_body.empty()) {
          out_ << pad << "} else {\n";
          for (const NodeRef& s : n.else_body) stmt(*s, depth + 1);
        }
        out_ << pad << "}\n";
        return;
      case NodeKind::barrier: out_ << pad << d_.barrier << "\n"; return;
      default: break;
    }
    MOAT_INTERNAL_ERROR("kernel ", k_.name, ": the ", d_.name, " printer does not handle statement ", node_kind_name(n.kind));
  }

  const Kernel& k_;
  const Dialect& d_;
  std::ostringstream out_;
};

std::string emit(std::span<const Kernel> kernels, const Dialect& dialect) {
  std::string out;
  bool subgroups = false, clustered = false;
  for (const Kernel& k : kernels) {
    UsesSubgroups finder;
    finder.visit(*k.body);
    subgroups = subgroups || finder.found;
    clustered = clustered || finder.clustered;
  }
  if (subgroups) out += dialect.subgroup_enable;
  if (clustered) out += dialect.clustered_enable;
  out += dialect.prelude;
  out += c_emit::helpers();
  for (const Kernel& k : kernels) {
    // legalise, then print: the least this printer needs (jit/target.cpp declares the same;
    // a kernel the Target legalised already passes unchanged)
    const Kernel legal = legalize_numerics(k, {.native_f16 = false});
    out += CPrinter(has_vectors(legal) ? scalarize(legal) : legal, dialect).run();
  }
  return out;
}

}  // namespace

std::string emit_opencl(std::span<const Kernel> kernels) { return emit(kernels, c_emit::opencl_dialect()); }
std::string emit_hip(std::span<const Kernel> kernels) { return emit(kernels, c_emit::hip_dialect()); }
std::string emit_opencl(const Kernel& kernel) { return emit_opencl(std::span<const Kernel>(&kernel, 1)); }
std::string emit_hip(const Kernel& kernel) { return emit_hip(std::span<const Kernel>(&kernel, 1)); }

}  // namespace moat::jit
