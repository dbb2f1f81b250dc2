// Kernel IR verifier: scoping of names, buffer and scalar references, and the types of
// statement operands. Expression operand types are checked when a node is built
// (kir.cpp); this pass checks what needs the enclosing kernel and scopes.
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
