// Kernel IR -> PTX text (contract in emit_ptx.h). Legalise (scalarise), then print:
// every expression value gets a fresh virtual register (numeric.h's classes), `var`s
// and loop counters are registers assigned with mov, structured statements become
// labels and predicated branches. Expressions free of vars and memory are printed once
// per scope and reused, like the LLVM emitter. Constant tables are initialised
// module-scope globals.
#include "jit/emit_ptx.h"

#include <cctype>
#include <climits>
#include <map>
#include <unordered_map>

#include "jit/emit_ptx_numeric.h"
#include "jit/kir_reuse.h"
#include "jit/legalize.h"
#include "support/error.h"
#include "support/half.h"

namespace moat::jit {

namespace {

using ptx::Builder;
using ptx::Reg;
using ptx::imm;

std::string mov_op(Reg r) {
  switch (r) {
    case Reg::pred: return "mov.pred";
    case Reg::b16: return "mov.b16";
    case Reg::b32: return "mov.b32";
    case Reg::b64: return "mov.b64";
    case Reg::f32: return "mov.f32";
    case Reg::f64: return "mov.f64";
  }
  return "mov";
}

// The type of a load / store of one element of storage type s.
std::string mem_type(Scalar s) {
  switch (s) {
    case Scalar::f32: return "f32";
    case Scalar::f16: case Scalar::bf16: return "b16";
    case Scalar::f8: case Scalar::u8: case Scalar::i1: return "u8";
    case Scalar::i8: return "s8";
    case Scalar::i32: return "b32";
    case Scalar::i64: return "b64";
    case Scalar::f64: return "f64";
  }
  return "?";
}

int64_t element_bytes(Scalar s) { return std::max(1, scalar_bits(s) / 8); }

bool is_identifier(const std::string& name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

class PtxPrinter {
 public:
  PtxPrinter(const Kernel& k, const PtxTarget& t) : k_(k), t_(t) {}

  std::string run() {
    MOAT_INTERNAL_CHECK(is_identifier(k_.name), "ptx emitter: kernel name '", k_.name, "' is not a PTX identifier");
    std::string params, shared;
    for (size_t p = 0; p < k_.params.size(); ++p) {
      const Param& param = k_.params[p];
      const std::string name = k_.name + "_param_" + std::to_string(p);
      const bool is_f32 = !param.is_buffer && k_.scalars.at(param.index).scalar == Scalar::f32;
      params += std::string(p ? ",\n" : "") + "\t.param ." + (is_f32 ? "f32 " : "u64 ") + name;
      if (param.is_buffer) {
        std::string raw = b_.def(Reg::b64, "ld.param.u64", {"[" + name + "]"});
        buffer_ptr_[param.index] = b_.def(Reg::b64, "cvta.to.global.u64", {raw});
      } else {
        scalar_[param.index] = b_.def(is_f32 ? Reg::f32 : Reg::b64, is_f32 ? "ld.param.f32" : "ld.param.u64", {"[" + name + "]"});
      }
    }
    for (size_t i = 0; i < k_.buffers.size(); ++i) {
      const BufferDecl& buf = k_.buffers[i];
      if (buf.space != Space::local) continue;
      const std::string name = k_.name + "_local_" + std::to_string(i);  // per work-group (CUDA __shared__)
      const int64_t bytes = std::max<int64_t>(1, buf.elements * element_bytes(storage_scalar(buf.dtype)));
      shared += "\t.shared .align 16 .b8 " + name + "[" + std::to_string(bytes) + "];\n";
      buffer_ptr_[static_cast<int>(i)] = b_.def(Reg::b64, "mov.u64", {name});
    }
    scopes_.emplace_back();
    cache_.emplace_back();
    stmt(*k_.body);
    b_.op("ret", {});

    std::string out = "//\n// moatless kernel " + k_.name + " (jit/emit_ptx.cpp)\n//\n\n";
    out += ".version " + std::to_string(t_.ptx_major) + "." + std::to_string(t_.ptx_minor) + "\n";
    out += ".target sm_" + std::to_string(t_.sm) + "\n.address_size 64\n\n";
    out += tables();
    out += ".visible .entry " + k_.name + "(\n" + params + (params.empty() ? "" : "\n") + ")\n";
    out += ".reqntid " + std::to_string(k_.items[0]) + ", " + std::to_string(k_.items[1]) + ", " + std::to_string(k_.items[2]) + "\n";
    out += "{\n" + b_.declarations() + shared + "\n" + b_.text() + "}\n";
    return out;
  }

 private:
  // --- statements ------------------------------------------------------------------

  void stmts(const std::vector<NodeRef>& list) {
    cache_.emplace_back();
    scopes_.emplace_back();
    for (const NodeRef& s : list) stmt(*s);
    for (const std::string& name : scopes_.back()) names_.erase(name);
    scopes_.pop_back();
    cache_.pop_back();
  }

  void bind(const std::string& name, const std::string& reg, bool is_var) {
    names_[name] = {reg, is_var};
    scopes_.back().push_back(name);
  }

  void stmt(const Node& n) {
    switch (n.kind) {
      case NodeKind::block: stmts(n.body); return;
      case NodeKind::let: bind(n.name, expr(*n.args[0]), false); return;
      case NodeKind::load_vector: {  // one ld.global.nc.v2 / .v4 (the kernel never writes the buffer)
        const Scalar s = n.type.scalar;
        const std::string addr = element_address(static_cast<int>(n.i), *n.args[0], s);
        std::vector<std::string> regs;
        for (int l = 0; l < n.type.lanes; ++l) regs.push_back(b_.reg(ptx::reg_class(s)));
        std::string list = "{";
        for (size_t l = 0; l < regs.size(); ++l) list += (l ? ", " : "") + regs[l];
        b_.op("ld.global.nc.v" + std::to_string(n.type.lanes) + "." + (s == Scalar::f32 ? "f32" : "u32"), {list + "}", addr});
        for (int l = 0; l < n.type.lanes; ++l) bind(lane_name(n.name, l), regs[static_cast<size_t>(l)], false);
        return;
      }
      case NodeKind::var: {
        const Reg cls = ptx::reg_class(n.args[0]->type.scalar);
        std::string value = expr(*n.args[0]);
        std::string reg = b_.reg(cls);
        b_.op(mov_op(cls), {reg, value});
        bind(n.name, reg, true);
        return;
      }
      case NodeKind::assign: {
        std::string value = expr(*n.args[0]);
        b_.op(mov_op(ptx::reg_class(n.args[0]->type.scalar)), {names_.at(n.name).reg, value});
        return;
      }
      case NodeKind::store: {
        const int buffer = static_cast<int>(n.i);
        std::string value = expr(*n.args[1]);
        const Scalar s = n.args[1]->type.scalar;
        std::string addr = element_address(buffer, *n.args[0], s);
        b_.op("st." + space(buffer) + "." + mem_type(s), {addr, value});
        return;
      }
      case NodeKind::for_loop: for_loop(n); return;
      case NodeKind::if_then: {
        std::string cond = expr(*n.args[0]);
        std::string else_label = b_.label("else"), end_label = b_.label("endif");
        b_.branch_if(cond, true, n.else_body.empty() ? end_label : else_label);
        stmts(n.body);
        if (!n.else_body.empty()) {
          b_.jump(end_label);
          b_.place(else_label);
          stmts(n.else_body);
        }
        b_.place(end_label);
        return;
      }
      case NodeKind::barrier: b_.op("bar.sync", {"0"}); return;  // CUDA __syncthreads()
      default: break;
    }
    MOAT_INTERNAL_ERROR("ptx emitter: ", node_kind_name(n.kind), " is not a statement (kernel ", k_.name, ")");
  }

  // for name = begin; name < end (signed); name += step: bounds evaluated once.
  void for_loop(const Node& n) {
    std::string begin = expr(*n.args[0]);
    std::string end = expr(*n.args[1]);
    std::string step = expr(*n.args[2]);
    std::string iv = b_.reg(Reg::b64);
    b_.op("mov.b64", {iv, begin});
    std::string head = b_.label("loop"), exit = b_.label("loop_exit");
    b_.place(head);
    b_.branch_if(b_.def(Reg::pred, "setp.lt.s64", {iv, end}), true, exit);
    scopes_.emplace_back();
    bind(n.name, iv, false);
    stmts(n.body);
    names_.erase(n.name);
    scopes_.pop_back();
    b_.op("add.s64", {iv, iv, step});
    b_.jump(head);
    b_.place(exit);
  }

  std::string space(int buffer) const { return k_.buffers.at(buffer).space == Space::local ? "shared" : "global"; }

  // "[address]" of element `index` of `buffer` (constant indices fold into the offset).
  // Address of element `index` of `buffer` read or written as scalar s (kir.h: a
  // quantised buffer's bytes may be accessed as i8 or f16).
  std::string element_address(int buffer, const Node& index, Scalar s) {
    const std::string& base = buffer_ptr_.at(buffer);
    const int64_t size = element_bytes(s);
    if (index.kind == NodeKind::constant && index.i >= INT_MIN / size && index.i <= INT_MAX / size) {
      const int64_t offset = index.i * size;
      return "[" + base + (offset ? "+" + imm(offset) : "") + "]";
    }
    std::string i = expr(index);
    std::string addr = size == 1 ? b_.def(Reg::b64, "add.s64", {base, i}) : b_.def(Reg::b64, "mad.lo.s64", {i, imm(size), base});
    return "[" + addr + "]";
  }

  // --- constant tables ---------------------------------------------------------------

  // A table's symbol: module scope, so prefixed by the kernel's name.
  std::string table_symbol(int64_t t) const { return k_.name + "_table_" + k_.tables.at(static_cast<size_t>(t)).name; }

  // Each table: initialised global memory (CUDA __device__ const; read with ld.global.nc,
  // which gathers better than the constant bank's broadcast reads).
  std::string tables() const {
    static const std::map<Scalar, std::string> kType = {
        {Scalar::i8, ".s8"}, {Scalar::u8, ".u8"}, {Scalar::i32, ".s32"}, {Scalar::i64, ".s64"}};
    std::string out;
    for (size_t t = 0; t < k_.tables.size(); ++t) {
      const TableDecl& d = k_.tables[t];
      out += ".global .align 16 " + kType.at(d.scalar) + " " + table_symbol(static_cast<int64_t>(t)) + "[" +
             std::to_string(d.values.size()) + "] = {";
      for (size_t v = 0; v < d.values.size(); ++v)
        out += (v ? (v % 16 ? ", " : ",\n\t") : "") + std::to_string(d.values[v]);
      out += "};\n";
    }
    return out + (out.empty() ? "" : "\n");
  }

  std::string table_load(const Node& n) {
    const Scalar s = n.type.scalar;
    const int64_t size = element_bytes(s);
    const Node& index = *n.args[0];
    std::string addr;
    if (index.kind == NodeKind::constant) {
      addr = "[" + table_symbol(n.i) + (index.i ? "+" + imm(index.i * size) : "") + "]";
    } else {
      std::string i = expr(index);
      std::string base = b_.def(Reg::b64, "mov.u64", {table_symbol(n.i)});
      std::string at = size == 1 ? b_.def(Reg::b64, "add.s64", {base, i}) : b_.def(Reg::b64, "mad.lo.s64", {i, imm(size), base});
      addr = "[" + at + "]";
    }
    return b_.def(ptx::reg_class(s), "ld.global.nc." + mem_type(s), {addr});
  }

  // --- expressions -----------------------------------------------------------------

  // Whether a node's value can be reused wherever it is in scope (kir_reuse.h).
  bool pure(const Node& n) {
    return reuse_.reusable(n, [&](const std::string& name) {
      auto named = names_.find(name);
      return named != names_.end() && !named->second.is_var;
    });
  }

  std::string expr(const Node& n) {
    const bool reusable = pure(n);
    if (reusable) {
      for (auto s = cache_.rbegin(); s != cache_.rend(); ++s) {
        auto it = s->find(&n);
        if (it != s->end()) return it->second;
      }
    }
    std::string v = compute(n);
    if (reusable) cache_.back()[&n] = v;
    return v;
  }

  std::string compute(const Node& n) {
    MOAT_INTERNAL_CHECK(n.type.lanes == 1, "ptx emitter: a ", type_name(n.type), " ", node_kind_name(n.kind),
                        " reached the printer (kernel ", k_.name, "): legalize_for_ptx scalarises vectors");
    switch (n.kind) {
      case NodeKind::constant: return constant(n);
      case NodeKind::scalar_arg: return scalar_.at(static_cast<int>(n.i));
      case NodeKind::ref: {
        const Named& named = names_.at(n.name);
        if (!named.is_var) return named.reg;
        const Reg cls = ptx::reg_class(n.type.scalar);  // a var's current value, copied
        return b_.def(cls, mov_op(cls), {named.reg});
      }
      case NodeKind::builtin: return builtin(n);
      case NodeKind::unary: return unary(n);
      case NodeKind::binary:
        return arith(static_cast<BinaryOp>(n.op), n.args[0]->type.scalar, expr(*n.args[0]), expr(*n.args[1]));
      case NodeKind::fma: {
        const bool wide = n.type.scalar == Scalar::f64;
        return b_.def(wide ? Reg::f64 : Reg::f32, wide ? "fma.rn.f64" : "fma.rn.f32",
                      {expr(*n.args[0]), expr(*n.args[1]), expr(*n.args[2])});
      }
      case NodeKind::select: return select(n);
      case NodeKind::cast: return ptx::convert(b_, expr(*n.args[0]), n.args[0]->type.scalar, n.type.scalar);
      case NodeKind::bitcast: return ptx::reinterpret(b_, expr(*n.args[0]), n.args[0]->type.scalar, n.type.scalar);
      case NodeKind::subgroup_reduce: return subgroup_reduce(n);
      case NodeKind::dot4_words:  // a's bytes unsigned, b's signed
        return b_.def(Reg::b32, "dp4a.u32.s32", {expr(*n.args[1]), expr(*n.args[2]), expr(*n.args[0])});
      case NodeKind::table_load: return table_load(n);
      case NodeKind::load: {
        const int buffer = static_cast<int>(n.i);
        std::string addr = element_address(buffer, *n.args[0], n.type.scalar);
        return b_.def(ptx::reg_class(n.type.scalar), "ld." + space(buffer) + "." + mem_type(n.type.scalar), {addr});
      }
      default: break;
    }
    MOAT_INTERNAL_ERROR("ptx emitter: ", node_kind_name(n.kind), " is not handled by the ptx target (kernel ", k_.name, ")");
  }

  std::string constant(const Node& n) {
    const float f = static_cast<float>(n.f);  // float constants are f32 first (as the LLVM emitter)
    switch (n.type.scalar) {
      case Scalar::f32: return b_.def(Reg::f32, "mov.f32", {ptx::f32_imm(f)});
      case Scalar::f64: return b_.def(Reg::f64, "mov.f64", {ptx::f64_imm(n.f)});
      case Scalar::f16: return b_.def(Reg::b16, "mov.b16", {imm(f32_to_f16(f))});
      case Scalar::bf16: return b_.def(Reg::b16, "mov.b16", {imm(f32_to_bf16(f))});
      case Scalar::f8: return b_.def(Reg::b32, "mov.b32", {imm(f32_to_fp8_e4m3(f))});
      case Scalar::i64: return b_.def(Reg::b64, "mov.b64", {imm(n.i)});
      case Scalar::i32: return b_.def(Reg::b32, "mov.b32", {imm(static_cast<int32_t>(n.i))});
      case Scalar::i8: return b_.def(Reg::b32, "mov.b32", {imm(static_cast<int8_t>(n.i))});
      case Scalar::u8: return b_.def(Reg::b32, "mov.b32", {imm(static_cast<uint8_t>(n.i))});
      case Scalar::i1: return b_.def(Reg::pred, "setp.ne.s32", {b_.def(Reg::b32, "mov.b32", {imm(n.i & 1)}), "0"});
    }
    MOAT_INTERNAL_ERROR("ptx emitter: constant of unknown type");
  }

  std::string builtin(const Node& n) {
    static constexpr const char* kDim[] = {"x", "y", "z"};
    std::string sreg;
    switch (static_cast<Builtin>(n.op)) {
      case Builtin::group_id: sreg = "%ctaid."; break;     // blockIdx
      case Builtin::item_id: sreg = "%tid."; break;        // threadIdx
      case Builtin::num_groups: sreg = "%nctaid."; break;  // gridDim
      case Builtin::group_size: sreg = "%ntid."; break;    // blockDim
    }
    std::string r = b_.def(Reg::b32, "mov.u32", {sreg + kDim[n.i]});
    return b_.def(Reg::b64, "cvt.u64.u32", {r});
  }

  // Narrow integers are kept extended in 32 bits: i8 results are sign-extended again,
  // u8 results masked, after arithmetic that can leave the 8-bit range.
  std::string narrow(Scalar s, const std::string& v) {
    if (s == Scalar::i8) return b_.def(Reg::b32, "cvt.s32.s8", {v});
    if (s == Scalar::u8) return b_.def(Reg::b32, "and.b32", {v, "255"});
    return v;
  }

  std::string unary(const Node& n) {
    const Scalar s = n.args[0]->type.scalar;
    const UnaryOp op = static_cast<UnaryOp>(n.op);
    std::string x = expr(*n.args[0]);
    const bool wide = s == Scalar::i64;
    if (s == Scalar::f64) {  // the math rules' intermediates
      if (op == UnaryOp::neg) return b_.def(Reg::f64, "neg.f64", {x});
      if (op == UnaryOp::abs) return b_.def(Reg::f64, "abs.f64", {x});
      if (op == UnaryOp::rint) return b_.def(Reg::f64, "cvt.rni.f64.f64", {x});
      if (op == UnaryOp::isnan) return b_.def(Reg::pred, "setp.nan.f64", {x, x});
      MOAT_INTERNAL_ERROR("ptx emitter: unary ", unary_name(op), " of f64 (kernel ", k_.name, ")");
    }
    switch (op) {
      case UnaryOp::neg:
        if (s == Scalar::f32) return b_.def(Reg::f32, "neg.f32", {x});
        if (s == Scalar::i1) return x;  // 0 - x mod 2
        if (is_float(s)) break;
        return narrow(s, b_.def(ptx::reg_class(s), wide ? "neg.s64" : "neg.s32", {x}));
      case UnaryOp::abs:
        if (s == Scalar::f32) return b_.def(Reg::f32, "abs.f32", {x});
        if (s == Scalar::i1) return x;
        if (is_float(s)) break;
        if (s == Scalar::u8) x = b_.def(Reg::b32, "cvt.s32.s8", {x});  // llvm.abs reads the bits as signed
        return narrow(s, b_.def(ptx::reg_class(s), wide ? "abs.s64" : "abs.s32", {x}));
      case UnaryOp::exp: case UnaryOp::log: case UnaryOp::sin: case UnaryOp::cos: case UnaryOp::tanh:
        break;  // written out by legalize_numerics (PTX has no exact enough native function)
      case UnaryOp::rint: return b_.def(Reg::f32, "cvt.rni.f32.f32", {x});
      case UnaryOp::sqrt: return b_.def(Reg::f32, "sqrt.rn.f32", {x});
      case UnaryOp::rsqrt:
        return b_.def(Reg::f32, "div.rn.f32", {ptx::f32_imm(1.0f), b_.def(Reg::f32, "sqrt.rn.f32", {x})});
      case UnaryOp::recip: return b_.def(Reg::f32, "rcp.rn.f32", {x});
      case UnaryOp::lnot: return b_.def(Reg::pred, "not.pred", {x});
      case UnaryOp::isnan: return b_.def(Reg::pred, "setp.nan.f32", {x, x});
    }
    MOAT_INTERNAL_ERROR("ptx emitter: unary ", unary_name(op), " of ", scalar_name(s), " (kernel ", k_.name, ")");
  }

  // a op b for operands of scalar type s (comparisons give a predicate).
  std::string arith(BinaryOp op, Scalar s, const std::string& a, const std::string& c) {
    if (s == Scalar::f32 || s == Scalar::f64) return float_arith(op, s == Scalar::f64 ? "f64" : "f32", a, c);
    if (s == Scalar::i1) return pred_arith(op, a, c);
    if (is_float(s)) {
      MOAT_INTERNAL_ERROR("ptx emitter: ", binary_name(op), " of ", scalar_name(s), " (a storage type; kernel ", k_.name, ")");
    }
    const bool wide = s == Scalar::i64;
    const Reg cls = wide ? Reg::b64 : Reg::b32;
    const std::string sn = s == Scalar::u8 ? (wide ? "u64" : "u32") : (wide ? "s64" : "s32");
    const std::string bits = wide ? "b64" : "b32";
    switch (op) {
      case BinaryOp::add: return narrow(s, b_.def(cls, "add." + sn, {a, c}));
      case BinaryOp::sub: return narrow(s, b_.def(cls, "sub." + sn, {a, c}));
      case BinaryOp::mul: return narrow(s, b_.def(cls, "mul.lo." + sn, {a, c}));
      case BinaryOp::div: return narrow(s, b_.def(cls, "div." + sn, {a, c}));
      case BinaryOp::rem: return narrow(s, b_.def(cls, "rem." + sn, {a, c}));
      case BinaryOp::min: return b_.def(cls, "min." + sn, {a, c});
      case BinaryOp::max: return b_.def(cls, "max." + sn, {a, c});
      case BinaryOp::land: return b_.def(cls, "and." + bits, {a, c});
      case BinaryOp::lor: return b_.def(cls, "or." + bits, {a, c});
      case BinaryOp::shl: return narrow(s, b_.def(cls, "shl." + bits, {a, shift_amount(s, c)}));
      case BinaryOp::shr: return b_.def(cls, "shr." + sn, {a, shift_amount(s, c)});
      case BinaryOp::lt: return b_.def(Reg::pred, "setp.lt." + sn, {a, c});
      case BinaryOp::le: return b_.def(Reg::pred, "setp.le." + sn, {a, c});
      case BinaryOp::eq: return b_.def(Reg::pred, "setp.eq." + sn, {a, c});
      case BinaryOp::ne: return b_.def(Reg::pred, "setp.ne." + sn, {a, c});
      case BinaryOp::mulhi: return b_.def(cls, "mul.hi.u32", {a, c});
      case BinaryOp::pow: break;
    }
    MOAT_INTERNAL_ERROR("ptx emitter: ", binary_name(op), " of ", scalar_name(s), " (kernel ", k_.name, ")");
  }

  // PTX shift amounts are .u32.
  std::string shift_amount(Scalar s, const std::string& c) {
    return s == Scalar::i64 ? b_.def(Reg::b32, "cvt.u32.u64", {c}) : c;
  }

  // f32 or f64 (`t`) arithmetic; rem and pow arrive written out by legalize_numerics.
  std::string float_arith(BinaryOp op, const std::string& t, const std::string& a, const std::string& c) {
    const Reg cls = t == "f64" ? Reg::f64 : Reg::f32;
    switch (op) {
      case BinaryOp::add: return b_.def(cls, "add.rn." + t, {a, c});
      case BinaryOp::sub: return b_.def(cls, "sub.rn." + t, {a, c});
      case BinaryOp::mul: return b_.def(cls, "mul.rn." + t, {a, c});
      case BinaryOp::div: return b_.def(cls, "div.rn." + t, {a, c});
      case BinaryOp::min: return ptx::float_min(b_, a, c, t);
      case BinaryOp::max: return ptx::float_max(b_, a, c, t);
      case BinaryOp::lt: return b_.def(Reg::pred, "setp.lt." + t, {a, c});   // ordered
      case BinaryOp::le: return b_.def(Reg::pred, "setp.le." + t, {a, c});
      case BinaryOp::eq: return b_.def(Reg::pred, "setp.eq." + t, {a, c});
      case BinaryOp::ne: return b_.def(Reg::pred, "setp.neu." + t, {a, c});  // unordered: NaN != x
      default: break;
    }
    MOAT_INTERNAL_ERROR("ptx emitter: ", binary_name(op), " of ", t, " (kernel ", k_.name, ")");
  }

  // i1 as an unsigned one-bit integer (the LLVM meaning of i1 arithmetic).
  std::string pred_arith(BinaryOp op, const std::string& a, const std::string& c) {
    switch (op) {
      case BinaryOp::land: case BinaryOp::mul: case BinaryOp::min: return b_.def(Reg::pred, "and.pred", {a, c});
      case BinaryOp::lor: case BinaryOp::max: return b_.def(Reg::pred, "or.pred", {a, c});
      case BinaryOp::add: case BinaryOp::sub: case BinaryOp::ne: return b_.def(Reg::pred, "xor.pred", {a, c});
      case BinaryOp::eq: return b_.def(Reg::pred, "not.pred", {b_.def(Reg::pred, "xor.pred", {a, c})});
      case BinaryOp::lt: return b_.def(Reg::pred, "and.pred", {b_.def(Reg::pred, "not.pred", {a}), c});
      case BinaryOp::le: return b_.def(Reg::pred, "or.pred", {b_.def(Reg::pred, "not.pred", {a}), c});
      default: break;
    }
    MOAT_INTERNAL_ERROR("ptx emitter: ", binary_name(op), " of i1 (kernel ", k_.name, ")");
  }

  std::string select(const Node& n) {
    std::string cond = expr(*n.args[0]);
    std::string a = expr(*n.args[1]);
    std::string c = expr(*n.args[2]);
    const Reg cls = ptx::reg_class(n.type.scalar);
    switch (cls) {
      case Reg::pred: {
        std::string when = b_.def(Reg::pred, "and.pred", {cond, a});
        std::string otherwise = b_.def(Reg::pred, "and.pred", {b_.def(Reg::pred, "not.pred", {cond}), c});
        return b_.def(Reg::pred, "or.pred", {when, otherwise});
      }
      case Reg::b16: return b_.def(cls, "selp.b16", {a, c, cond});
      case Reg::b32: return b_.def(cls, "selp.b32", {a, c, cond});
      case Reg::b64: return b_.def(cls, "selp.b64", {a, c, cond});
      case Reg::f32: return b_.def(cls, "selp.f32", {a, c, cond});
      case Reg::f64: return b_.def(cls, "selp.f64", {a, c, cond});
    }
    MOAT_INTERNAL_ERROR("ptx emitter: select of ", type_name(n.type));
  }

  // A butterfly over the sub-group: log2(width) shfl.sync.bfly steps (CUDA
  // __shfl_xor_sync); every lane ends with the reduction of the whole sub-group.
  std::string subgroup_reduce(const Node& n) {
    const int64_t items = k_.items[0] * k_.items[1] * k_.items[2];
    int64_t width = 32;
    std::string mask = "-1";
    if (items < 32) {
      MOAT_INTERNAL_CHECK((items & (items - 1)) == 0, "ptx emitter: sub-group reduction in a group of ", items,
                          " work-items (kernel ", k_.name, "): a group smaller than a warp must be a power of two");
      width = items;
      mask = imm((int64_t{1} << items) - 1);
    } else {
      MOAT_INTERNAL_CHECK(items % 32 == 0, "ptx emitter: sub-group reduction in a group of ", items,
                          " work-items (kernel ", k_.name, "): groups of a warp or more must be whole warps");
    }
    if (n.i > 0) width = std::min<int64_t>(width, n.i);  // clusters of n.i lanes: the butterfly stays inside them
    const Scalar s = n.type.scalar;
    const Reg cls = ptx::reg_class(s);
    MOAT_INTERNAL_CHECK(cls == Reg::f32 || cls == Reg::b32 || cls == Reg::b64 || cls == Reg::pred,
                        "ptx emitter: sub-group reduction of ", type_name(n.type), " (kernel ", k_.name, ")");
    const ReduceOp op = static_cast<ReduceOp>(n.op);
    const BinaryOp combine = op == ReduceOp::add ? BinaryOp::add : op == ReduceOp::max ? BinaryOp::max : BinaryOp::min;
    std::string v = expr(*n.args[0]);
    for (int64_t offset = width / 2; offset >= 1; offset /= 2) {
      auto shuffle = [&](const std::string& x32) {
        return b_.def(Reg::b32, "shfl.sync.bfly.b32", {x32, imm(offset), "31", mask});
      };
      std::string other;
      if (cls == Reg::b64) {
        std::string lo = b_.reg(Reg::b32), hi = b_.reg(Reg::b32);
        b_.op("mov.b64", {"{" + lo + ", " + hi + "}", v});
        other = b_.reg(Reg::b64);
        b_.op("mov.b64", {other, "{" + shuffle(lo) + ", " + shuffle(hi) + "}"});
      } else if (cls == Reg::pred) {
        other = b_.def(Reg::pred, "setp.ne.s32", {shuffle(b_.def(Reg::b32, "selp.b32", {"1", "0", v})), "0"});
      } else if (cls == Reg::f32) {
        other = b_.def(Reg::f32, "mov.b32", {shuffle(b_.def(Reg::b32, "mov.b32", {v}))});
      } else {
        other = shuffle(v);
      }
      v = arith(combine, s, v, other);
    }
    return v;
  }

  struct Named {
    std::string reg;  // the value's register, or the var's
    bool is_var = false;
  };

  const Kernel& k_;
  const PtxTarget& t_;
  Builder b_;
  std::map<int, std::string> buffer_ptr_;  // b64: global (cvta'd) or shared window address
  std::map<int, std::string> scalar_;
  std::unordered_map<std::string, Named> names_;
  std::vector<std::vector<std::string>> scopes_;
  std::vector<std::unordered_map<const Node*, std::string>> cache_;
  ReuseAnalysis reuse_;
};

}  // namespace

PtxTarget ptx_target_for(int sm) {
  static const std::map<int, std::pair<int, int>> kFirstVersion = {
      {80, {7, 0}}, {86, {7, 1}}, {87, {7, 4}}, {89, {7, 8}}, {90, {7, 8}}, {100, {8, 6}}, {120, {8, 7}}};
  auto it = kFirstVersion.find(sm);
  if (it == kFirstVersion.end())
    user_error("sm_", sm, ": the PTX code generator targets sm_80, sm_86, sm_87, sm_89, sm_90, sm_100 and sm_120");
  return {sm, it->second.first, it->second.second};
}

Kernel legalize_for_ptx(const Kernel& kernel) {
  verify(kernel);
  // the least this printer needs (jit/target.cpp declares the same; a kernel the Target
  // legalised already passes unchanged)
  const Kernel legal = legalize_numerics(kernel, {.native_f16 = true, .native_math = false, .native_dot4_words = true});
  return has_vectors(legal) ? scalarize(legal) : legal;
}

std::string emit_ptx(const Kernel& kernel, const PtxTarget& target) {
  MOAT_INTERNAL_CHECK(target.sm >= 80, "ptx emitter: sm_", target.sm, " is below sm_80");
  const Kernel legal = legalize_for_ptx(kernel);
  return PtxPrinter(legal, target).run();
}

}  // namespace moat::jit
