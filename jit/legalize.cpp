#include "jit/legalize.h"

#include <unordered_map>

#include "jit/kir_visitor.h"
#include "support/error.h"

namespace moat::jit {

namespace {

NodeRef rebuilt(const Node& n, std::vector<NodeRef> args, Type t) {
  Node copy = n;
  copy.args = std::move(args);
  copy.type = t;
  return std::make_shared<const Node>(std::move(copy));
}

NodeRef plus(NodeRef index, int64_t offset) {
  if (offset == 0) return index;
  if (index->kind == NodeKind::constant) return c_i64(index->i + offset);
  return add(std::move(index), c_i64(offset));
}


class Scalarizer {
 public:
  explicit Scalarizer(const Kernel& k) : k_(k) {}

  Kernel run() {
    Kernel out = k_;
    out.body = block(stmts(k_.body->body));
    verify(out);
    return out;
  }

 private:
  // The scalar value of lane i of vector expression e.
  NodeRef lane(const NodeRef& e, int i) {
    const Node& n = *e;
    const Type st = n.type.with_lanes(1);
    if (n.type.lanes == 1) return scalar(e);
    switch (n.kind) {
      case NodeKind::constant: return rebuilt(n, {}, st);
      case NodeKind::ref: return ref(lane_name(n.name, i), st);
      case NodeKind::broadcast: return scalar(n.args[0]);
      case NodeKind::load: return rebuilt(n, {plus(scalar(n.args[0]), i)}, st);
      case NodeKind::table_load: {  // consecutive elements from a scalar index, or a gather
        const NodeRef& index = n.args[0];
        return rebuilt(n, {index->type.lanes == 1 ? plus(scalar(index), i) : lane(index, i)}, st);
      }
      case NodeKind::dot4: return dot4_lane(n, i);
      case NodeKind::concat: {
        const int half = n.args[0]->type.lanes;
        return i < half ? lane(n.args[0], i) : lane(n.args[1], i - half);
      }
      case NodeKind::select: {
        const NodeRef& c = n.args[0];
        NodeRef cond = c->type.lanes == 1 ? scalar(c) : lane(c, i);
        return rebuilt(n, {cond, lane(n.args[1], i), lane(n.args[2], i)}, st);
      }
      case NodeKind::unary:
      case NodeKind::binary:
      case NodeKind::fma:
      case NodeKind::cast:
      case NodeKind::bitcast:
      case NodeKind::subgroup_reduce: {
        std::vector<NodeRef> args;
        for (const NodeRef& a : n.args) args.push_back(lane(a, i));
        return rebuilt(n, std::move(args), st);
      }
      default: break;
    }
    MOAT_INTERNAL_ERROR("scalarize: ", node_kind_name(n.kind), " has no lanes (kernel ", k_.name, ")");
  }

  // Lane i of a dot4: the accumulator plus 4 widened products.
  NodeRef dot4_lane(const Node& n, int i) {
    const NodeRef& b = n.args[2];
    NodeRef sum = n.args[0]->type.lanes == 1 ? scalar(n.args[0]) : lane(n.args[0], i);
    for (int e = 0; e < 4; ++e) {
      NodeRef x = cast(kI32, lane(n.args[1], 4 * i + e));
      NodeRef y = cast(kI32, lane(b, b->type.lanes == 4 ? e : 4 * i + e));
      sum = add(sum, binary(BinaryOp::mul, x, y));
    }
    return sum;
  }

  // A scalar expression with its vector subexpressions taken apart.
  NodeRef scalar(const NodeRef& e) {
    const Node& n = *e;
    MOAT_INTERNAL_CHECK(n.type.lanes == 1, "scalarize: a vector where a scalar is expected (kernel ", k_.name, ")");
    if (n.kind == NodeKind::dot4) return dot4_lane(n, 0);
    if (n.kind == NodeKind::reduce) {
      const NodeRef& x = n.args[0];
      std::vector<NodeRef> parts;
      for (int i = 0; i < x->type.lanes; ++i) parts.push_back(lane(x, i));
      const ReduceOp op = static_cast<ReduceOp>(n.op);
      const BinaryOp combine = op == ReduceOp::add ? BinaryOp::add : op == ReduceOp::max ? BinaryOp::max : BinaryOp::min;
      while (parts.size() > 1) {  // pairwise, like the vector emitters' halving
        std::vector<NodeRef> next;
        const size_t half = parts.size() / 2;
        for (size_t i = 0; i < half; ++i) next.push_back(binary(combine, parts[i], parts[i + half]));
        if (parts.size() % 2 == 1) next[0] = binary(combine, next[0], parts.back());
        parts = std::move(next);
      }
      return parts[0];
    }
    if (n.kind == NodeKind::extract) {
      const NodeRef& x = n.args[0];
      NodeRef at = scalar(n.args[1]);
      if (at->kind == NodeKind::constant) return lane(x, static_cast<int>(at->i));
      NodeRef out = lane(x, 0);
      for (int i = 1; i < x->type.lanes; ++i) out = select(binary(BinaryOp::eq, at, c_i64(i)), lane(x, i), out);
      return out;
    }
    bool changed = false;
    std::vector<NodeRef> args;
    for (const NodeRef& a : n.args) {
      args.push_back(scalar(a));
      changed = changed || args.back() != a;
    }
    return changed ? rebuilt(n, std::move(args), n.type) : e;
  }

  std::vector<NodeRef> stmts(const std::vector<NodeRef>& in) {
    std::vector<NodeRef> out;
    for (const NodeRef& s : in) stmt(*s, out);
    return out;
  }

  void stmt(const Node& n, std::vector<NodeRef>& out) {
    switch (n.kind) {
      case NodeKind::block: out.push_back(block(stmts(n.body))); return;
      case NodeKind::let:
      case NodeKind::var:
      case NodeKind::assign: {
        const NodeRef& v = n.args[0];
        auto make = [&](std::string name, NodeRef value) {
          return n.kind == NodeKind::let ? let(std::move(name), std::move(value))
                 : n.kind == NodeKind::var ? var(std::move(name), std::move(value))
                                           : assign(std::move(name), std::move(value));
        };
        if (v->type.lanes == 1) {
          out.push_back(make(n.name, scalar(v)));
          return;
        }
        for (int i = 0; i < v->type.lanes; ++i) out.push_back(make(lane_name(n.name, i), lane(v, i)));
        return;
      }
      case NodeKind::store: {
        const NodeRef& v = n.args[1];
        NodeRef index = scalar(n.args[0]);
        if (v->type.lanes == 1) {
          out.push_back(rebuilt(n, {index, scalar(v)}, n.type));
          return;
        }
        for (int i = 0; i < v->type.lanes; ++i) out.push_back(rebuilt(n, {plus(index, i), lane(v, i)}, n.type));
        return;
      }
      case NodeKind::for_loop:
        out.push_back(for_loop(n.name, scalar(n.args[0]), scalar(n.args[1]), scalar(n.args[2]), stmts(n.body)));
        return;
      case NodeKind::if_then: out.push_back(if_then(scalar(n.args[0]), stmts(n.body), stmts(n.else_body))); return;
      case NodeKind::barrier: out.push_back(barrier()); return;
      case NodeKind::load_vector: out.push_back(rebuilt(n, {scalar(n.args[0])}, n.type)); return;
      default: break;
    }
    MOAT_INTERNAL_ERROR("scalarize: ", node_kind_name(n.kind), " is not a statement (kernel ", k_.name, ")");
  }

  const Kernel& k_;
};

class VectorFinder : public Visitor {
 public:
  bool found = false;
  void visit_children(const Node& n) = delete;
#define MOAT_X(name, stmt)                                \
  void visit_##name(const Node& n) override {            \
    if (!stmt && n.type.lanes > 1) found = true;          \
    Visitor::visit_children(n);                           \
  }
  MOAT_KIR_NODES(MOAT_X)
#undef MOAT_X
};

}  // namespace

Kernel scalarize(const Kernel& kernel) { return Scalarizer(kernel).run(); }

bool has_vectors(const Kernel& kernel) {
  VectorFinder finder;
  finder.visit(*kernel.body);
  return finder.found;
}

}  // namespace moat::jit
