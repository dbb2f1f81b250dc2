// The composites' expansions into primitives (the formulas are in ir/expand.h). Every
// view carries a shape comment; "..." are the leading dims of the input.
#include "ir/expand.h"


#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "support/error.h"

namespace moat::ir {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

NodeId to_f32(Builder& b, NodeId x) { return b.type(x).dtype == DType::f32 ? x : b.cast(x, DType::f32); }
NodeId to_dtype(Builder& b, NodeId x, DType dtype) { return b.type(x).dtype == dtype ? x : b.cast(x, dtype); }
NodeId f32_scalar(Builder& b, double value) { return b.scalar(DType::f32, value); }
Dim dim(int64_t n) { return Dim::of(n); }

// softmax over the last axis of an f32 tensor: exp(x - max) / sum.
NodeId softmax_f32(Builder& b, NodeId x) {
  NodeId m = b.reduce(Op::reduce_max, x, -1);        // [..., 1]
  NodeId e = b.unary(Op::exp, b.sub(x, m));          // [..., N]
  return b.div(e, b.reduce(Op::reduce_sum, e, -1));  // [..., N]
}

// y = (x * rsqrt(sum(x^2) / D + eps)) * w
NodeId expand_rms_norm(Builder& b, const Node& node, std::span<const NodeId> ops) {
  NodeId x = to_f32(b, ops[0]);  // [..., D]
  NodeId w = to_f32(b, ops[1]);  // [D]
  const Dim d = b.type(x).shape.back();
  // D as an f32 value; a symbolic D is counted at run time (a sum of ones, [1]).
  NodeId count = d.is_static() ? f32_scalar(b, static_cast<double>(d.value))
                               : b.reduce(Op::reduce_sum, b.broadcast(f32_scalar(b, 1.0), {d}), 0);
  NodeId mean = b.div(b.reduce(Op::reduce_sum, b.mul(x, x), -1), count);  // [..., 1]
  NodeId inv = b.unary(Op::rsqrt, b.add(mean, f32_scalar(b, attr_float(node, "eps"))));
  return to_dtype(b, b.mul(b.mul(x, inv), w), node.type.dtype);
}

NodeId expand_softmax(Builder& b, const Node& node, std::span<const NodeId> ops) {
  return to_dtype(b, softmax_f32(b, to_f32(b, ops[0])), node.type.dtype);
}

// (x0, x1) -> (x0 c - x1 s, x0 s + x1 c) with c, s = cos, sin(pos * f) * m.
NodeId expand_rope(Builder& b, const Node& node, std::span<const NodeId> ops) {
  const RopeFactors factors = rope_factors(node);
  const int64_t n_dims = attr_int(node, "n_dims"), half = n_dims / 2;
  const bool interleaved = attr_bool(node, "interleaved");
  NodeId x = to_f32(b, ops[0]);  // [..., T, H, D]
  const Shape xs = b.type(x).shape;
  const Dim t = xs[xs.size() - 3];
  const int64_t d = xs.back().value;

  NodeId pos = b.reshape(b.cast(ops[1], DType::f32), {t, dim(1)});          // [T, 1]
  NodeId freq = b.constant(TensorType{DType::f32, {dim(half)}}, factors.freq);  // [n/2]
  NodeId angle = b.mul(pos, freq);                                          // [T, n/2]
  NodeId m = f32_scalar(b, factors.mscale);
  NodeId cos = b.mul(b.unary(Op::cos, angle), m);                           // [T, n/2]
  NodeId sin = b.mul(b.unary(Op::sin, angle), m);                           // [T, n/2]

  NodeId rot = n_dims == d ? x : b.slice(x, -1, 0, n_dims);  // [..., T, H, n]
  NodeId x0, x1;
  Shape cs_shape;
  if (interleaved) {
    Shape pairs = xs;
    pairs.back() = dim(half);
    pairs.push_back(dim(2));
    NodeId p = b.reshape(rot, pairs);  // [..., T, H, n/2, 2]
    x0 = b.slice(p, -1, 0, 1);         // [..., T, H, n/2, 1]
    x1 = b.slice(p, -1, 1, 2);         // [..., T, H, n/2, 1]
    cs_shape = {t, dim(1), dim(half), dim(1)};
  } else {
    x0 = b.slice(rot, -1, 0, half);       // [..., T, H, n/2]
    x1 = b.slice(rot, -1, half, n_dims);  // [..., T, H, n/2]
    cs_shape = {t, dim(1), dim(half)};
  }
  NodeId c = b.reshape(cos, cs_shape);  // [T, 1, n/2(, 1)]
  NodeId s = b.reshape(sin, cs_shape);
  NodeId y0 = b.sub(b.mul(x0, c), b.mul(x1, s));
  NodeId y1 = b.add(b.mul(x0, s), b.mul(x1, c));
  NodeId y = b.concat({y0, y1}, -1);  // [..., T, H, n/2, 2] or [..., T, H, n]
  if (interleaved) {
    Shape rs = xs;
    rs.back() = dim(n_dims);
    y = b.reshape(y, rs);  // [..., T, H, n]
  }
  if (n_dims < d) y = b.concat({y, b.slice(x, -1, n_dims, d)}, -1);  // [..., T, H, D]
  return to_dtype(b, y, node.type.dtype);
}

// out[t, h] = softmax_j(mask((q_t . k_j) * scale) + bias[t, j]) . v   with kv head h / (H / Hkv).
NodeId expand_attention(Builder& b, const Node& node, std::span<const NodeId> ops) {
  NodeId q = to_f32(b, ops[0]);  // [T, H, Dk]
  NodeId k = to_f32(b, ops[1]);  // [S, Hkv, Dk]
  NodeId v = to_f32(b, ops[2]);  // [S, Hkv, Dv]
  const Shape qs = b.type(q).shape, ks = b.type(k).shape, vs = b.type(v).shape;
  const Dim t = qs[0], s = ks[0], dk = qs[2], dv = vs[2];
  const int64_t h = qs[1].value, hkv = ks[1].value, g = h / hkv;

  NodeId q4 = b.permute(b.reshape(q, {t, dim(hkv), dim(g), dk}), {1, 2, 0, 3});  // [Hkv, G, T, Dk]
  NodeId k4 = b.reshape(b.permute(k, {1, 0, 2}), {dim(hkv), dim(1), s, dk});      // [Hkv, 1, S, Dk]
  NodeId v4 = b.reshape(b.permute(v, {1, 0, 2}), {dim(hkv), dim(1), s, dv});      // [Hkv, 1, S, Dv]
  NodeId scores = b.mul(b.matmul(q4, k4, true), f32_scalar(b, attr_float(node, "scale")));  // [Hkv, G, T, S]
  if (attr_bool(node, "causal")) {
    NodeId key_pos = b.iota(DType::i32, s);                             // [S]
    NodeId query_pos = b.reshape(ops[3], {t, dim(1)});                  // [T, 1]
    NodeId future = b.binary(Op::cmp_lt, query_pos, key_pos);           // [T, S]: j > q_pos[t]
    scores = b.select(future, f32_scalar(b, -kInf), scores);            // [Hkv, G, T, S]
  }
  const AttentionOperands at = attention_operands(node);
  if (at.key_starts >= 0) {
    NodeId key_pos = b.iota(DType::i32, s);                             // [S]
    NodeId start = b.reshape(ops[static_cast<size_t>(at.key_starts)], {t, dim(1)});  // [T, 1]
    NodeId before = b.binary(Op::cmp_lt, key_pos, start);               // [T, S]: j < key_start[t]
    scores = b.select(before, f32_scalar(b, -kInf), scores);            // [Hkv, G, T, S]
  }
  if (at.key_bias >= 0) scores = b.add(scores, ops[static_cast<size_t>(at.key_bias)]);  // [Hkv, G, T, S] + [T, S]
  NodeId probs;                                                          // [Hkv, G, T, S]
  if (at.sinks >= 0) {  // softmax over the keys and the head's sink, the sink's share dropped
    NodeId sink = b.reshape(ops[static_cast<size_t>(at.sinks)], {dim(hkv), dim(g), dim(1), dim(1)});
    NodeId m = b.binary(Op::max, b.reduce(Op::reduce_max, scores, -1), sink);      // [Hkv, G, T, 1]
    NodeId e = b.unary(Op::exp, b.sub(scores, m));
    NodeId denom = b.add(b.reduce(Op::reduce_sum, e, -1), b.unary(Op::exp, b.sub(sink, m)));
    probs = b.div(e, denom);
  } else {
    probs = softmax_f32(b, scores);
  }
  NodeId out = b.matmul(probs, v4, false);                               // [Hkv, G, T, Dv]
  out = b.reshape(b.permute(out, {2, 0, 1, 3}), {t, dim(h), dv});        // [T, H, Dv]
  return to_dtype(b, out, node.type.dtype);
}

// Selection scores with the groups that are not among the topk_groups best set to -inf.
NodeId mask_groups(Builder& b, NodeId sel, const std::string& method, int64_t groups, int64_t topk_groups) {
  const Shape ss = b.type(sel).shape;  // [T, E]
  const Dim t = ss[0];
  const int64_t per = ss[1].value / groups;
  NodeId grouped = b.reshape(sel, {t, dim(groups), dim(per)});  // [T, G, E/G]
  NodeId group_score;                                           // [T, G, 1]
  if (method == "group_limited_greedy") {
    group_score = b.reduce(Op::reduce_max, grouped, -1);
  } else {  // noaux_tc: sum of the group's top-2
    NodeId top = b.topk(grouped, std::min<int64_t>(2, per));  // i32 [T, G, 2]
    group_score = b.reduce(Op::reduce_sum, b.take_along(grouped, top), -1);
  }
  NodeId keep = b.topk(b.reshape(group_score, {t, dim(groups)}), topk_groups);  // i32 [T, kg]
  NodeId hit = b.binary(Op::cmp_eq, b.reshape(keep, {t, dim(topk_groups), dim(1)}),
                        b.iota(DType::i32, dim(groups)));                      // bool [T, kg, G]
  NodeId kept = b.reduce(Op::reduce_max, b.cast(hit, DType::i32), 1);         // i32 [T, 1, G]
  kept = b.cast(b.reshape(kept, {t, dim(groups), dim(1)}), DType::boolean);   // bool [T, G, 1]
  NodeId masked = b.select(kept, grouped, f32_scalar(b, -kInf));              // [T, G, E/G]
  return b.reshape(masked, ss);                                               // [T, E]
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|), with log1p(y) = log(u) * y /
// (u - 1) for u = 1 + y (exact to rounding; y where u rounds to 1).
NodeId softplus_f32(Builder& b, NodeId x) {
  NodeId y = b.unary(Op::exp, b.unary(Op::neg, b.unary(Op::abs, x)));  // (0, 1]
  NodeId one = f32_scalar(b, 1.0);
  NodeId u = b.add(one, y);
  NodeId log1p = b.select(b.binary(Op::cmp_eq, u, one), y, b.mul(b.unary(Op::log, u), b.div(y, b.sub(u, one))));
  return b.add(b.binary(Op::max, x, f32_scalar(b, 0.0)), log1p);
}

// The routing of moe: each token's selected experts and their weights.
MoeRouting moe_routing(Builder& b, const Node& node, std::span<const NodeId> ops) {
  const std::string& scoring = attr_string(node, "scoring");
  const std::string& method = attr_string(node, "method");
  const int64_t n_used = attr_int(node, "n_used"), groups = attr_int(node, "n_groups");
  NodeId x = to_f32(b, ops[0]);  // [T, D]

  NodeId logits = b.matmul(x, ops[1], true);  // [T, E]
  NodeId scores = scoring == "softmax"   ? softmax_f32(b, logits)
                  : scoring == "sigmoid" ? b.unary(Op::sigmoid, logits)
                                         : b.unary(Op::sqrt, softplus_f32(b, logits));
  NodeId idx;  // i32 [T, n_used]
  if (method == "given") {
    idx = ops[5];
  } else {
    NodeId sel = ops.size() == 6 ? b.add(scores, ops[5]) : scores;  // [T, E]
    if (method != "greedy" && groups > 1) sel = mask_groups(b, sel, method, groups, attr_int(node, "topk_groups"));
    idx = b.topk(sel, n_used);
  }
  NodeId w = b.take_along(scores, idx);     // [T, n_used]
  if (attr_bool(node, "norm_topk")) {
    NodeId sum = b.reduce(Op::reduce_sum, w, -1);  // [T, 1]
    if (scoring != "softmax") sum = b.add(sum, f32_scalar(b, 1e-20));
    w = b.div(w, sum);
  }
  w = b.mul(w, f32_scalar(b, attr_float(node, "scale")));
  return {x, idx, w};
}

// out = sum_j w_j * down_j . (silu(gate_j . x) * up_j . x) over the selected experts;
// with a share of the experts (gate / up / down of E_local < E experts from `first`),
// only those contribute.
NodeId moe_experts(Builder& b, const Node& node, std::span<const NodeId> ops, const MoeRouting& routing, int64_t first) {
  const int64_t n_used = attr_int(node, "n_used");
  NodeId x = routing.x, idx = routing.idx, w = routing.w;
  const Dim t = b.type(x).shape[0], d = b.type(x).shape[1];
  const int64_t experts = b.type(ops[1]).shape[0].value, local = b.type(ops[2]).shape[0].value;
  if (first != 0 || local != experts) {  // a share: the other experts' weights are 0, their indices clamped into it
    NodeId below = b.binary(Op::cmp_lt, idx, b.scalar(DType::i32, static_cast<double>(first)));
    NodeId above = b.binary(Op::cmp_lt, b.scalar(DType::i32, static_cast<double>(first + local - 1)), idx);
    NodeId zero = f32_scalar(b, 0.0);
    NodeId first_index = b.scalar(DType::i32, static_cast<double>(first));
    w = b.select(above, zero, b.select(below, zero, w));                           // [T, n_used]
    idx = b.sub(b.select(above, first_index, b.select(below, first_index, idx)), first_index);  // i32 [T, n_used], 0..local-1
  }
  NodeId gate = b.gather(ops[2], idx);  // [T, n_used, F, D]
  NodeId up = b.gather(ops[3], idx);    // [T, n_used, F, D]
  NodeId down = b.gather(ops[4], idx);  // [T, n_used, D, F]
  NodeId xa = b.reshape(x, {t, dim(1), dim(1), d});                                          // [T, 1, 1, D]
  NodeId gate_x = b.matmul_weight(xa, gate), up_x = b.matmul_weight(xa, up);                // [T, n_used, 1, F]
  if (const double limit = attr_float(node, "swiglu_limit"); limit > 0) {
    gate_x = b.binary(Op::min, gate_x, f32_scalar(b, limit));
    up_x = b.binary(Op::max, b.binary(Op::min, up_x, f32_scalar(b, limit)), f32_scalar(b, -limit));
  }
  NodeId hidden = b.mul(b.unary(Op::silu, gate_x), up_x);                                   // [T, n_used, 1, F]
  NodeId expert_out = b.matmul_weight(hidden, down);                                         // [T, n_used, 1, D]
  NodeId weighted = b.mul(expert_out, b.reshape(w, {t, dim(n_used), dim(1), dim(1)}));        // [T, n_used, 1, D]
  NodeId out = b.reshape(b.reduce(Op::reduce_sum, weighted, 1), {t, d});                     // [T, D]
  return to_dtype(b, out, node.type.dtype);
}

NodeId expand_moe(Builder& b, const Node& node, std::span<const NodeId> ops) {
  return moe_experts(b, node, ops, moe_routing(b, node, ops), 0);
}

}  // namespace

MoeRouting expand_moe_routing(Builder& b, const Node& moe, std::span<const NodeId> operands) {
  MOAT_INTERNAL_CHECK(moe.op == Op::moe && operands.size() == moe.operands.size(), "expand_moe_routing of ", op_name(moe.op));
  return moe_routing(b, moe, operands);
}

NodeId expand_moe_experts(Builder& b, const Node& moe, std::span<const NodeId> operands, const MoeRouting& routing,
                          int64_t first_expert) {
  MOAT_INTERNAL_CHECK(moe.op == Op::moe && operands.size() == moe.operands.size(), "expand_moe_experts of ", op_name(moe.op));
  return moe_experts(b, moe, operands, routing, first_expert);
}

RopeFactors rope_factors(const Node& node) {
  const int64_t n_dims = attr_int(node, "n_dims");
  const double theta = attr_float(node, "theta"), freq_scale = attr_float(node, "freq_scale");
  const double ext_factor = attr_float(node, "ext_factor");
  // ggml_rope_yarn_corr_dims, in f32 as ggml computes it (its floor / ceil decide
  // which pairs ramp).
  auto corr_dim = [&](double beta) {
    return static_cast<float>(n_dims) *
           std::log(static_cast<float>(attr_int(node, "orig_ctx")) / (static_cast<float>(beta) * 2.0f * std::numbers::pi_v<float>)) /
           (2.0f * std::log(static_cast<float>(theta)));
  };
  const float lo = std::max(0.0f, std::floor(corr_dim(attr_float(node, "beta_fast"))));
  const float hi = std::min(static_cast<float>(n_dims - 1), std::ceil(corr_dim(attr_float(node, "beta_slow"))));

  RopeFactors f;
  f.mscale = attr_float(node, "attn_factor");
  if (ext_factor != 0.0) f.mscale *= 1.0 + 0.1 * std::log(1.0 / freq_scale);
  for (int64_t i = 0; i < n_dims / 2; ++i) {
    double extrap = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(n_dims));
    double mix = 0.0;
    if (ext_factor != 0.0) {
      double y = (static_cast<double>(i) - lo) / std::max(0.001, static_cast<double>(hi) - lo);
      mix = (1.0 - std::clamp(y, 0.0, 1.0)) * ext_factor;
    }
    f.freq.push_back(extrap * (freq_scale * (1.0 - mix) + mix));
  }
  return f;
}

NodeId expand_composite(Builder& b, const Node& node, std::span<const NodeId> operands) {
  MOAT_INTERNAL_CHECK(operands.size() == node.operands.size(), op_name(node.op), ": ", operands.size(),
                      " operands for a node with ", node.operands.size());
  NodeId out = -1;
  switch (node.op) {
    case Op::rms_norm: out = expand_rms_norm(b, node, operands); break;
    case Op::softmax: out = expand_softmax(b, node, operands); break;
    case Op::rope: out = expand_rope(b, node, operands); break;
    case Op::attention: out = expand_attention(b, node, operands); break;
    case Op::moe: out = expand_moe(b, node, operands); break;
    default: throw InternalError(cat("expand_composite: ", op_name(node.op), " is not a composite"));
  }
  MOAT_INTERNAL_CHECK(b.type(out) == node.type, op_name(node.op), " expanded to ", to_string(b.type(out)),
                      ", expected ", to_string(node.type));
  return out;
}

Graph expand_composites(const Graph& graph, std::span<const Op> keep) {
  Graph out;
  out.name = graph.name;
  out.symbols = graph.symbols;
  Builder b(out);
  std::vector<NodeId> map(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    std::vector<NodeId> operands;
    for (NodeId o : node.operands) operands.push_back(map[static_cast<size_t>(o)]);
    const bool expand = op_kind(node.op) == OpKind::Composite && std::find(keep.begin(), keep.end(), node.op) == keep.end();
    map[i] = expand ? expand_composite(b, node, operands)
                                                  : b.add_node(node.op, std::move(operands), node.attrs, node.type);
  }
  for (NodeId o : graph.outputs) out.outputs.push_back(map[static_cast<size_t>(o)]);
  return out;
}

}  // namespace moat::ir
