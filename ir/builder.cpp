#include "ir/builder.h"


#include <algorithm>

#include "ir/infer.h"
#include "ir/quant.h"
#include "support/error.h"

namespace moat::ir {

Dim Builder::symbol(const std::string& name) {
  if (std::find(graph_.symbols.begin(), graph_.symbols.end(), name) == graph_.symbols.end())
    graph_.symbols.push_back(name);
  return Dim::sym(name);
}

NodeId Builder::add_node(Op op, std::vector<NodeId> operands, Attrs attrs, TensorType declared) {
  Node node{op, std::move(operands), std::move(attrs), std::move(declared)};
  NodeId id = static_cast<NodeId>(graph_.nodes.size());
  try {
    node.type = infer_type(graph_, node);
  } catch (const UserError& e) {
    user_error("graph ", graph_.name, ": %", id, " (", op_name(op), "): ", e.what());
  }
  graph_.nodes.push_back(std::move(node));
  return id;
}

NodeId Builder::input(const std::string& name, TensorType type) {
  return add_node(Op::input, {}, {{"name", name}}, std::move(type));
}
NodeId Builder::param(const std::string& name, TensorType type) {
  return add_node(Op::param, {}, {{"name", name}}, std::move(type));
}
NodeId Builder::constant(TensorType type, std::vector<double> values) {
  return add_node(Op::constant, {}, {{"value", std::move(values)}}, std::move(type));
}
NodeId Builder::scalar(DType dtype, double value) { return constant(TensorType{dtype, {}}, {value}); }
NodeId Builder::iota(DType dtype, Dim n) { return add_node(Op::iota, {}, {}, TensorType{dtype, {std::move(n)}}); }

NodeId Builder::unary(Op op, NodeId x) { return add_node(op, {x}); }
NodeId Builder::binary(Op op, NodeId a, NodeId b) { return add_node(op, {a, b}); }
NodeId Builder::select(NodeId cond, NodeId a, NodeId b) { return add_node(Op::select, {cond, a, b}); }
NodeId Builder::reduce(Op op, NodeId x, int64_t axis) { return add_node(op, {x}, {{"axis", axis}}); }

NodeId Builder::matmul(NodeId a, NodeId b, bool b_transposed) {
  return add_node(Op::matmul, {a, b}, {{"b_transposed", b_transposed}});
}
NodeId Builder::matmul_weight(NodeId a, NodeId w) {
  const DType activation = activation_dtype(type(w).dtype);
  if (activation != DType::f32 && type(a).dtype != activation) {
    auto [it, made] = quantised_of_.try_emplace({a, activation}, a);
    if (made) it->second = cast(a, activation);
    a = it->second;
  }
  return matmul(a, w, true);
}
NodeId Builder::matmul_fp8(NodeId a, NodeId b, NodeId block_scales, int64_t block_rows, int64_t block_cols) {
  return add_node(Op::matmul, {a, b, block_scales},
                  {{"b_transposed", true}, {"block", std::vector<int64_t>{block_rows, block_cols}}});
}

NodeId Builder::gather(NodeId table, NodeId indices) { return add_node(Op::gather, {table, indices}); }
NodeId Builder::take_along(NodeId x, NodeId indices) { return add_node(Op::take_along, {x, indices}); }
NodeId Builder::write_rows(NodeId dst, NodeId rows, NodeId at) { return add_node(Op::write_rows, {dst, rows, at}); }

NodeId Builder::reshape(NodeId x, Shape shape) {
  return add_node(Op::reshape, {x}, {}, TensorType{type(x).dtype, std::move(shape)});
}
NodeId Builder::broadcast(NodeId x, Shape shape) {
  return add_node(Op::broadcast, {x}, {}, TensorType{type(x).dtype, std::move(shape)});
}
NodeId Builder::permute(NodeId x, std::vector<int64_t> perm) {
  return add_node(Op::permute, {x}, {{"perm", std::move(perm)}});
}
NodeId Builder::slice(NodeId x, int64_t axis, int64_t start, int64_t end) {
  return add_node(Op::slice, {x}, {{"axis", axis}, {"start", start}, {"end", end}});
}
NodeId Builder::concat(std::vector<NodeId> parts, int64_t axis) {
  return add_node(Op::concat, std::move(parts), {{"axis", axis}});
}
NodeId Builder::cast(NodeId x, DType dtype) { return add_node(Op::cast, {x}, {}, TensorType{dtype, type(x).shape}); }
NodeId Builder::topk(NodeId x, int64_t k) { return add_node(Op::topk, {x}, {{"k", k}}); }
NodeId Builder::kth_largest(NodeId x, int64_t k) { return add_node(Op::kth_largest, {x}, {{"k", k}}); }

NodeId Builder::rms_norm(NodeId x, NodeId weight, double eps) {
  return add_node(Op::rms_norm, {x, weight}, {{"eps", eps}});
}
NodeId Builder::softmax(NodeId x) { return add_node(Op::softmax, {x}); }

NodeId Builder::rope(NodeId x, NodeId positions, const RopeParams& p) {
  return add_node(Op::rope, {x, positions},
                  {{"n_dims", p.n_dims},
                   {"theta", p.theta},
                   {"interleaved", p.interleaved},
                   {"freq_scale", p.freq_scale},
                   {"ext_factor", p.ext_factor},
                   {"attn_factor", p.attn_factor},
                   {"beta_fast", p.beta_fast},
                   {"beta_slow", p.beta_slow},
                   {"orig_ctx", p.orig_ctx}});
}

NodeId Builder::attention(NodeId q, NodeId k, NodeId v, NodeId q_positions, double scale, bool causal,
                          std::optional<NodeId> key_starts, std::optional<NodeId> key_bias, std::optional<NodeId> sinks) {
  std::vector<NodeId> operands{q, k, v, q_positions};
  if (key_bias && !key_starts) key_starts = broadcast(scalar(DType::i32, 0), type(q_positions).shape);
  if (key_starts) operands.push_back(*key_starts);
  if (key_bias) operands.push_back(*key_bias);
  if (sinks) operands.push_back(*sinks);
  return add_node(Op::attention, std::move(operands), {{"scale", scale}, {"causal", causal}, {"sinks", sinks.has_value()}});
}

NodeId Builder::moe(NodeId x, NodeId router, NodeId gate, NodeId up, NodeId down, std::optional<NodeId> bias,
                    const MoeParams& p, std::optional<NodeId> experts) {
  std::vector<NodeId> operands{x, router, gate, up, down};
  if (bias) operands.push_back(*bias);
  if (experts) operands.push_back(*experts);
  return add_node(Op::moe, std::move(operands),
                  {{"n_used", p.n_used},
                   {"scoring", p.scoring},
                   {"method", p.method},
                   {"n_groups", p.n_groups},
                   {"topk_groups", p.topk_groups},
                   {"norm_topk", p.norm_topk},
                   {"scale", p.scale},
                   {"swiglu_limit", p.swiglu_limit}});
}

}  // namespace moat::ir
