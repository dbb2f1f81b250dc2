#include "frontend/models/deepseek4_blocks.h"

namespace moat::models {

using ir::Dim;
using ir::DType;
using ir::NodeId;
using ir::Op;

namespace {

NodeId f32(ir::Builder& b, double v) { return b.scalar(DType::f32, v); }

}  // namespace

NodeId unweighted_rms_norm(ir::Builder& b, NodeId x, double eps) {
  const int64_t k = b.type(x).shape.back().value;
  NodeId mean = b.div(b.reduce(Op::reduce_sum, b.mul(x, x), -1), f32(b, static_cast<double>(k)));  // [..., 1]
  return b.mul(x, b.unary(Op::rsqrt, b.add(mean, f32(b, eps))));
}

namespace {

// The streams [T, N, D] flattened to [T, N D], normalised, projected by fn: [T, rows of fn].
NodeId mix_of(ir::Builder& b, NodeId streams, NodeId fn, double rms_eps) {
  const ir::Shape s = b.type(streams).shape;
  NodeId flat = b.reshape(streams, {s[0], Dim::of(s[1].value * s[2].value)});  // [T, N D]
  return b.matmul(unweighted_rms_norm(b, flat, rms_eps), fn, true);
}

// sum_j weights[t, j] streams[t, j, :]: weights [T, N] -> [T, D].
NodeId collapse(ir::Builder& b, NodeId weights, NodeId streams) {
  const ir::Shape s = b.type(streams).shape;
  NodeId weighted = b.mul(b.reshape(weights, {s[0], s[1], Dim::of(1)}), streams);  // [T, N, D]
  return b.reshape(b.reduce(Op::reduce_sum, weighted, 1), {s[0], s[2]});
}

// element i of a 1-D weight, as a scalar-like [1] for broadcasting
NodeId element(ir::Builder& b, NodeId v, int64_t i) { return b.slice(v, 0, i, i + 1); }

}  // namespace

NodeId sinkhorn(ir::Builder& b, NodeId comb, int64_t iters, double eps) {
  auto by_columns = [&](NodeId c) { return b.div(c, b.add(b.reduce(Op::reduce_sum, c, 1), f32(b, eps))); };  // sums over j
  auto by_rows = [&](NodeId c) { return b.div(c, b.add(b.reduce(Op::reduce_sum, c, 2), f32(b, eps))); };     // sums over k
  comb = by_columns(comb);
  for (int64_t i = 1; i < iters; ++i) comb = by_columns(by_rows(comb));
  return comb;
}

HyperMix hyper_pre(ir::Builder& b, NodeId streams, const HyperWeights& w, double rms_eps, double hc_eps,
                   int64_t sinkhorn_iters) {
  const ir::Shape s = b.type(streams).shape;
  const int64_t n = s[1].value;
  NodeId mix = mix_of(b, streams, w.fn, rms_eps);  // [T, (2 + N) N]
  auto part = [&](int64_t first, int64_t count, int64_t scale) {
    NodeId m = b.mul(b.slice(mix, 1, first, first + count), element(b, w.scale, scale));
    return b.add(m, b.slice(w.base, 0, first, first + count));
  };
  NodeId pre = b.add(b.unary(Op::sigmoid, part(0, n, 0)), f32(b, hc_eps));                 // [T, N]
  NodeId post = b.mul(b.unary(Op::sigmoid, part(n, n, 1)), f32(b, 2.0));                   // [T, N]
  NodeId comb = b.softmax(b.reshape(part(2 * n, n * n, 2), {s[0], Dim::of(n), Dim::of(n)}));  // [T, N(j), N(k)]
  comb = sinkhorn(b, b.add(comb, f32(b, hc_eps)), sinkhorn_iters, hc_eps);
  return {post, comb, collapse(b, pre, streams)};
}

NodeId hyper_post(ir::Builder& b, const HyperMix& mix, NodeId block_out, NodeId streams) {
  const ir::Shape s = b.type(streams).shape;
  NodeId expanded = b.mul(b.reshape(mix.post, {s[0], s[1], Dim::of(1)}), b.reshape(block_out, {s[0], Dim::of(1), s[2]}));
  NodeId mixed = b.matmul(b.permute(mix.comb, {0, 2, 1}), streams, false);  // [T, N(k), N(j)] . [T, N(j), D]
  return b.add(expanded, mixed);                                           // [T, N, D]
}

NodeId hyper_head(ir::Builder& b, NodeId streams, const HyperWeights& w, double rms_eps, double hc_eps) {
  NodeId mix = mix_of(b, streams, w.fn, rms_eps);  // [T, N]
  NodeId pre = b.add(b.unary(Op::sigmoid, b.add(b.mul(mix, w.scale), w.base)), f32(b, hc_eps));
  return collapse(b, pre, streams);
}

}  // namespace moat::models
