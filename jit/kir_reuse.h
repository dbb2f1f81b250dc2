// Which Kernel IR expressions an emitter may compute once and reuse while they are in
// scope: those that read no memory (loads and dequants see stores), take part in no
// collective operation, and refer to no mutable var. Shared by the emitters that cache
// emitted values (LLVM, PTX).
#pragma once

#include <unordered_map>

#include "jit/kir.h"

namespace moat::jit {

class ReuseAnalysis {
 public:
  // `immutable_ref(name)`: whether `name` is bound, here, to a let or a loop variable.
  template <class ImmutableRef>
  bool reusable(const Node& n, ImmutableRef&& immutable_ref) {
    auto it = memo_.find(&n);
    if (it != memo_.end()) return it->second;
    bool ok = n.kind != NodeKind::load && n.kind != NodeKind::dequant && n.kind != NodeKind::qdot &&
              n.kind != NodeKind::qscale &&
              n.kind != NodeKind::subgroup_reduce;
    if (n.kind == NodeKind::ref) ok = immutable_ref(n.name);
    for (const NodeRef& a : n.args) ok = ok && reusable(*a, immutable_ref);
    if (n.kind != NodeKind::ref) memo_[&n] = ok;  // a name can be rebound in another scope
    return ok;
  }

 private:
  std::unordered_map<const Node*, bool> memo_;
};

}  // namespace moat::jit
