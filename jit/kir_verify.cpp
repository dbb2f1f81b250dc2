// Kernel IR verifier: scoping of names, buffer and scalar references, and the types of
// statement operands. Expression operand types are checked when a node is built
// (kir.cpp); this pass checks what needs the enclosing kernel and scopes.
#include <cctype>
#include <climits>
#include <cstdint>
#include <map>
#include <vector>

#include "jit/kir.h"
#include "support/error.h"

namespace moat::jit {

namespace {

struct Binding {
  Type type;
  bool mutable_ = false;
};

class Verifier {
 public:
  explicit Verifier(const Kernel& k) : k_(k) {}

  void run() {
    check(k_.body && k_.body->kind == NodeKind::block, "the body must be a block");
    for (int d = 0; d < 3; ++d) check(k_.groups[d] >= 1 && k_.items[d] >= 1, "grid dimensions must be >= 1");
    for (const Param& p : k_.params) {
      if (p.is_buffer) check(k_.buffers.at(p.index).space == Space::global, "a buffer parameter must be global");
    }
    for (size_t t = 0; t < k_.tables.size(); ++t) table_ok(t);
    scopes_.emplace_back();
    stmt(*k_.body);
  }

 private:
  void check(bool ok, const std::string& what) const {
    MOAT_INTERNAL_CHECK(ok, "kernel ", k_.name, ": ", what);
  }

  const Binding* find(const std::string& name) const {
    for (auto s = scopes_.rbegin(); s != scopes_.rend(); ++s) {
      auto it = s->find(name);
      if (it != s->end()) return &it->second;
    }
    return nullptr;
  }

  void bind(const std::string& name, Binding b) {
    check(!name.empty(), "an empty name");
    check(find(name) == nullptr, "%" + name + " is bound twice");
    scopes_.back()[name] = b;
  }

  // A table's name is an identifier (printers use it in symbols), unique; its values fit
  // its scalar.
  void table_ok(size_t t) const {
    const TableDecl& d = k_.tables[t];
    bool identifier = !d.name.empty() && !std::isdigit(static_cast<unsigned char>(d.name[0]));
    for (char c : d.name) identifier = identifier && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    check(identifier, "table name '" + d.name + "' is not an identifier");
    for (size_t u = 0; u < t; ++u) check(k_.tables[u].name != d.name, "table " + d.name + " is declared twice");
    check(!d.values.empty(), "table " + d.name + " is empty");
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    switch (d.scalar) {
      case Scalar::i8: lo = INT8_MIN, hi = INT8_MAX; break;
      case Scalar::u8: lo = 0, hi = UINT8_MAX; break;
      case Scalar::i32: lo = INT32_MIN, hi = INT32_MAX; break;
      case Scalar::i64: break;
      default: check(false, "table " + d.name + " of " + std::string(scalar_name(d.scalar)));
    }
    for (int64_t v : d.values)
      check(v >= lo && v <= hi, "table " + d.name + ": " + std::to_string(v) + " is not a " + std::string(scalar_name(d.scalar)));
  }

  void buffer_ok(int64_t index) const {
    check(index >= 0 && index < static_cast<int64_t>(k_.buffers.size()), "buffer " + std::to_string(index) + " does not exist");
  }

  void expr(const Node& n) {
    check(!is_statement(n.kind), std::string(node_kind_name(n.kind)) + " used as an expression");
    check(n.type.lanes >= 1 && n.type.lanes <= 64, "vector of " + std::to_string(n.type.lanes) + " lanes");
    switch (n.kind) {
      case NodeKind::ref: {
        const Binding* b = find(n.name);
        check(b != nullptr, "%" + n.name + " is used before it is bound");
        check(b->type == n.type, "%" + n.name + " is " + type_name(b->type) + ", used as " + type_name(n.type));
        break;
      }
      case NodeKind::scalar_arg:
        check(n.i >= 0 && n.i < static_cast<int64_t>(k_.scalars.size()), "scalar argument out of range");
        break;
      case NodeKind::load:
      case NodeKind::qscale:
      case NodeKind::dequant: buffer_ok(n.i); break;
      case NodeKind::table_load: {
        check(n.i >= 0 && n.i < static_cast<int64_t>(k_.tables.size()), "table " + std::to_string(n.i) + " does not exist");
        const TableDecl& t = k_.tables[static_cast<size_t>(n.i)];
        const Type index = n.args[0]->type;
        check(n.type.scalar == t.scalar, "table_load of " + type_name(n.type) + " from table " + t.name);
        check(index.scalar == Scalar::i64 && (index.lanes == 1 || index.lanes == n.type.lanes),
              "table_load from " + t.name + " with a " + type_name(index) + " index");
        if (n.args[0]->kind == NodeKind::constant)
          check(n.args[0]->i >= 0 && n.args[0]->i + n.type.lanes <= static_cast<int64_t>(t.values.size()),
                "table_load past the end of " + t.name);
        break;
      }
      case NodeKind::qdot:
        buffer_ok(n.i);
        buffer_ok(n.j);
        break;
      default: break;
    }
    for (const NodeRef& a : n.args) expr(*a);
  }

  void body(const std::vector<NodeRef>& stmts) {
    scopes_.emplace_back();
    for (const NodeRef& s : stmts) stmt(*s);
    scopes_.pop_back();
  }

  void stmt(const Node& n) {
    check(is_statement(n.kind), std::string(node_kind_name(n.kind)) + " used as a statement");
    for (const NodeRef& a : n.args) expr(*a);
    switch (n.kind) {
      case NodeKind::block: body(n.body); break;
      case NodeKind::let: bind(n.name, {n.args[0]->type, false}); break;
      case NodeKind::var: bind(n.name, {n.args[0]->type, true}); break;
      case NodeKind::load_vector:
        buffer_ok(n.i);
        check(!k_.buffers[n.i].written, "load_vector from %" + k_.buffers[n.i].name + ", which the kernel writes");
        for (int l = 0; l < n.type.lanes; ++l) bind(lane_name(n.name, l), {n.type.with_lanes(1), false});
        break;
      case NodeKind::assign: {
        const Binding* b = find(n.name);
        check(b != nullptr && b->mutable_, "assignment to %" + n.name + ", which is not a var");
        check(b->type == n.args[0]->type, "assignment of " + type_name(n.args[0]->type) + " to %" + n.name);
        break;
      }
      case NodeKind::store: {
        buffer_ok(n.i);
        const BufferDecl& b = k_.buffers[n.i];
        check(b.space == Space::local || b.written, "store to %" + b.name + ", which is not declared written");
        check(accessible_as(b.dtype, n.args[1]->type.scalar), "store of " + type_name(n.args[1]->type) + " to %" + b.name);
        break;
      }
      case NodeKind::quantize: {
        buffer_ok(n.i);
        const BufferDecl& b = k_.buffers[n.i];
        check(b.space == Space::local || b.written, "quantize into %" + b.name + ", which is not declared written");
        if (b.dtype == ir::DType::q8_k) {
          check(n.args.size() == 4 && n.args[1]->type == kF32.with_lanes(16) && n.args[2]->type == kI64 &&
                    n.args[3]->type == kF32,
                "quantize into q8_k needs f32x16, a group and the block's max");
          break;
        }
        check(b.dtype == ir::DType::q8_0, "quantize into %" + b.name + ", which is not q8_0 or q8_k");
        const bool vector = n.args.size() == 2 && n.args[1]->type == kF32.with_lanes(32);
        bool lanes = n.args.size() == 33;  // scalarised: the 32 values
        for (size_t a = 1; lanes && a < n.args.size(); ++a) lanes = n.args[a]->type == kF32;
        check(vector || lanes, "quantize needs f32x32 or 32 f32 values");
        break;
      }
      case NodeKind::for_loop:
        scopes_.emplace_back();
        bind(n.name, {kI64, false});
        body(n.body);
        scopes_.pop_back();
        break;
      case NodeKind::if_then:
        body(n.body);
        body(n.else_body);
        break;
      default: break;
    }
  }

  const Kernel& k_;
  std::vector<std::map<std::string, Binding>> scopes_;
};

}  // namespace

void verify(const Kernel& k) { Verifier(k).run(); }

}  // namespace moat::jit
