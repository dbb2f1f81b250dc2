// DeepSeek-V4's hyper-connections (manifold-constrained, mHC) as graph blocks: the
// residual is `streams` f32[T, N, D] (N = hc_mult copies of the hidden state), and each
// attention or FFN block reads one mix of them and writes back to all of them.
//
//   flat  = x / rms(x) over the N * D values of a token (no weight; eps = rms_norm_eps)
//   mix   = flat . fn^T                        [T, (2 + N) N]: pre | post | comb
//   pre   = sigmoid(mix_pre * scale0 + base_pre) + hc_eps            [T, N]
//   post  = 2 sigmoid(mix_post * scale1 + base_post)                 [T, N]
//   comb  = softmax over k of (mix_comb * scale2 + base_comb)[j, k] + hc_eps, then
//           Sinkhorn: divided by its column sums (+ hc_eps), then (iters - 1) times by
//           its row sums and its column sums                       [T, N(j), N(k)]
//   block input  = sum_j pre_j streams_j                             [T, D]
//   new streams_k = post_k * block output + sum_j comb[j, k] streams_j
//
// The head collapses the streams once more with pre only (its own fn [N, N D], base,
// one scale). As transformers' modeling_deepseek_v4 (DeepseekV4HyperConnection,
// DeepseekV4HyperHead) and llama.cpp's build_hc_pre / build_hc_post compute them.
#pragma once

#include <cstdint>

#include "ir/builder.h"

namespace moat::models {

struct HyperWeights {
  ir::NodeId fn, base, scale;  // [(2 + N) N, N D], [(2 + N) N], [3] (the head: [N, N D], [N], [1])
};

// What a block's hyper-connection computes before the block runs.
struct HyperMix {
  ir::NodeId post;       // f32[T, N]
  ir::NodeId comb;       // f32[T, N, N]: comb[t, j, k], stream j's share in new stream k
  ir::NodeId collapsed;  // f32[T, D]: the block's input
};

HyperMix hyper_pre(ir::Builder& b, ir::NodeId streams, const HyperWeights& w, double rms_eps, double hc_eps,
                   int64_t sinkhorn_iters);
// The streams after a block whose output is `block_out` f32[T, D].
ir::NodeId hyper_post(ir::Builder& b, const HyperMix& mix, ir::NodeId block_out, ir::NodeId streams);
// The final hidden state f32[T, D] from the streams (before the output norm).
ir::NodeId hyper_head(ir::Builder& b, ir::NodeId streams, const HyperWeights& w, double rms_eps, double hc_eps);
// x / sqrt(mean(x^2) + eps) over the last axis of x f32[..., K] (RMSNorm without a
// weight: the streams' norm here, the attention's per-head query norm).
ir::NodeId unweighted_rms_norm(ir::Builder& b, ir::NodeId x, double eps);
// Sinkhorn-Knopp on comb f32[T, N, N]: columns (sums over j), then rows and columns
// iters - 1 times, each sum plus eps.
ir::NodeId sinkhorn(ir::Builder& b, ir::NodeId comb, int64_t iters, double eps);

}  // namespace moat::models
