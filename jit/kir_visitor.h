// A visitor over Kernel IR: one virtual per node kind (from the X-macro), each walking
// the node's children by default (operands, then body, then else body); a pass or an
// emitter overrides only what it handles differently.
#pragma once

#include "jit/kir.h"

namespace moat::jit {

class Visitor {
 public:
  virtual ~Visitor() = default;

  void visit(const Node& n) {
    switch (n.kind) {
#define MOAT_X(name, stmt)   \
  case NodeKind::name:       \
    visit_##name(n);         \
    break;
      MOAT_KIR_NODES(MOAT_X)
#undef MOAT_X
    }
  }

  void visit_children(const Node& n) {
    for (const NodeRef& a : n.args) visit(*a);
    for (const NodeRef& s : n.body) visit(*s);
    for (const NodeRef& s : n.else_body) visit(*s);
  }

#define MOAT_X(name, stmt) \
  virtual void visit_##name(const Node& n) { visit_children(n); }
  MOAT_KIR_NODES(MOAT_X)
#undef MOAT_X
};

}  // namespace moat::jit
