// Composite ops defined by their expansion into primitives. The expansion IS the
// definition: the reference interpreter runs it, and every kernel of a composite is
// tested against it. All composites compute in f32 (f16 / bf16 operands are cast to
// f32 first, the result back to the node's dtype).
//
//   rms_norm(x[..., D], w[D], eps)
//       y = (x * rsqrt(sum(x^2, last) / D + eps)) * w
//   softmax(x[..., N])       over the last axis
//       y = exp(x - max(x)) / sum(exp(x - max(x)))
//   rope(x[..., T, H, D], pos i32[T])   ggml_rope_ext (llama.cpp) semantics
//       pair i in [0, n_dims/2): (x0, x1) = (x[2i], x[2i+1]) interleaved, or
//       (x[i], x[i + n_dims/2]) NeoX; angle = pos[t] * f[i] with
//         f[i] = theta^(-2i/n_dims) * (freq_scale * (1 - mix_i) + mix_i),
//         mix_i = ext_factor * ramp(i) (0 without YaRN), ramp(i) = 1 - clamp((i - lo) /
//         max(0.001, hi - lo), 0, 1), [lo, hi] = ggml_rope_yarn_corr_dims(n_dims,
//         orig_ctx, theta, beta_fast, beta_slow);
//       m = attn_factor * (ext_factor != 0 ? 1 + 0.1 ln(1 / freq_scale) : 1);
//       c = cos(angle) * m, s = sin(angle) * m; (x0, x1) -> (x0 c - x1 s, x0 s + x1 c);
//       dims >= n_dims pass through. f and m are host constants (f32) computed at
//       expansion time; the positions stay a runtime input.
//   attention(q[T, H, Dk], k[S, Hkv, Dk], v[S, Hkv, Dv], q_pos i32[T], key_start? i32[T],
//             key_bias? f32[T, S], sinks? f32[H], scale, causal)
//       query head h reads kv head h / (H / Hkv); scores[t, j] = (q_t . k_j) * scale,
//       set to -inf where causal and j > q_pos[t] (key positions are 0..S-1), and where
//       j < key_start[t] when given (several sequences' rows in one cache); plus
//       key_bias[t, j] when given (0 or -inf: the keys a sparse attention selects);
//       out[t, h] = sum_j softmax_j(scores[t, :]) * v_j  -> [T, H, Dv]; with sinks
//       the softmax's denominator also holds exp(sinks[h]) (DeepSeek-V4, gpt-oss).
//       A row with every key masked gives NaN (0 with sinks). k and v may be q8_0 (a quantised
//       cache), decoded to f32 first like f16 / bf16 ones.
//   moe(x[T, D], router[E, D], gate[E, F, D], up[E, F, D], down[E, D, F], bias?[E] | experts?)
//       scores = softmax, sigmoid or sqrt(softplus) of x . router^T (softplus(z) =
//       max(z, 0) + log1p(e^-|z|)); sel = scores + bias (when given);
//       grouping (methods other than greedy, n_groups G > 1): group score = max of the
//       group's sel (group_limited_greedy) or the sum of its top-2 sel (noaux_tc; top-1
//       for one-expert groups); the topk_groups best groups are kept, the rest of sel
//       is set to -inf; idx = topk(sel, n_used) (largest first), or with method
//       "given" the operand experts i32[T, n_used] (DeepSeek-V4's hash layers);
//       w = scores[idx] (unbiased); norm_topk: w /= sum(w) (+ 1e-20 unless softmax);
//       w *= scale; out = sum_j w_j * down_j . (silu(g_j) * u_j), g_j = gate_j . x and
//       u_j = up_j . x, clamped when swiglu_limit L > 0: g_j = min(g_j, L), u_j =
//       clamp(u_j, -L, L); j in idx order. Only the selected experts are read: their
//       weights are gathered by index and multiplied as a batch.
#pragma once

#include <span>

#include "ir/builder.h"
#include "ir/graph.h"

namespace moat::ir {

// Appends the primitive expansion of composite `node` to builder b, with `operands` the
// ids (in b's graph) of the node's operands; returns the id of the result, whose type
// equals node.type.
NodeId expand_composite(Builder& b, const Node& node, std::span<const NodeId> operands);

// moe in two parts, for expert parallelism: the routing (each token's selected experts
// idx i32[T, n_used] and their weights w f32[T, n_used], from x as f32 [T, D]), then the
// experts. expand_moe_experts may be given a share of the experts: gate / up / down of
// E_local experts first_expert .. first_expert + E_local - 1 ([E_local, ...]); a selected
// expert outside the share contributes 0 (its weight zeroed, its index clamped into the
// share), so the shares of a split of 0..E-1 add up to the moe node's result. With all
// experts (first 0, E_local = E) the two are moe's expansion.
struct MoeRouting {
  NodeId x = -1, idx = -1, w = -1;
};
MoeRouting expand_moe_routing(Builder& b, const Node& moe, std::span<const NodeId> operands);
NodeId expand_moe_experts(Builder& b, const Node& moe, std::span<const NodeId> operands, const MoeRouting& routing,
                          int64_t first_expert);

// Returns a copy of `graph` where every composite except those in `keep` is replaced by
// its expansion (for the JIT): same name, symbols, inputs (in order) and output types.
Graph expand_composites(const Graph& graph, std::span<const Op> keep = {});

// rope's per-pair angle factors f[i] and magnitude m (see above), as expand uses them.
struct RopeFactors {
  std::vector<double> freq;  // [n_dims / 2]
  double mscale = 1.0;
};
RopeFactors rope_factors(const Node& rope_node);

}  // namespace moat::ir
