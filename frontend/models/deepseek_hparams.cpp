#include "frontend/models/deepseek_hparams.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "support/error.h"

namespace moat::models {

// llama.cpp's rules (llama-context.cpp sets yarn_attn_factor, models/deepseek2.cpp
// kq_scale); `ln_factor` = ln(1 / freq_scale), 0 without scaling. Under YaRN with a log
// multiplier (every DeepSeek release) this is DeepSeek's own mscale^2 / sqrt(d). With
// linear scaling llama.cpp's deepseek2 graph still multiplies the scale by
// (1 + 0.1 ln factor)^2; files scaled that way are llama.cpp's, so its rule is kept.
double DeepSeekHParams::rope_cos_sin_factor() const {
  double factor = 1.0;
  if (rope_scaling == RopeScaling::yarn) {
    const double ln_factor = std::log(rope_factor);
    const double yarn_mscale = yarn_log_mul != 0.0 ? 1.0 : 1.0 + 0.1 * ln_factor;  // get_mscale ratio
    factor = yarn_mscale / (1.0 + 0.1 * ln_factor);
  }
  return factor * rope_attn_factor;
}

double DeepSeekHParams::attention_scale() const {
  const double ln_factor = std::log(1.0 / rope_freq_scale());
  const double original = rope_cos_sin_factor() * (1.0 + 0.1 * ln_factor);
  const double mscale = original * (1.0 + yarn_log_mul * ln_factor);
  return mscale * mscale / std::sqrt(static_cast<double>(qk_head()));
}

namespace {

// The checks both sources share: every width positive, heads divide, experts consistent.
void check(const DeepSeekHParams& h, const std::string& source) {
  auto positive = [&](int64_t v, const char* what) {
    if (v <= 0) user_error(source, ": ", what, " must be positive, got ", v);
  };
  positive(h.n_layer, "the layer count");
  positive(h.n_embd, "the embedding width");
  positive(h.n_vocab, "the vocabulary size");
  positive(h.n_head, "the head count");
  positive(h.kv_lora_rank, "kv_lora_rank");
  positive(h.qk_nope, "qk_nope_head_dim");
  positive(h.qk_rope, "qk_rope_head_dim");
  positive(h.v_head, "v_head_dim");
  if (h.qk_rope % 2 != 0) user_error(source, ": qk_rope_head_dim must be even, got ", h.qk_rope);
  if (h.n_dense < h.n_layer) {
    positive(h.n_expert, "the expert count");
    positive(h.n_ff_expert, "the expert FFN width");
    if (h.n_expert_used < 1 || h.n_expert_used > h.n_expert)
      user_error(source, ": experts per token (", h.n_expert_used, ") must be in 1..", h.n_expert);
    if (h.n_group < 1 || h.n_expert % h.n_group != 0)
      user_error(source, ": the expert group count (", h.n_group, ") must divide the expert count (", h.n_expert, ")");
    if (h.n_group_used < 1 || h.n_group_used > h.n_group)
      user_error(source, ": groups used (", h.n_group_used, ") must be in 1..", h.n_group);
  }
  if (h.n_dense > 0) positive(h.n_ff, "the dense FFN width");
  if (h.scoring != "softmax" && h.scoring != "sigmoid")
    user_error(source, ": expert scoring '", h.scoring, "' is not softmax or sigmoid");
  if (h.method != "greedy" && h.method != "group_limited_greedy" && h.method != "noaux_tc")
    user_error(source, ": routing method '", h.method, "' is not greedy, group_limited_greedy or noaux_tc");
}

// The indexer's sizes: positive, and its head holds the rotated dimensions.
void check_indexer(const DeepSeekHParams& h, const std::string& source) {
  if (h.index_heads <= 0 || h.index_head <= 0 || h.index_topk <= 0)
    user_error(source, ": the sparse-attention indexer needs positive head count, key length and top-k, got ",
               h.index_heads, ", ", h.index_head, " and ", h.index_topk);
  if (h.index_head < h.qk_rope)
    user_error(source, ": the indexer's key length ", h.index_head, " is below qk_rope_head_dim ", h.qk_rope,
               " (its first qk_rope dimensions are rotated)");
  if (h.q_lora_rank == 0) user_error(source, ": the sparse-attention indexer reads the q-LoRA latent, and q_lora_rank is 0");
}


// RoPE scaling keys, as llama.cpp reads them: the type defaults to "linear", whose
// factor (rope.scaling.factor, or the older rope.scale_linear) defaults to none.
template <class Key>
void read_rope_scaling(const gguf::File& f, const Key& key, DeepSeekHParams* h) {
  using RopeScaling = DeepSeekHParams::RopeScaling;
  const std::string type = f.find_string(key("rope.scaling.type")).value_or("linear");
  const double factor =
      f.find_f64(key("rope.scaling.factor")).value_or(f.find_f64(key("rope.scale_linear")).value_or(0.0));
  h->rope_attn_factor = f.find_f64(key("rope.scaling.attn_factor")).value_or(1.0);
  if (type == "none") return;
  if (type != "linear" && type != "yarn")
    user_error(f.path(), ": rope scaling '", type, "' is not supported (moatless runs none, linear and yarn, as "
               "llama.cpp's deepseek2 does)");
  if (factor < 0.0 || (factor > 0.0 && factor < 1.0 && type == "yarn"))
    user_error(f.path(), ": ", key("rope.scaling.factor"), " = ", factor, " is out of range");
  if (factor == 0.0 || factor == 1.0) return;  // no scaling
  h->rope_scaling = type == "yarn" ? RopeScaling::yarn : RopeScaling::linear;
  h->rope_factor = factor;
  if (type == "yarn") {
    h->yarn_orig_ctx = f.find_i64(key("rope.scaling.original_context_length")).value_or(h->n_ctx_train);
    h->yarn_log_mul = f.find_f64(key("rope.scaling.yarn_log_multiplier")).value_or(0.0);
    h->yarn_beta_fast = f.find_f64(key("rope.scaling.yarn_beta_fast")).value_or(32.0);
    h->yarn_beta_slow = f.find_f64(key("rope.scaling.yarn_beta_slow")).value_or(1.0);
  }
}

}  // namespace

std::optional<int64_t> find_layer_uniform(const gguf::File& f, const std::string& key) {
  const gguf::Value* v = f.find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != gguf::ValueType::array) return f.find_i64(key);
  const std::string context = f.path() + ": metadata key " + key;
  if (v->array.empty()) user_error(context, " is an empty array");
  const int64_t first = v->array.front().as_i64(context);
  for (const gguf::Value& e : v->array)
    if (e.as_i64(context) != first)
      user_error(context, " differs from layer to layer (", first, ", ", e.as_i64(context), ", ...); moatless "
                 "builds every layer alike and does not run such files");
  return first;
}

DeepSeekHParams hparams_from_gguf(const gguf::File& f, bool has_bias, const std::string& method_override) {
  if (f.tensors().empty())
    user_error(f.path(), ": the file holds a vocabulary only, no weights; `moat tokenize -m ", f.path(),
               "` works with it, `moat run` needs a model file (a DeepSeek-V2 / V3 GGUF)");
  const std::string arch = f.architecture();
  if (arch != "deepseek2" && arch != "deepseek32") {
    if (arch == "deepseek4")
      user_error(f.path(), ": DeepSeek-V4 ('deepseek4') is a family of its own, not read as DeepSeek-V2/V3 "
                 "(models::open_model opens either)");
    user_error(f.path(), ": architecture '", arch, "' is not supported; moatless runs 'deepseek2' files "
               "(DeepSeek-V2, V2-Lite, V3, R1), 'deepseek32' files (DeepSeek-V3.2) and 'deepseek4' files (DeepSeek-V4)");
  }
  auto key = [&](const char* k) { return arch + "." + std::string(k); };
  DeepSeekHParams h;
  h.n_layer = f.get_i64(key("block_count"));
  h.n_embd = f.get_i64(key("embedding_length"));
  h.n_ctx_train = f.find_i64(key("context_length")).value_or(4096);
  const std::optional<int64_t> n_head = find_layer_uniform(f, key("attention.head_count"));
  if (!n_head) user_error(f.path(), ": metadata key ", key("attention.head_count"), " is missing");
  h.n_head = *n_head;
  h.q_lora_rank = f.find_i64(key("attention.q_lora_rank")).value_or(0);
  h.kv_lora_rank = f.get_i64(key("attention.kv_lora_rank"));
  h.qk_rope = f.get_i64(key("rope.dimension_count"));
  // key_length_mla / value_length_mla are the per-head sizes of the MLA (current
  // converter); older files give them as key_length / value_length.
  const int64_t k_len = f.find_i64(key("attention.key_length_mla")).value_or(f.get_i64(key("attention.key_length")));
  h.v_head = f.find_i64(key("attention.value_length_mla")).value_or(f.get_i64(key("attention.value_length")));
  h.qk_nope = k_len - h.qk_rope;
  h.n_ff = find_layer_uniform(f, key("feed_forward_length")).value_or(0);
  h.n_dense = f.find_i64(key("leading_dense_block_count")).value_or(0);
  h.n_expert = f.find_i64(key("expert_count")).value_or(0);
  h.n_expert_used = find_layer_uniform(f, key("expert_used_count")).value_or(0);
  h.n_expert_shared = f.find_i64(key("expert_shared_count")).value_or(0);
  h.n_ff_expert = find_layer_uniform(f, key("expert_feed_forward_length")).value_or(0);
  // llama.cpp groups experts only when expert_group_count > 1, and scales the routing
  // weights only when expert_weights_scale is neither 0 nor 1: a 0 there means "none".
  h.n_group = std::max<int64_t>(1, f.find_i64(key("expert_group_count")).value_or(1));
  h.n_group_used = h.n_group == 1 ? 1 : f.find_i64(key("expert_group_used_count")).value_or(1);
  h.routed_scale = f.find_f64(key("expert_weights_scale")).value_or(1.0);
  if (h.routed_scale == 0.0) h.routed_scale = 1.0;
  h.norm_topk = f.find_bool(key("expert_weights_norm")).value_or(false);
  const int64_t gating = f.find_i64(key("expert_gating_func")).value_or(1);  // llama.cpp: 1 softmax, 2 sigmoid
  if (gating != 1 && gating != 2) user_error(f.path(), ": ", key("expert_gating_func"), " = ", gating, " is not 1 (softmax) or 2 (sigmoid)");
  h.scoring = gating == 2 ? "sigmoid" : "softmax";
  h.method = !method_override.empty() ? method_override
             : has_bias                 ? "noaux_tc"
             : h.n_group > 1            ? "group_limited_greedy"
                                        : "greedy";
  h.rms_eps = f.find_f64(key("attention.layer_norm_rms_epsilon")).value_or(1e-6);
  h.rope_theta = f.find_f64(key("rope.freq_base")).value_or(10000.0);
  read_rope_scaling(f, key, &h);
  h.attn_temp_scale = f.find_f64(key("attention.temperature_scale")).value_or(0.0);
  h.attn_temp_length = f.find_i64(key("attention.temperature_length")).value_or(0);
  if (h.attn_temp_scale != 0.0 && h.attn_temp_length <= 0)
    user_error(f.path(), ": ", key("attention.temperature_scale"), " is set but ", key("attention.temperature_length"),
               " is ", h.attn_temp_length, " (it must be a positive number of tokens)");
  if (arch == "deepseek32") {  // the lightning indexer (llama.cpp's LLM_KV_ATTENTION_INDEXER_*)
    h.index_heads = f.get_i64(key("attention.indexer.head_count"));
    h.index_head = f.get_i64(key("attention.indexer.key_length"));
    h.index_topk = f.get_i64(key("attention.indexer.top_k"));
    check_indexer(h, f.path());
  }
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd) user_error(f.path(), ": no tensor token_embd.weight (is this a complete deepseek2 GGUF?)");
  h.n_vocab = embd->shape().at(0);
  check(h, f.path());
  return h;
}

DeepSeekHParams hparams_from_hf(const hf::DeepSeekConfig& c, const std::string& path) {
  DeepSeekHParams h;
  h.n_layer = c.num_hidden_layers;
  h.n_embd = c.hidden_size;
  h.n_vocab = c.vocab_size;
  h.n_ctx_train = c.max_position_embeddings;
  h.n_head = c.num_attention_heads;
  h.q_lora_rank = c.q_lora_rank.value_or(0);
  h.kv_lora_rank = c.kv_lora_rank;
  h.qk_nope = c.qk_nope_head_dim;
  h.qk_rope = c.qk_rope_head_dim;
  h.v_head = c.v_head_dim;
  h.n_ff = c.intermediate_size;
  h.n_dense = c.n_routed_experts == 0 ? c.num_hidden_layers : c.first_k_dense_replace;
  h.n_expert = c.n_routed_experts;
  h.n_expert_used = c.num_experts_per_tok;
  h.n_expert_shared = c.n_shared_experts;
  h.n_ff_expert = c.moe_intermediate_size;
  h.n_group = c.n_group;
  h.n_group_used = c.topk_group;
  h.scoring = c.scoring_func;
  h.method = c.topk_method;
  h.norm_topk = c.norm_topk_prob;
  h.routed_scale = c.routed_scaling_factor;
  h.rms_eps = c.rms_norm_eps;
  h.rope_theta = c.rope_theta;
  if (c.rope_scaling) {
    const hf::RopeScaling& r = *c.rope_scaling;
    if (r.type != "yarn") user_error(path, ": rope_scaling type '", r.type, "' is not supported (DeepSeek models use yarn)");
    h.rope_scaling = r.factor > 1.0 ? DeepSeekHParams::RopeScaling::yarn : DeepSeekHParams::RopeScaling::none;
    h.rope_factor = r.factor;
    h.yarn_orig_ctx = r.original_max_position_embeddings;
    h.yarn_beta_fast = r.beta_fast;
    h.yarn_beta_slow = r.beta_slow;
    h.yarn_log_mul = 0.1 * r.mscale_all_dim;
  }
  if (c.model_type == "deepseek_v32") {
    h.index_heads = c.index_n_heads;
    h.index_head = c.index_head_dim;
    h.index_topk = c.index_topk;
    check_indexer(h, path);
  }
  if (c.moe_layer_freq != 1) user_error(path, ": moe_layer_freq ", c.moe_layer_freq, " is not supported (every DeepSeek release uses 1)");
  check(h, path);
  return h;
}

}  // namespace moat::models
