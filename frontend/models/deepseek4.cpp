#include "frontend/models/deepseek4.h"

#include <cmath>

#include "frontend/models/deepseek4_graph.h"
#include "ir/builder.h"
#include "ir/shape.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::models {

using ir::Dim;
using ir::DType;
using ir::NodeId;
using ir::Op;

NodeId DeepSeekV4PassBuilder::build(bool with_positions) {
  tokens_ = b_.input("tokens", {DType::i32, {Dim::of(t_)}});
  positions_ = with_positions ? b_.input("positions", {DType::i32, {Dim::of(t_)}}) : b_.iota(DType::i32, Dim::of(t_));
  if (cached())
    for (const CachePart& part : deepseek4_cache_layout(h_, first_layer(), end_layer())) {
      parts_[part.input] = part;
      cache_inputs_[part.input] = cache_input(part.input, part);
    }
  if (cached() && pass_.sequences > 1) {  // each token's sequence: its first row / the context
    NodeId key_starts = b_.input("key_starts", {DType::i32, {Dim::of(t_)}});
    sequence_ = div_by(token_per_sequence() ? key_starts : b_.slice(key_starts, 0, 0, 1), context());
  }
  NodeId streams;  // [T, N, E]
  if (pass_.draft) {
    streams = draft_streams();
  } else {
    NodeId embed = b_.gather(weight("embed.weight"), tokens_);  // [T, E]
    streams = b_.broadcast(b_.reshape(to_f32(embed), {Dim::of(t_), Dim::of(1), Dim::of(h_.n_embd)}),
                           {Dim::of(t_), Dim::of(h_.hc_mult), Dim::of(h_.n_embd)});
  }
  for (int64_t l = first_layer(); l < end_layer(); ++l) {
    const std::string p = cat("layers.", l, ".");
    HyperMix mix = hyper_pre(b_, streams, hyper(p + "hc_attn"), h_.rms_eps, h_.hc_eps, h_.hc_sinkhorn_iters);
    streams = hyper_post(b_, mix, attention(l, norm(mix.collapsed, p + "attn_norm.weight")), streams);
    mix = hyper_pre(b_, streams, hyper(p + "hc_ffn"), h_.rms_eps, h_.hc_eps, h_.hc_sinkhorn_iters);
    streams = hyper_post(b_, mix, ffn(l, norm(mix.collapsed, p + "ffn_norm.weight")), streams);
  }
  if (pass_.hidden) hidden_ = b_.reshape(streams, {Dim::of(t_), Dim::of(h_.hc_mult * h_.n_embd)});
  if (pass_.rows == LogitRows::last && pass_.batched)  // the rows of "logit_rows" (each sequence's last token)
    streams = b_.gather(streams, b_.input("logit_rows", {DType::i32, {Dim::of(pass_.outputs)}}));
  else if (pass_.rows == LogitRows::last && t_ > 1)
    streams = b_.slice(streams, 0, t_ - 1, t_);
  // The MTP layer collapses its streams with its own head weights and norm; the output
  // matrix is the model's.
  const std::string head_prefix = pass_.draft ? cat("layers.", h_.n_layer, ".") : "";
  const HyperWeights head{weight(head_prefix + "hc_head_fn"), weight(head_prefix + "hc_head_base"),
                          weight(head_prefix + "hc_head_scale")};
  NodeId final_hidden = norm(hyper_head(b_, streams, head, h_.rms_eps, h_.hc_eps), head_prefix + "norm.weight");
  return linear(final_hidden, "head.weight");  // [T or 1, V]
}

// DeepSeek's MTPBlock: the next token's normalised embedding through e_proj, added to
// each stream of the hidden state normalised (hnorm, per stream) through h_proj.
NodeId DeepSeekV4PassBuilder::draft_streams() {
  const std::string p = cat("layers.", h_.n_layer, ".");
  const Dim t = Dim::of(t_), n = Dim::of(h_.hc_mult), e = Dim::of(h_.n_embd);
  NodeId hidden = b_.input("hidden", {DType::f32, {t, Dim::of(h_.hc_mult * h_.n_embd)}});
  NodeId embedded = norm(to_f32(b_.gather(weight("embed.weight"), tokens_)), p + "enorm.weight");  // [T, E]
  NodeId from_token = b_.reshape(linear(embedded, p + "e_proj.weight"), {t, Dim::of(1), e});
  NodeId per_stream = norm(b_.reshape(hidden, {Dim::of(t_ * h_.hc_mult), e}), p + "hnorm.weight");  // [T N, E]
  NodeId from_hidden = b_.reshape(linear(per_stream, p + "h_proj.weight"), {t, n, e});
  return b_.add(from_hidden, b_.broadcast(from_token, {t, n, e}));
}

std::vector<NodeId> DeepSeekV4PassBuilder::updated_parts() const {
  std::vector<NodeId> out;
  if (cached())
    for (const CachePart& part : deepseek4_cache_layout(h_, first_layer(), end_layer()))
      out.push_back(updated_.at(part.input));
  return out;
}

NodeId DeepSeekV4PassBuilder::weight(const std::string& name) {
  if (auto it = params_.find(name); it != params_.end()) return it->second;
  auto t = w_.tensors.find(name);
  if (t == w_.tensors.end()) user_error("DeepSeek-V4 weights: no tensor ", name);
  return params_[name] = b_.param(name, {t->second.dtype(), ir::static_shape(t->second.shape())});
}

NodeId DeepSeekV4PassBuilder::to_f32(NodeId x) { return b_.type(x).dtype == DType::f32 ? x : b_.cast(x, DType::f32); }

NodeId DeepSeekV4PassBuilder::linear(NodeId x, const std::string& name) {
  NodeId w = weight(name);
  if (b_.type(w).dtype != DType::f8_e4m3) return b_.matmul(x, w, true);
  return b_.matmul_fp8(x, w, weight(name + ".scale"), w_.fp8_block[0], w_.fp8_block[1]);
}

HyperWeights DeepSeekV4PassBuilder::hyper(const std::string& prefix) {
  return {weight(prefix + "_fn"), weight(prefix + "_base"), weight(prefix + "_scale")};
}

// RoPE on the last rope_dim of each head of x [T', H, Dh] at `positions` i32[T'],
// adjacent pairs: the window-only layers' (rope_theta), or the compressing layers'
// (compress_rope_theta with YaRN, cos and sin unscaled).
NodeId DeepSeekV4PassBuilder::rope_tail(NodeId x, NodeId positions, bool compress) {
  const int64_t width = b_.type(x).shape[2].value, r = h_.rope_dim;
  ir::RopeParams p;
  p.n_dims = r;
  p.interleaved = true;
  p.theta = compress ? h_.compress_rope_theta : h_.rope_theta;
  if (compress && h_.rope_factor > 1) {
    p.freq_scale = 1.0 / h_.rope_factor;
    p.ext_factor = 1.0;
    p.attn_factor = 1.0 / (1.0 + 0.1 * std::log(h_.rope_factor));  // the expansion's YaRN mscale cancelled
    p.beta_fast = h_.yarn_beta_fast;
    p.beta_slow = h_.yarn_beta_slow;
    p.orig_ctx = h_.yarn_orig_ctx;
  }
  NodeId rotated = b_.rope(b_.slice(x, 2, width - r, width), positions, p);
  return r == width ? rotated : b_.concat({b_.slice(x, 2, 0, width - r), rotated}, 2);
}

// Pooled rows of a compressor over the whole blocks of the sequence: [blocks, 1, width],
// normalised and rotated at each block's first position. `prefix`: its weights
// ("layers.L.attn.compressor."). Ratio 4 pools 8 slots: the previous block's first
// halves (none before block 0) and this block's second halves.
NodeId DeepSeekV4PassBuilder::compress_sequence(NodeId hn, const std::string& prefix, int64_t ratio, int64_t width) {
  const int64_t blocks = t_ / ratio, overlap = ratio == 4 ? 2 : 1;
  const Dim nb = Dim::of(blocks), r = Dim::of(ratio), cw = Dim::of(overlap * width), w = Dim::of(width);
  NodeId kv = b_.reshape(b_.slice(linear(hn, prefix + "wkv.weight"), 0, 0, blocks * ratio), {nb, r, cw});
  NodeId gate = b_.add(b_.reshape(b_.slice(linear(hn, prefix + "wgate.weight"), 0, 0, blocks * ratio), {nb, r, cw}),
                       weight(prefix + "ape"));  // [blocks, ratio, overlap * width]
  if (overlap == 2) {
    NodeId kv_a = b_.slice(kv, 2, 0, width), kv_b = b_.slice(kv, 2, width, 2 * width);
    NodeId gate_a = b_.slice(gate, 2, 0, width), gate_b = b_.slice(gate, 2, width, 2 * width);
    NodeId no_kv = b_.broadcast(f32(0), {Dim::of(1), r, w}), no_gate = b_.broadcast(f32(-kInf), {Dim::of(1), r, w});
    NodeId prev_kv = blocks > 1 ? b_.concat({no_kv, b_.slice(kv_a, 0, 0, blocks - 1)}, 0) : no_kv;
    NodeId prev_gate = blocks > 1 ? b_.concat({no_gate, b_.slice(gate_a, 0, 0, blocks - 1)}, 0) : no_gate;
    kv = b_.concat({prev_kv, kv_b}, 1);        // [blocks, 2 ratio, width]
    gate = b_.concat({prev_gate, gate_b}, 1);
  }
  NodeId weights = b_.permute(b_.softmax(b_.permute(gate, {0, 2, 1})), {0, 2, 1});  // softmax over the slots
  NodeId pooled = b_.reshape(b_.reduce(Op::reduce_sum, b_.mul(kv, weights), 1), {nb, w});
  pooled = b_.reshape(norm(pooled, prefix + "norm.weight"), {nb, Dim::of(1), w});
  NodeId first = b_.mul(b_.iota(DType::i32, nb), i32(static_cast<double>(ratio)));
  return rope_tail(pooled, first, true);  // [blocks, 1, width]
}

// bool [T, S]: block block_ids[s] is complete at each query ((j + 1) ratio - 1 <= t).
NodeId DeepSeekV4PassBuilder::blocks_visible(NodeId block_ids, int64_t ratio) {
  NodeId last = b_.add(b_.mul(block_ids, i32(static_cast<double>(ratio))), i32(static_cast<double>(ratio - 1)));
  return b_.binary(Op::cmp_le, last, b_.reshape(positions_, {Dim::of(t_), Dim::of(1)}));
}

NodeId DeepSeekV4PassBuilder::indexer_keep(NodeId hn, NodeId q_latent, int64_t l, NodeId keys, NodeId visible) {
  const std::string p = cat("layers.", l, ".attn.indexer.");
  const ir::Shape& key_shape = b_.type(keys).shape;  // [S, Di], or per query [T, S, Di]
  const int64_t hi = h_.index_heads, di = h_.index_head, s = key_shape[key_shape.size() - 2].value;
  NodeId q = b_.reshape(linear(q_latent, p + "wq_b.weight"), {Dim::of(t_), Dim::of(hi), Dim::of(di)});
  q = rope_tail(q, positions_, true);
  NodeId dots = b_.binary(Op::max, b_.matmul(q, keys, true), f32(0));  // relu(q . k) [T, Hi, S]
  NodeId head_w = b_.mul(linear(hn, p + "weights_proj.weight"), f32(1.0 / std::sqrt(static_cast<double>(hi * di))));
  NodeId score = b_.reduce(Op::reduce_sum, b_.mul(dots, b_.reshape(head_w, {Dim::of(t_), Dim::of(hi), Dim::of(1)})), 1);
  score = b_.select(visible, b_.reshape(score, {Dim::of(t_), Dim::of(s)}), f32(-kInf));
  NodeId keep = visible;
  if (s > h_.index_topk) {
    NodeId kth = b_.kth_largest(score, h_.index_topk);  // [T, 1]
    keep = both(visible, b_.binary(Op::cmp_le, kth, score));
  }
  choices_.push_back(b_.cast(keep, DType::i32));
  return keep;
}

NodeId DeepSeekV4PassBuilder::attention(int64_t l, NodeId hn) {
  const std::string p = cat("layers.", l, ".attn.");
  const int64_t ratio = h_.compress_ratio[static_cast<size_t>(l)], d = h_.head_dim, heads = h_.n_head;
  const Dim t = Dim::of(t_);
  NodeId q_latent = norm(linear(hn, p + "wq_a.weight"), p + "q_norm.weight");  // [T, Q]
  NodeId q = b_.reshape(linear(q_latent, p + "wq_b.weight"), {t, Dim::of(heads), Dim::of(d)});
  q = rope_tail(unweighted_rms_norm(b_, q, h_.rms_eps), positions_, ratio != 0);  // per head
  NodeId kv = b_.reshape(norm(linear(hn, p + "wkv.weight"), p + "kv_norm.weight"), {t, Dim::of(1), Dim::of(d)});
  kv = rope_tail(kv, positions_, ratio != 0);  // [T, 1, D]: key and value
  NodeId out = !cached()               ? sequence_attention(l, hn, q, q_latent, kv)
               : token_per_sequence() ? token_attention(l, hn, q, q_latent, kv)
                                      : cached_attention(l, hn, q, q_latent, kv);
  out = rope_tail(out, b_.sub(i32(0), positions_), ratio != 0);  // the values' rotation undone
  return output_projection(l, out);
}

// Keys: the sequence's own rows within the window, then its whole blocks' pooled rows.
NodeId DeepSeekV4PassBuilder::sequence_attention(int64_t l, NodeId hn, NodeId q, NodeId q_latent, NodeId kv) {
  const std::string p = cat("layers.", l, ".attn.");
  const int64_t ratio = h_.compress_ratio[static_cast<size_t>(l)], d = h_.head_dim;
  const Dim t = Dim::of(t_);
  // The raw rows a query sees: its last `window` tokens, itself included.
  NodeId key_pos = b_.iota(DType::i32, t), query_pos = b_.reshape(positions_, {t, Dim::of(1)});
  NodeId in_window = both(b_.binary(Op::cmp_le, key_pos, query_pos),
                          b_.binary(Op::cmp_lt, b_.sub(query_pos, i32(static_cast<double>(h_.window))), key_pos));  // [T, T]
  NodeId keys = kv, seen = in_window;
  const int64_t blocks = ratio > 0 ? t_ / ratio : 0;
  if (blocks > 0) {
    NodeId visible = blocks_visible(b_.iota(DType::i32, Dim::of(blocks)), ratio);
    NodeId keep = visible;
    if (ratio == 4) {
      NodeId index_keys = compress_sequence(hn, p + "indexer.compressor.", 4, h_.index_head);
      keep = indexer_keep(hn, q_latent, l, b_.reshape(index_keys, {Dim::of(blocks), Dim::of(h_.index_head)}), visible);
    }
    keys = b_.concat({kv, compress_sequence(hn, p + "compressor.", ratio, d)}, 0);  // [T + blocks, 1, D]
    seen = b_.concat({in_window, keep}, 1);
  }
  NodeId bias = b_.select(seen, f32(0), f32(-kInf));
  return b_.attention(q, keys, keys, positions_, 1.0 / std::sqrt(static_cast<double>(d)), false, std::nullopt, bias,
                      weight(p + "attn_sink"));  // [T, H, D]
}

// Grouped output projection: group g's heads [H D / G] -> o_lora_rank by its block of wo_a.
NodeId DeepSeekV4PassBuilder::output_projection(int64_t l, NodeId out) {
  const std::string p = cat("layers.", l, ".attn.");
  const Dim t = Dim::of(t_);
  const int64_t g = h_.o_groups, per = h_.n_head * h_.head_dim / g;
  NodeId grouped = b_.permute(b_.reshape(out, {t, Dim::of(g), Dim::of(per)}), {1, 0, 2});           // [G, T, per]
  NodeId wo_a = weight(p + "wo_a.weight");
  NodeId low;  // [G, T, Lo]
  if (b_.type(wo_a).dtype == DType::f8_e4m3) {  // each group's rows a whole number of scale blocks (the loader sees to it)
    const int64_t bn = w_.fp8_block[0], bk = w_.fp8_block[1];
    NodeId scales = b_.reshape(weight(p + "wo_a.weight.scale"), {Dim::of(g), Dim::of(h_.o_lora_rank / bn), Dim::of((per + bk - 1) / bk)});
    low = b_.matmul_fp8(grouped, b_.reshape(wo_a, {Dim::of(g), Dim::of(h_.o_lora_rank), Dim::of(per)}), scales, bn, bk);
  } else {
    low = b_.matmul(grouped, b_.reshape(wo_a, {Dim::of(g), Dim::of(h_.o_lora_rank), Dim::of(per)}), true);
  }
  low = b_.reshape(b_.permute(low, {1, 0, 2}), {t, Dim::of(g * h_.o_lora_rank)});
  return linear(low, p + "wo_b.weight");  // [T, E]
}

NodeId DeepSeekV4PassBuilder::ffn(int64_t l, NodeId hn) {
  const std::string p = cat("layers.", l, ".ffn.");
  ir::MoeParams mp;
  mp.n_used = h_.n_expert_used;
  mp.scoring = h_.scoring;
  mp.norm_topk = h_.norm_topk;
  mp.scale = h_.routed_scale;
  mp.swiglu_limit = h_.swiglu_limit;
  std::optional<NodeId> bias, experts;
  if (l < h_.n_hash_layers) {
    mp.method = "given";
    experts = b_.gather(weight(p + "gate.tid2eid"), tokens_);  // [T, n_used]
  } else {
    mp.method = "noaux_tc";
    bias = weight(p + "gate.bias");
  }
  NodeId routed = b_.moe(hn, weight(p + "gate.weight"), weight(p + "experts.w1"), weight(p + "experts.w3"),
                         weight(p + "experts.w2"), bias, mp, experts);
  NodeId gate = linear(hn, p + "shared_experts.w1.weight"), up = linear(hn, p + "shared_experts.w3.weight");
  if (h_.swiglu_limit > 0) {
    gate = b_.binary(Op::min, gate, f32(h_.swiglu_limit));
    up = b_.binary(Op::max, b_.binary(Op::min, up, f32(h_.swiglu_limit)), f32(-h_.swiglu_limit));
  }
  return b_.add(routed, linear(b_.mul(b_.unary(Op::silu, gate), up), p + "shared_experts.w2.weight"));
}

ir::Graph deepseek4_sequence_graph(const DeepSeekV4HParams& h, const DeepSeekV4Weights& w, int64_t tokens,
                                   bool indexer_choices) {
  ir::Graph g;
  g.name = "deepseek4";
  ir::Builder b(g);
  PassSpec pass;
  pass.tokens = tokens;
  pass.first = true;
  DeepSeekV4PassBuilder sequence(b, h, w, pass);
  b.output(sequence.build(false));
  if (indexer_choices)
    for (NodeId choice : sequence.indexer_choices()) b.output(choice);
  return g;
}

ir::Graph deepseek4_pass_graph(const DeepSeekV4HParams& h, const DeepSeekV4Weights& w, const PassSpec& pass) {
  if (pass.batched && (pass.cache_rows == 0 || pass.draft || pass.sequences < 2 || pass.cache_rows % pass.sequences != 0))
    user_error("a batched DeepSeek-V4 pass runs the model over the cache of two or more whole sequences "
               "(PassSpec::sequences), got ", pass.sequences, " over ", pass.cache_rows, " rows");
  if (pass.batched && !pass.one_sequence && pass.tokens > pass.sequences)
    user_error("a DeepSeek-V4 pass of several sequences holds one new token of each: ", pass.tokens, " tokens of ",
               pass.sequences, " sequences (Model::batch_tokens_per_sequence)");
  if (pass.draft && (h.n_mtp < 1 || !w.tensors.count(cat("layers.", h.n_layer, ".e_proj.weight"))))
    user_error("a DeepSeek-V4 draft pass needs the model's MTP layer, loaded (LoadOptions::draft)");
  MOAT_INTERNAL_CHECK(pass.cache_rows > 0 || (pass.first && !pass.draft),
                      "a DeepSeek-V4 pass without a cache is a first pass (positions 0..T-1)");
  ir::Graph g;
  g.name = pass.draft ? "deepseek4_mtp" : "deepseek4";
  ir::Builder b(g);
  DeepSeekV4PassBuilder builder(b, h, w, pass);
  b.output(builder.build(true));
  for (NodeId part : builder.updated_parts()) b.output(part);
  if (pass.hidden) b.output(builder.hidden());
  return g;
}

}  // namespace moat::models
