#include "frontend/models/deepseek4_hparams.h"

#include <algorithm>

#include "frontend/models/deepseek_hparams.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::models {

int64_t DeepSeekV4HParams::layers_with_ratio(int64_t ratio) const {
  return std::count(compress_ratio.begin(), compress_ratio.begin() + std::min<int64_t>(n_layer, compress_ratio.size()), ratio);
}

namespace {

// The checks both sources share.
void check(const DeepSeekV4HParams& h, const std::string& source) {
  auto positive = [&](int64_t v, const char* what) {
    if (v <= 0) user_error(source, ": ", what, " must be positive, got ", v);
  };
  positive(h.n_layer, "the layer count");
  positive(h.n_embd, "the embedding width");
  positive(h.n_vocab, "the vocabulary size");
  positive(h.n_head, "the head count");
  positive(h.head_dim, "the head width");
  positive(h.rope_dim, "the rotary width");
  positive(h.q_lora_rank, "q_lora_rank");
  positive(h.o_groups, "the output group count");
  positive(h.o_lora_rank, "the output LoRA rank");
  positive(h.window, "the sliding window");
  positive(h.hc_mult, "the hyper-connection count");
  positive(h.hc_sinkhorn_iters, "the Sinkhorn iterations");
  positive(h.n_expert, "the expert count");
  positive(h.n_ff_expert, "the expert FFN width");
  if (h.rope_dim % 2 != 0 || h.rope_dim > h.head_dim)
    user_error(source, ": the rotary width ", h.rope_dim, " must be even and at most the head width ", h.head_dim);
  if (h.n_head % h.o_groups != 0)
    user_error(source, ": the head count (", h.n_head, ") must be a multiple of the output groups (", h.o_groups, ")");
  if (h.n_expert_used < 1 || h.n_expert_used > h.n_expert)
    user_error(source, ": experts per token (", h.n_expert_used, ") must be in 1..", h.n_expert);
  if (static_cast<int64_t>(h.compress_ratio.size()) < h.n_layer)
    user_error(source, ": ", h.compress_ratio.size(), " compress ratios for ", h.n_layer, " layers");
  for (int64_t ratio : h.compress_ratio)
    if (ratio != 0 && ratio != 4 && ratio != 128)
      user_error(source, ": a compress ratio of ", ratio, "; DeepSeek-V4 layers compress by 0 (none), 4 or 128");
  if (h.layers_with_ratio(4) > 0) {
    positive(h.index_heads, "the indexer head count");
    positive(h.index_head, "the indexer key length");
    positive(h.index_topk, "the indexer top-k");
    if (h.index_head < h.rope_dim)
      user_error(source, ": the indexer's key length ", h.index_head, " is below the rotary width ", h.rope_dim);
  }
}

// A required key llama.cpp also takes as one value per layer (find_layer_uniform).
int64_t layer_uniform(const gguf::File& f, const std::string& key) {
  const std::optional<int64_t> value = find_layer_uniform(f, key);
  if (!value) user_error(f.path(), ": metadata key ", key, " is missing");
  return *value;
}

// llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_* (llama-hparams.h).
std::string gating_name(int64_t value, const std::string& source) {
  switch (value) {
    case 1: return "softmax";
    case 2: return "sigmoid";
    case 4: return "sqrtsoftplus";
    default: break;
  }
  user_error(source, ": expert gating function ", value, " is not softmax (1), sigmoid (2) or sqrt-softplus (4)");
}

}  // namespace

DeepSeekV4HParams hparams_from_gguf_v4(const gguf::File& f) {
  auto key = [](const char* k) { return std::string("deepseek4.") + k; };
  DeepSeekV4HParams h;
  const int64_t blocks = f.get_i64(key("block_count"));  // decoder layers and MTP layers
  h.n_mtp = f.find_i64(key("nextn_predict_layers")).value_or(0);
  if (h.n_mtp < 0 || h.n_mtp >= blocks) user_error(f.path(), ": ", key("nextn_predict_layers"), " = ", h.n_mtp, " is out of range");
  h.n_layer = blocks - h.n_mtp;
  h.n_embd = f.get_i64(key("embedding_length"));
  h.n_ctx_train = f.find_i64(key("context_length")).value_or(1048576);
  h.n_head = layer_uniform(f, key("attention.head_count"));
  h.head_dim = f.get_i64(key("attention.key_length"));
  h.rope_dim = f.get_i64(key("rope.dimension_count"));
  h.q_lora_rank = f.get_i64(key("attention.q_lora_rank"));
  h.o_groups = f.get_i64(key("attention.output_group_count"));
  h.o_lora_rank = f.get_i64(key("attention.output_lora_rank"));
  h.window = f.get_i64(key("attention.sliding_window"));
  const std::string ratios_key = key("attention.compress_ratios");
  const gguf::Value* ratios = f.find(ratios_key);
  if (!ratios || ratios->type != gguf::ValueType::array)
    user_error(f.path(), ": metadata key ", ratios_key, " is missing or not an array (one compress ratio per layer)");
  for (const gguf::Value& r : ratios->array) h.compress_ratio.push_back(r.as_i64(f.path() + ": metadata key " + ratios_key));
  h.index_heads = f.get_i64(key("attention.indexer.head_count"));
  h.index_head = f.get_i64(key("attention.indexer.key_length"));
  h.index_topk = f.get_i64(key("attention.indexer.top_k"));
  h.rope_theta = f.find_f64(key("rope.freq_base")).value_or(10000.0);
  h.compress_rope_theta = f.get_f64(key("attention.compress_rope_freq_base"));
  if (f.find_string(key("rope.scaling.type")).value_or("none") == "yarn") {
    h.rope_factor = f.get_f64(key("rope.scaling.factor"));
    h.yarn_orig_ctx = f.get_i64(key("rope.scaling.original_context_length"));
    h.yarn_beta_fast = f.find_f64(key("rope.scaling.yarn_beta_fast")).value_or(32.0);
    h.yarn_beta_slow = f.find_f64(key("rope.scaling.yarn_beta_slow")).value_or(1.0);
  }
  h.hc_mult = f.get_i64(key("hyper_connection.count"));
  h.hc_sinkhorn_iters = f.get_i64(key("hyper_connection.sinkhorn_iterations"));
  h.hc_eps = f.get_f64(key("hyper_connection.epsilon"));
  h.n_expert = f.get_i64(key("expert_count"));
  h.n_expert_used = f.get_i64(key("expert_used_count"));
  h.n_expert_shared = f.get_i64(key("expert_shared_count"));
  h.n_ff_expert = layer_uniform(f, key("expert_feed_forward_length"));
  h.n_hash_layers = std::min(f.get_i64(key("hash_layer_count")), h.n_layer);
  h.scoring = gating_name(f.get_i64(key("expert_gating_func")), f.path());
  h.norm_topk = f.get_bool(key("expert_weights_norm"));
  h.routed_scale = f.get_f64(key("expert_weights_scale"));
  if (h.routed_scale == 0.0) h.routed_scale = 1.0;  // llama.cpp scales the routing weights only by a factor other than 0 and 1
  // swiglu_clamp_exp: one value per layer (llama.cpp's get_key_or_arr); every release
  // uses one limit for all.
  const std::string clamp_key = key("swiglu_clamp_exp");
  if (const gguf::Value* clamp = f.find(clamp_key)) {
    const std::string context = f.path() + ": metadata key " + clamp_key;
    h.swiglu_limit = clamp->type == gguf::ValueType::array ? (clamp->array.empty() ? 0.0 : clamp->array.front().as_f64(context))
                                                           : clamp->as_f64(context);
    if (clamp->type == gguf::ValueType::array)
      for (const gguf::Value& v : clamp->array)
        if (v.as_f64(context) != h.swiglu_limit) user_error(context, " differs from layer to layer; moatless builds every layer alike");
  }
  h.rms_eps = f.get_f64(key("attention.layer_norm_rms_epsilon"));
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd) user_error(f.path(), ": no tensor token_embd.weight (is this a complete deepseek4 GGUF?)");
  h.n_vocab = embd->shape().at(0);
  check(h, f.path());
  return h;
}

DeepSeekV4HParams hparams_from_hf_v4(const hf::DeepSeekV4Config& c) {
  DeepSeekV4HParams h;
  h.n_layer = c.num_hidden_layers;
  h.n_mtp = c.num_nextn_predict_layers;
  h.n_embd = c.hidden_size;
  h.n_vocab = c.vocab_size;
  h.n_ctx_train = c.max_position_embeddings;
  h.n_head = c.num_attention_heads;
  h.head_dim = c.head_dim;
  h.rope_dim = c.qk_rope_head_dim;
  h.q_lora_rank = c.q_lora_rank;
  h.o_groups = c.o_groups;
  h.o_lora_rank = c.o_lora_rank;
  h.window = c.sliding_window;
  h.compress_ratio = c.compress_ratios;
  h.index_heads = c.index_n_heads;
  h.index_head = c.index_head_dim;
  h.index_topk = c.index_topk;
  h.rope_theta = c.rope_theta;
  h.compress_rope_theta = c.compress_rope_theta;
  if (c.rope_scaling && c.rope_scaling->type == "yarn") {
    h.rope_factor = c.rope_scaling->factor;
    h.yarn_orig_ctx = c.rope_scaling->original_max_position_embeddings;
    h.yarn_beta_fast = c.rope_scaling->beta_fast;
    h.yarn_beta_slow = c.rope_scaling->beta_slow;
  }
  h.hc_mult = c.hc_mult;
  h.hc_sinkhorn_iters = c.hc_sinkhorn_iters;
  h.hc_eps = c.hc_eps;
  h.n_expert = c.n_routed_experts;
  h.n_expert_used = c.num_experts_per_tok;
  h.n_expert_shared = c.n_shared_experts;
  h.n_ff_expert = c.moe_intermediate_size;
  h.n_hash_layers = c.num_hash_layers;
  h.scoring = c.scoring_func;
  h.norm_topk = c.norm_topk_prob;
  h.routed_scale = c.routed_scaling_factor;
  h.swiglu_limit = c.swiglu_limit;
  h.rms_eps = c.rms_norm_eps;
  check(h, "config.json");
  return h;
}

std::vector<CachePart> deepseek4_cache_layout(const DeepSeekV4HParams& h, int64_t first, int64_t end) {
  std::vector<CachePart> parts;
  // Every part is read where not yet written (masked): zero-filled.
  auto part = [&](std::string input, int64_t width, int64_t tokens_per_row, int64_t fixed_rows, bool state) {
    parts.push_back(CachePart{std::move(input), width, tokens_per_row, fixed_rows, state, true});
  };
  for (int64_t l = first; l < end; ++l) {
    const int64_t ratio = h.compress_ratio.at(static_cast<size_t>(l));
    part(cat("window.", l), h.head_dim, 0, h.ring_rows(), false);
    if (ratio == 0) continue;
    // One spare row each: where a pass writes a block it has not completed (deepseek4_cached.cpp).
    part(cat("compressed.", l), h.head_dim, ratio, 1, false);
    if (ratio == 4) part(cat("index.", l), h.index_head, ratio, 1, false);
    const int64_t overlap = ratio == 4 ? 2 : 1;  // ratio 4 pools each block with the previous one's first halves
    const int64_t rows = DeepSeekV4HParams::state_rows(ratio);
    part(cat("state.", l), 2 * overlap * h.head_dim, 0, rows, true);
    if (ratio == 4) part(cat("index_state.", l), 2 * overlap * h.index_head, 0, rows, true);
  }
  return parts;
}

}  // namespace moat::models
