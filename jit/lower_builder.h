// Internal to the lowering: the state shared by the kernel lowerings (concrete shapes,
// which nodes own buffers) and KernelBuilder, which assembles one kernel and renders
// any inlined node's value at given indices as a Kernel IR expression.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "jit/lower.h"

namespace moat::jit {

struct LowerContext {
  const ir::Graph& graph;                     // composites expanded
  std::vector<std::vector<int64_t>> shapes;   // concrete shape of every node
  std::vector<int> buffer_of;                 // plan buffer of a materialised node, else -1
  Plan& plan;
  const Schedule& schedule;
  // A weight in the packed CPU layout (jit/weight_packing.h): buffer_of holds its quads,
  // this its scales; -1 for every other node.
  std::vector<int> packed_scales_of;
  // A float weight in tiles of 16 rows (jit/weight_packing.h): buffer_of holds the tiles.
  std::vector<bool> float_tiles_of;

  const std::vector<int64_t>& shape(ir::NodeId id) const { return shapes.at(static_cast<size_t>(id)); }
  const ir::Node& node(ir::NodeId id) const { return graph.node(id); }
};

int64_t numel(const std::vector<int64_t>& shape);

// The type a node's value has inside a kernel: f32 for every float and quantised
// dtype (values are rounded through the node's own dtype), the integer's own width,
// i1 for bool.
Type value_type(ir::DType d);

// Index arithmetic on i64 expressions, folding constants.
NodeRef iadd(NodeRef a, NodeRef b);
NodeRef imul(NodeRef a, NodeRef b);
NodeRef idiv(NodeRef a, int64_t b);
NodeRef irem(NodeRef a, int64_t b);
NodeRef isub(NodeRef a, int64_t b);  // a - b, folded into a's constant term where it has one
NodeRef linear_index(const std::vector<NodeRef>& idx, const std::vector<int64_t>& shape);
std::vector<NodeRef> delinearize(NodeRef linear, const std::vector<int64_t>& shape);

class KernelBuilder {
 public:
  explicit KernelBuilder(LowerContext& ctx);

  Kernel& kernel() { return kernel_; }
  LowerContext& ctx() { return ctx_; }
  // The kernel's buffer parameter for plan buffer `plan_buffer` (added on first use).
  int use(int plan_buffer, bool written);
  // A name not used before in this kernel ("prefix" + number).
  std::string fresh(std::string_view prefix);

  // The value of node `id` at `idx` (one i64 per dimension of its shape): a load from
  // its buffer when materialised, else its op applied to its operands' values.
  NodeRef value_at(ir::NodeId id, const std::vector<NodeRef>& idx);
  // The value computed from the node's operands even when the node is materialised (the
  // kernel that fills its buffer). Only elementwise, view and gather nodes.
  NodeRef compute_at(ir::NodeId id, const std::vector<NodeRef>& idx);
  // Loads element `idx` of plan buffer `buffer` (dtype / shape as declared) as a value.
  NodeRef load_value(int buffer, const std::vector<NodeRef>& idx);
  // A value converted to the storage type of dtype `d` for a store.
  NodeRef to_storage(NodeRef value, ir::DType d) const;
  // Stores `value` (a value of node dtype) at `idx` of plan buffer `buffer`.
  NodeRef store_value(int buffer, const std::vector<NodeRef>& idx, NodeRef value);

  // While set, the computed concat node `concat` yields only its operand `part` (at the
  // index less the part's offset, without the selects between parts): a loop over one
  // part's range of the last axis (row_loops) computes what is above the concat once
  // per part.
  struct ConcatPart {
    ir::NodeId concat = -1;
    size_t part = 0;
  };
  ConcatPart concat_part;

  // Completes the kernel; its name is `prefix` plus a hash of its text, so identical
  // kernels (the same layer repeated) share one name and one compiled artifact.
  PlanKernel finish(std::string_view prefix, std::vector<NodeRef> body);

 private:
  NodeRef elementwise(const ir::Node& node, ir::NodeId id, const std::vector<NodeRef>& idx);
  NodeRef view(const ir::Node& node, ir::NodeId id, const std::vector<NodeRef>& idx);
  NodeRef operand_at(ir::NodeId operand, const std::vector<NodeRef>& out_idx);  // numpy broadcasting

  LowerContext& ctx_;
  Kernel kernel_;
  std::vector<int> args_;         // plan buffer per global kernel buffer, in order
  std::vector<int> arg_buffers_;  // kernel buffer index of args_[i]
  int counter_ = 0;
};

}  // namespace moat::jit
