// The DeepSeek forward graph, built from shared blocks: MLA attention (either form),
// the dense FFN, the routed + shared expert FFN. Every view carries its shape comment.
#include "frontend/models/deepseek.h"

#include <cmath>

#include "ir/builder.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::models {

namespace {

using ir::Dim;
using ir::NodeId;
using ir::Op;

class GraphBuilder {
 public:
  GraphBuilder(const DeepSeekModel& m, ir::Graph& g) : m_(m), h_(m.hparams), b_(g) {}

  void build(int64_t tokens_count, const PassShape& pass, AttentionForm form, LogitRows logit_rows) {
    T_ = dim(tokens_count);
    NodeId tokens = b_.input("tokens", {ir::DType::i32, {T_}});
    positions_ = b_.input("positions", {ir::DType::i32, {T_}});
    if (pass.batched) {
      cache_at_ = b_.input("cache_at", {ir::DType::i32, {T_}});
      key_starts_ = b_.input("key_starts", {ir::DType::i32, {T_}});
    }
    std::vector<NodeId> caches;
    NodeId x = pass.draft ? draft_block(tokens, pass, &caches)                             // [T, D]
                          : decoder(f32(b_.gather(param("token_embd.weight"), tokens)), pass, form, &caches);
    const std::string final_norm = pass.draft && m_.has(mtp_name("nextn.shared_head_norm")) ? mtp_name("nextn.shared_head_norm")
                                                                                              : "output_norm.weight";
    // The hidden states of every row are normalised before the logits' rows are chosen
    // when they are an output; otherwise only those rows are.
    NodeId hidden = pass.hidden ? norm(x, final_norm) : x;                                 // [T, D]
    if (logit_rows == LogitRows::last && pass.batched) {
      NodeId which = b_.input("logit_rows", {ir::DType::i32, {dim(pass.outputs)}});
      x = b_.gather(hidden, which);                                                        // [U, D]
    } else if (logit_rows == LogitRows::last && tokens_count > 1) {
      x = b_.slice(hidden, 0, tokens_count - 1, tokens_count);                             // [1, D]
    } else {
      x = hidden;
    }
    NodeId out = pass.hidden ? x : norm(x, final_norm);                                    // [T or 1 or U, D]
    std::string head = m_.has("output.weight") ? "output.weight" : "token_embd.weight";    // tied embeddings
    if (pass.draft && m_.has(mtp_name("nextn.shared_head_head"))) head = mtp_name("nextn.shared_head_head");
    b_.output(linear(out, head));                                                          // [T or 1 or U, vocab]
    for (NodeId cache : caches)
      if (cache >= 0) b_.output(cache);                                                    // [R, W]: updated
    if (pass.hidden) b_.output(hidden);                                                    // [T, D]
  }

 private:
  static Dim dim(int64_t n) { return Dim::of(n); }

  // The decoder layers over the embedded tokens x [T, D]; appends each layer's cache parts.
  NodeId decoder(NodeId x, const PassShape& pass, AttentionForm form, std::vector<NodeId>* caches) {
    for (int64_t l = 0; l < h_.n_layer; ++l) x = block(l, x, form, pass, caches);           // [T, D]
    return x;
  }

  // One layer: attention, then the dense or MoE FFN, each added to the residual x [T, D].
  // Appends the layer's cache parts (cache_layout's order) to `caches`.
  NodeId block(int64_t l, NodeId x, AttentionForm form, const PassShape& pass, std::vector<NodeId>* caches) {
    LayerCache cache{cache_input(cache_input_name(l), h_.latent_width(), pass),
                     h_.sparse() ? cache_input(index_cache_input_name(l), h_.index_head, pass) : -1};
    x = b_.add(x, attention(l, norm(x, blk_name(l, "attn_norm")), form, &cache));           // [T, D]
    caches->push_back(cache.latent);
    if (h_.sparse()) caches->push_back(cache.index);
    NodeId ffn_in = norm(x, blk_name(l, "ffn_norm"));                                      // [T, D]
    return b_.add(x, l < h_.n_dense ? dense_ffn(l, ffn_in) : moe_ffn(l, ffn_in));          // [T, D]
  }

  // A cache part [R, width]; -1 without a cache.
  NodeId cache_input(const std::string& name, int64_t width, const PassShape& pass) {
    if (pass.cache_rows == 0) return -1;
    return b_.input(name, {pass.cache_dtype, {dim(pass.cache_rows), dim(width)}});          // [R, W]
  }

  // A layer's cache parts (-1: none), each the input until the layer writes its rows.
  struct LayerCache {
    NodeId latent = -1;  // [R, kv_lora + rope]
    NodeId index = -1;   // [R, index_head]: sparse attention's indexer keys
  };

  std::string mtp_name(const char* tensor) const { return blk_name(h_.n_layer, tensor); }

  // The MTP layer's block over the next tokens and the given hidden states (deepseek.h).
  NodeId draft_block(NodeId tokens, const PassShape& pass, std::vector<NodeId>* caches) {
    if (h_.n_mtp == 0) user_error(m_.path, ": a draft pass, and the model has no MTP layer loaded");
    if (pass.batched || pass.cache_rows == 0) user_error("a draft pass runs one sequence over its cache");
    const int64_t l = h_.n_layer;
    const std::string embedding = m_.has(mtp_name("nextn.embed_tokens")) ? mtp_name("nextn.embed_tokens") : "token_embd.weight";
    NodeId embedded = norm(f32(b_.gather(param(embedding), tokens)), mtp_name("nextn.enorm"));  // [T, D]
    NodeId hidden = norm(b_.input("hidden", {ir::DType::f32, {T_, dim(h_.n_embd)}}), mtp_name("nextn.hnorm"));  // [T, D]
    NodeId x = linear(b_.concat({embedded, hidden}, 1), mtp_name("nextn.eh_proj"));       // [T, D]
    return block(l, x, AttentionForm::absorbed, pass, caches);                             // [T, D]
  }

  // A weight as a param node of its own dtype and shape.
  NodeId param(const std::string& name) {
    auto it = params_.find(name);
    if (it != params_.end()) return it->second;
    const ir::HostTensor& w = m_.weight(name);
    NodeId id = b_.param(name, {w.dtype(), ir::static_shape(w.shape())});
    params_[name] = id;
    return id;
  }

  NodeId f32(NodeId x) { return b_.type(x).dtype == ir::DType::f32 ? x : b_.cast(x, ir::DType::f32); }

  NodeId norm(NodeId x, const std::string& weight) { return b_.rms_norm(x, param(weight), h_.rms_eps); }

  NodeId f32c(double v) { return b_.scalar(ir::DType::f32, v); }

  // LayerNorm over the last axis of x [..., D], with weight and bias [D].
  NodeId layer_norm(NodeId x, const std::string& weight, const std::string& bias, double eps) {
    const NodeId inv_d = f32c(1.0 / static_cast<double>(b_.type(x).shape.back().value));
    NodeId centred = b_.sub(x, b_.mul(b_.reduce(Op::reduce_sum, x, -1), inv_d));          // [..., D]
    NodeId var = b_.mul(b_.reduce(Op::reduce_sum, b_.mul(centred, centred), -1), inv_d);  // [..., 1]
    NodeId y = b_.mul(centred, b_.unary(Op::rsqrt, b_.add(var, f32c(eps))));              // [..., D]
    return b_.add(b_.mul(y, f32(param(weight))), f32(param(bias)));
  }

  // x[..., K] @ W[N, K]^T -> [..., N]; FP8 weights with their block scales.
  NodeId linear(NodeId x, const std::string& weight) {
    if (m_.has(weight + ".scale"))
      return b_.matmul_fp8(x, param(weight), param(weight + ".scale"), m_.fp8_block[0], m_.fp8_block[1]);
    return b_.matmul_weight(x, param(weight));
  }

  ir::RopeParams rope_params() const {
    ir::RopeParams p;
    p.n_dims = h_.qk_rope;
    p.theta = h_.rope_theta;
    p.interleaved = true;  // DeepSeek rotates adjacent pairs (llama.cpp's rope type NORM)
    // ggml's rope_yarn parameters, as llama.cpp passes them for deepseek2.
    p.freq_scale = h_.rope_freq_scale();
    p.attn_factor = h_.rope_cos_sin_factor();
    if (h_.rope_scaling == DeepSeekHParams::RopeScaling::yarn) {
      p.ext_factor = 1.0;
      p.beta_fast = h_.yarn_beta_fast;
      p.beta_slow = h_.yarn_beta_slow;
      p.orig_ctx = h_.yarn_orig_ctx;
    }
    return p;
  }

  // Queries [T, H, W] times the attention temperature at their positions, when the model
  // has one (DeepSeekHParams::attn_temp_scale; llama.cpp's llm_graph_input_attn_temp):
  // 1 + scale * ln(floor(p / length) + 1). Positions are below 2^24, so p / length in f32
  // truncated is the floor.
  NodeId with_temperature(NodeId q) {
    if (h_.attn_temp_scale == 0.0) return q;
    NodeId p = b_.cast(positions_, ir::DType::f32);                                         // [T]
    NodeId blocks = b_.cast(b_.cast(b_.div(p, f32c(static_cast<double>(h_.attn_temp_length))), ir::DType::i32),
                            ir::DType::f32);                                                // [T]
    NodeId scale = b_.add(b_.mul(b_.unary(ir::Op::log, b_.add(blocks, f32c(1.0))), f32c(h_.attn_temp_scale)),
                          f32c(1.0));                                                       // [T]
    return b_.mul(q, b_.broadcast(b_.reshape(scale, {T_, dim(1), dim(1)}), b_.type(q).shape));  // [T, H, W]
  }

  // Rows written into a cache part at the new tokens' rows; the part becomes the cache
  // with them (in its dtype).
  NodeId store_rows(NodeId cache, NodeId rows) {
    const ir::DType dtype = b_.type(cache).dtype;
    return b_.write_rows(cache, dtype == ir::DType::f32 ? rows : b_.cast(rows, dtype), cache_at_ >= 0 ? cache_at_ : positions_);
  }

  // DeepSeek Sparse Attention's lightning indexer (V3.2): the key bias [T, S] that keeps
  // each query's index_topk best-scored keys (0) and drops the rest (-inf), over the
  // same key rows as the attention (the index cache after the new rows are written, or
  // the new rows alone in the expanded form); -1 when S <= index_topk (every key a query
  // sees is kept). x [T, D] is the normed input, qa [T, q_lora] the normed q latent.
  //   q = rope(indexer.attn_q_b(qa)) [T, Hi, Di], k = rope(LayerNorm(indexer.attn_k(x))) [S, Di]
  //   score[t, s] = sum_h relu(q[t, h] . k[s]) * proj(x)[t, h] / sqrt(Hi * Di), masked
  //   as the attention is (causal, key starts); the k-th best is found in O(S) per query
  //   (kth_largest), never by sorting. RoPE rotates halves of the first qk_rope
  //   dims. DeepSeek's reference also rotates q and k by a Hadamard matrix / sqrt(Di)
  //   (and rounds them to FP8): orthonormal, so it leaves q . k as it is and is left out.
  //   Keys tied with the k-th best score are all kept.
  NodeId sparse_key_bias(int64_t l, NodeId x, NodeId qa, AttentionForm form, NodeId* index) {
    const int64_t Hi = h_.index_heads, Di = h_.index_head;
    ir::RopeParams rope = rope_params();
    rope.interleaved = false;  // NEOX: (x[i], x[i + n/2]) rotated together
    NodeId q = b_.reshape(linear(qa, blk_name(l, "indexer.attn_q_b")), {T_, dim(Hi), dim(Di)});  // [T, Hi, Di]
    q = b_.rope(q, positions_, rope);                                                       // [T, Hi, Di]
    const std::string k_norm = "blk." + std::to_string(l) + ".indexer.k_norm.";
    NodeId k = layer_norm(linear(x, blk_name(l, "indexer.attn_k")), k_norm + "weight", k_norm + "bias", h_.index_norm_eps);  // [T, Di]
    k = b_.reshape(b_.rope(b_.reshape(k, {T_, dim(1), dim(Di)}), positions_, rope), {T_, dim(Di)});  // [T, Di]
    NodeId keys = k;                                                                         // [S, Di]
    if (*index >= 0) {
      *index = store_rows(*index, k);                                                        // [R, Di]
      if (form == AttentionForm::absorbed) keys = *index;
    }
    const int64_t S = b_.type(keys).shape[0].value;
    if (S <= h_.index_topk) return -1;
    NodeId scores = b_.binary(Op::max, b_.matmul(q, f32(keys), true), f32c(0.0));          // [T, Hi, S]
    NodeId w = b_.mul(linear(x, blk_name(l, "indexer.proj")), f32c(1.0 / std::sqrt(static_cast<double>(Hi * Di))));  // [T, Hi]
    NodeId score = b_.reduce(Op::reduce_sum, b_.mul(scores, b_.reshape(w, {T_, dim(Hi), dim(1)})), 1);  // [T, 1, S]
    score = b_.reshape(score, {T_, dim(S)});                                                 // [T, S]
    // Key positions as the attention counts them: rows of the shared cache (several
    // sequences: cache_at / key_starts) when the keys are the cache, else the new rows.
    const bool over_cache = keys == *index && cache_at_ >= 0;
    NodeId key_pos = b_.iota(ir::DType::i32, dim(S));                                        // [S]
    const NodeId minus_inf = f32c(-INFINITY);
    NodeId last = b_.reshape(over_cache ? cache_at_ : positions_, {T_, dim(1)});             // [T, 1]
    score = b_.select(b_.binary(Op::cmp_lt, last, key_pos), minus_inf, score);              // [T, S]: no future keys
    if (over_cache)
      score = b_.select(b_.binary(Op::cmp_lt, key_pos, b_.reshape(key_starts_, {T_, dim(1)})), minus_inf, score);
    NodeId kth = b_.kth_largest(score, h_.index_topk);                                      // [T, 1]
    // Kept: scores >= the k-th, and NaN scores (ranked first, as torch.topk ranks them).
    NodeId dropped = b_.select(b_.binary(Op::cmp_eq, score, score), minus_inf, f32c(0.0));  // [T, S]
    return b_.select(b_.binary(Op::cmp_le, kth, score), f32c(0.0), dropped);                 // [T, S]
  }

  // MLA. `cache` holds this layer's cache inputs (-1: none); each becomes its cache with
  // the new tokens' rows written at their positions.
  NodeId attention(int64_t l, NodeId x, AttentionForm form, LayerCache* cache) {
    const int64_t H = h_.n_head, nope = h_.qk_nope, rope = h_.qk_rope, L = h_.kv_lora_rank, V = h_.v_head;
    NodeId q;
    std::optional<NodeId> key_bias;
    if (h_.q_lora_rank > 0) {
      NodeId qa = norm(linear(x, blk_name(l, "attn_q_a")), blk_name(l, "attn_q_a_norm"));  // [T, q_lora]
      if (h_.sparse())
        if (NodeId bias = sparse_key_bias(l, x, qa, form, &cache->index); bias >= 0) key_bias = bias;  // [T, S]
      q = linear(qa, blk_name(l, "attn_q_b"));                                              // [T, H * (nope + rope)]
    } else {
      q = linear(x, blk_name(l, "attn_q"));                                                 // [T, H * (nope + rope)]
    }
    q = b_.reshape(q, {T_, dim(H), dim(nope + rope)});                                      // [T, H, nope + rope]
    NodeId q_nope = b_.slice(q, 2, 0, nope);                                                // [T, H, nope]
    NodeId q_pe = b_.rope(b_.slice(q, 2, nope, nope + rope), positions_, rope_params());   // [T, H, rope]

    NodeId kv_a = linear(x, blk_name(l, "attn_kv_a_mqa"));                                  // [T, L + rope]
    NodeId c_kv = norm(b_.slice(kv_a, 1, 0, L), blk_name(l, "attn_kv_a_norm"));             // [T, L]
    NodeId k_pe = b_.reshape(b_.slice(kv_a, 1, L, L + rope), {T_, dim(1), dim(rope)});      // [T, 1, rope]
    k_pe = b_.rope(k_pe, positions_, rope_params());                                        // [T, 1, rope]
    NodeId latent = b_.concat({c_kv, b_.reshape(k_pe, {T_, dim(rope)})}, 1);                // [T, L + rope]

    // The keys: the expanded form reads the new rows only (a first pass, positions
    // 0..T-1); the absorbed form the whole cache after the new rows are written.
    NodeId rows = latent;                                                                   // [S, L + rope]
    if (cache->latent >= 0) {
      cache->latent = store_rows(cache->latent, latent);                                   // [R, L + rope]
      if (form == AttentionForm::absorbed) rows = cache->latent;
    }
    const Dim S = b_.type(rows).shape[0];
    NodeId k_b = param(blk_name(l, "attn_k_b"));                                            // [H, L, nope]
    NodeId v_b = param(blk_name(l, "attn_v_b"));                                            // [H, V, L]
    NodeId out;                                                                             // [T, H, V]
    if (form == AttentionForm::expanded) {
      NodeId all_c = b_.reshape(b_.slice(rows, 1, 0, L), {dim(1), S, dim(L)});              // [1, S, L]
      NodeId k_nope = b_.permute(b_.matmul(all_c, k_b, false), {1, 0, 2});                  // [S, H, nope]
      NodeId v = b_.permute(b_.matmul_weight(all_c, v_b), {1, 0, 2});                       // [S, H, V]
      NodeId all_pe = b_.reshape(b_.slice(rows, 1, L, L + rope), {S, dim(1), dim(rope)});   // [S, 1, rope]
      NodeId k = b_.concat({k_nope, b_.broadcast(all_pe, {S, dim(H), dim(rope)})}, 2);      // [S, H, nope + rope]
      NodeId q_full = with_temperature(b_.concat({q_nope, q_pe}, 2));                       // [T, H, nope + rope]
      out = b_.attention(q_full, k, v, positions_, h_.attention_scale(), true, std::nullopt, key_bias);  // [T, H, V]
    } else {
      NodeId q_lat = b_.matmul_weight(b_.permute(q_nope, {1, 0, 2}), k_b);                  // [H, T, L]
      NodeId q_abs = with_temperature(b_.concat({b_.permute(q_lat, {1, 0, 2}), q_pe}, 2));  // [T, H, L + rope]
      NodeId keys = b_.reshape(rows, {S, dim(1), dim(L + rope)});                           // [S, 1, L + rope]
      NodeId values = b_.slice(keys, 2, 0, L);                                              // [S, 1, L]
      // Several sequences: a token reads its own sequence's rows, key_starts..cache_at.
      NodeId o_lat = cache_at_ >= 0 ? b_.attention(q_abs, keys, values, cache_at_, h_.attention_scale(), true, key_starts_, key_bias)
                                    : b_.attention(q_abs, keys, values, positions_, h_.attention_scale(), true, std::nullopt, key_bias);  // [T, H, L]
      NodeId o = b_.matmul_weight(b_.permute(o_lat, {1, 0, 2}), v_b);                       // [H, T, V]
      out = b_.permute(o, {1, 0, 2});                                                       // [T, H, V]
    }
    return linear(b_.reshape(out, {T_, dim(H * V)}), blk_name(l, "attn_output"));           // [T, D]
  }

  // down(silu(gate(x)) * up(x))
  NodeId ffn(NodeId x, const std::string& gate, const std::string& up, const std::string& down) {
    return linear(b_.mul(b_.unary(Op::silu, linear(x, gate)), linear(x, up)), down);
  }

  NodeId dense_ffn(int64_t l, NodeId x) {
    return ffn(x, blk_name(l, "ffn_gate"), blk_name(l, "ffn_up"), blk_name(l, "ffn_down"));  // [T, D]
  }

  NodeId moe_ffn(int64_t l, NodeId x) {
    ir::MoeParams p;
    p.n_used = h_.n_expert_used;
    p.scoring = h_.scoring;
    p.method = h_.method;
    p.n_groups = h_.n_group;
    p.topk_groups = h_.n_group_used;
    p.norm_topk = h_.norm_topk;
    p.scale = h_.routed_scale;
    const std::string bias_name = "blk." + std::to_string(l) + ".exp_probs_b.bias";
    std::optional<NodeId> bias;
    if (m_.has(bias_name)) bias = f32(param(bias_name));
    if (h_.method == "noaux_tc" && !bias)
      user_error(m_.path, ": layer ", l, " routes with noaux_tc but has no score-correction bias (", bias_name, ")");
    NodeId routed = b_.moe(x, f32(param(blk_name(l, "ffn_gate_inp"))), param(blk_name(l, "ffn_gate_exps")),
                           param(blk_name(l, "ffn_up_exps")), param(blk_name(l, "ffn_down_exps")), bias, p);  // [T, D]
    if (h_.n_expert_shared == 0) return routed;
    return b_.add(routed, ffn(x, blk_name(l, "ffn_gate_shexp"), blk_name(l, "ffn_up_shexp"), blk_name(l, "ffn_down_shexp")));
  }

  const DeepSeekModel& m_;
  const DeepSeekHParams& h_;
  ir::Builder b_;
  Dim T_;
  NodeId positions_ = -1;
  NodeId cache_at_ = -1, key_starts_ = -1;  // batched passes only
  std::map<std::string, NodeId> params_;
};

}  // namespace

AttentionForm first_pass_form(const DeepSeekModel& model) {
  const auto k_b = model.weights.find(blk_name(0, "attn_k_b"));
  const bool quantised = k_b != model.weights.end() && ir::is_quantised(k_b->second.dtype());
  return quantised ? AttentionForm::absorbed : AttentionForm::expanded;
}

std::string cache_input_name(int64_t layer) { return "cache." + std::to_string(layer); }
std::string index_cache_input_name(int64_t layer) { return "index." + std::to_string(layer); }

std::vector<CachePart> deepseek_cache_layout(const DeepSeekHParams& h, int64_t first, int64_t end) {
  std::vector<CachePart> parts;
  for (int64_t l = first; l < end; ++l) {
    parts.push_back({cache_input_name(l), h.latent_width()});
    if (h.sparse()) parts.push_back({index_cache_input_name(l), h.index_head});
  }
  return parts;
}

std::vector<CachePart> DeepSeekModel::draft_cache_layout() const {
  return hparams.n_mtp > 0 ? deepseek_cache_layout(hparams, hparams.n_layer, hparams.n_layer + 1) : std::vector<CachePart>{};
}

std::string DeepSeekModel::why_no_draft() const {
  if (mtp_in_file > 0) return cat(path, " has ", mtp_in_file, " MTP layer(s), which were not loaded (LoadOptions::draft)");
  return cat(path, " has no MTP layers (nextn_predict_layers is 0): it cannot draft its own tokens");
}

std::vector<CachePart> DeepSeekModel::cache_layout() const { return deepseek_cache_layout(hparams, 0, hparams.n_layer); }

ir::Graph DeepSeekModel::pass_graph(const PassSpec& pass) const {
  const AttentionForm form = pass.first ? first_pass_form(*this) : AttentionForm::absorbed;
  return build_deepseek_graph(*this, pass.tokens,
                              {pass.cache_rows, pass.cache_dtype, pass.batched, pass.outputs, pass.hidden, pass.draft},
                              pass.draft ? AttentionForm::absorbed : form, pass.rows);
}

ir::Graph build_deepseek_graph(const DeepSeekModel& model, int64_t tokens, const PassShape& pass, AttentionForm form,
                               LogitRows logit_rows) {
  if (tokens < 1) user_error("a forward pass needs at least one new token, got ", tokens);
  if (pass.cache_rows < 0) user_error("a cache of ", pass.cache_rows, " rows");
  if (pass.batched && (pass.cache_rows == 0 || pass.outputs < 1 || pass.outputs > tokens))
    user_error("a batched pass needs a cache and 1..", tokens, " rows of logits, got ", pass.outputs);
  if (pass.cache_dtype != ir::DType::f32 && pass.cache_dtype != ir::DType::f16 && pass.cache_dtype != ir::DType::bf16 &&
      pass.cache_dtype != ir::DType::q8_0)
    user_error("a latent cache of ", ir::dtype_name(pass.cache_dtype), " (f32, f16, bf16 or q8_0)");
  if (pass.cache_dtype == ir::DType::q8_0 && (model.hparams.kv_lora_rank % 32 != 0 || model.hparams.qk_rope % 32 != 0))
    user_error("--cache-type q8_0 needs the latent (kv_lora ", model.hparams.kv_lora_rank, ") and the rope key (",
               model.hparams.qk_rope, ") in whole 32-element blocks, which ", model.path, " has not: use f16");
  ir::Graph g;
  g.name = "deepseek";
  GraphBuilder(model, g).build(tokens, pass, form, logit_rows);
  return g;
}

}  // namespace moat::models
