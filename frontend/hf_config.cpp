#include "frontend/hf_config.h"

#include <cmath>
#include <filesystem>

#include "frontend/json_fields.h"
#include "support/error.h"
#include "support/mapped_file.h"
#include "support/strings.h"

namespace moat::hf {

using nlohmann::json;

namespace {

// Defaults of DeepSeek's configuration_deepseek.py (DeepseekV2Config and
// DeepseekV3Config). V2's default topk_method is spelled 'gready' there, which its
// modeling code treats as no method at all; every real config sets it, and "greedy"
// is what the default means.
void set_defaults(bool v3, DeepSeekConfig* c) {
  if (v3) {
    c->vocab_size = 129280, c->hidden_size = 7168, c->intermediate_size = 18432;
    c->moe_intermediate_size = 2048, c->num_hidden_layers = 61, c->num_nextn_predict_layers = 1;
    c->num_attention_heads = 128, c->num_key_value_heads = 128;
    c->n_shared_experts = 1, c->n_routed_experts = 256, c->routed_scaling_factor = 2.5;
    c->topk_method = "noaux_tc", c->n_group = 8, c->topk_group = 4, c->num_experts_per_tok = 8;
    c->first_k_dense_replace = 3, c->norm_topk_prob = true, c->scoring_func = "sigmoid";
    c->max_position_embeddings = 4096, c->bos_token_id = 0, c->eos_token_id = 1;
  } else {
    c->vocab_size = 102400, c->hidden_size = 4096, c->intermediate_size = 11008;
    c->moe_intermediate_size = 1407, c->num_hidden_layers = 30, c->num_nextn_predict_layers = 0;
    c->num_attention_heads = 32, c->num_key_value_heads = 32;
    c->n_shared_experts = 0, c->n_routed_experts = 0, c->routed_scaling_factor = 1.0;  // None: dense
    c->topk_method = "greedy", c->n_group = 1, c->topk_group = 1, c->num_experts_per_tok = 0;
    c->first_k_dense_replace = 0, c->norm_topk_prob = false, c->scoring_func = "softmax";
    c->max_position_embeddings = 2048, c->bos_token_id = 100000, c->eos_token_id = 100001;
  }
  c->moe_layer_freq = 1, c->kv_lora_rank = 512, c->q_lora_rank = 1536;
  c->qk_rope_head_dim = 64, c->v_head_dim = 128, c->qk_nope_head_dim = 128;
  c->rms_norm_eps = 1e-6, c->rope_theta = 10000.0, c->tie_word_embeddings = false;
}

}  // namespace

RopeScaling parse_rope_scaling(const json& value, const std::string& path) {
  if (!value.is_object()) user_error(path, ": field \"rope_scaling\" must be an object or null, got ", brief(value));
  Fields f(value, path, "rope_scaling.");
  RopeScaling r;
  const char* type_key = f.has_key("type") ? "type" : "rope_type";
  if (!f.has_key(type_key)) user_error(path, ": field \"rope_scaling\" has no \"type\" (DeepSeek uses \"yarn\")");
  r.type = f.choice(type_key, "", {"yarn", "linear", "dynamic"});
  r.factor = f.positive_number("factor", r.factor);
  // DeepseekV2YarnRotaryEmbedding's own default.
  int64_t original_default = r.type == "yarn" ? 4096 : 0;
  r.original_max_position_embeddings =
      f.integer("original_max_position_embeddings", original_default, r.type == "yarn" ? Min::One : Min::Zero);
  r.beta_fast = f.positive_number("beta_fast", r.beta_fast);
  r.beta_slow = f.positive_number("beta_slow", r.beta_slow);
  r.mscale = f.positive_number("mscale", r.mscale);
  if (f.has_key("mscale_all_dim")) {  // 0 (the default) is allowed: no all-dim scaling
    const json& v = value["mscale_all_dim"];
    if (!v.is_number() || !(v.get<double>() >= 0) || !std::isfinite(v.get<double>()))
      f.fail("mscale_all_dim", "a non-negative number", v);
    r.mscale_all_dim = v.get<double>();
  }
  return r;
}

QuantizationConfig parse_quantization(const json& value, const std::string& path) {
  if (!value.is_object())
    user_error(path, ": field \"quantization_config\" must be an object or null, got ", brief(value));
  Fields f(value, path, "quantization_config.");
  QuantizationConfig q;
  q.quant_method = f.string("quant_method", "");
  q.fmt = f.string("fmt", "");
  q.weight_block_size = f.integers("weight_block_size", Min::One);
  q.activation_scheme = f.string("activation_scheme", "");
  if (q.quant_method == "fp8" && !q.weight_block_size.empty() && q.weight_block_size.size() != 2)
    f.fail("weight_block_size", "[rows, cols] for fp8", value["weight_block_size"]);
  return q;
}

namespace {

void check_consistency(const DeepSeekConfig& c, const std::string& path) {
  auto fail = [&](const auto&... parts) { user_error(path, ": ", parts..., "; the config.json is inconsistent"); };
  if (c.n_routed_experts > 0) {
    if (c.num_experts_per_tok < 1 || c.num_experts_per_tok > c.n_routed_experts)
      fail("num_experts_per_tok (", c.num_experts_per_tok, ") must be in 1..n_routed_experts (",
           c.n_routed_experts, ")");
    if (c.n_routed_experts % c.n_group != 0)
      fail("n_routed_experts (", c.n_routed_experts, ") must be a multiple of n_group (", c.n_group, ")");
  }
  if (c.topk_group > c.n_group) fail("topk_group (", c.topk_group, ") exceeds n_group (", c.n_group, ")");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail("num_attention_heads (", c.num_attention_heads, ") must be a multiple of num_key_value_heads (",
         c.num_key_value_heads, ")");
  if (c.first_k_dense_replace > c.num_hidden_layers)
    fail("first_k_dense_replace (", c.first_k_dense_replace, ") exceeds num_hidden_layers (",
         c.num_hidden_layers, ")");
}

DeepSeekConfig parse_config_json(const json& root, const std::string& path) {
  if (!root.is_object()) user_error(path, ": expected a JSON object (a Hugging Face config.json), got ", brief(root));
  Fields f(root, path, "");
  if (!f.present("model_type"))
    user_error(path, ": no \"model_type\"; moatless reads DeepSeek-V2 / V2-Lite / V3 / R1 / V3.2 configs "
                     "(model_type \"deepseek_v2\", \"deepseek_v3\" or \"deepseek_v32\")");
  DeepSeekConfig c;
  c.model_type = f.string("model_type", "");
  if (c.model_type == "deepseek_v4")
    user_error(path, ": DeepSeek-V4 (model_type \"deepseek_v4\") is a family of its own, not read as DeepSeek-V2/V3 "
               "(models::open_model opens either)");
  if (c.model_type != "deepseek_v2" && c.model_type != "deepseek_v3" && c.model_type != "deepseek_v32")
    user_error(path, ": model_type ", quoted(c.model_type), " is not supported; moatless reads the DeepSeek "
               "family: DeepSeek-V2 / V2-Lite (\"deepseek_v2\"), DeepSeek-V3 / R1 (\"deepseek_v3\") and "
               "DeepSeek-V3.2 (\"deepseek_v32\")");
  const bool v32 = c.model_type == "deepseek_v32";
  set_defaults(c.model_type != "deepseek_v2", &c);
  if (v32) {  // transformers' DeepseekV32Config
    c.max_position_embeddings = 163840;
    c.index_topk = 2048, c.index_head_dim = 128, c.index_n_heads = 64;
  }

  c.architectures = f.strings("architectures");
  c.vocab_size = f.integer("vocab_size", c.vocab_size, Min::One);
  c.hidden_size = f.integer("hidden_size", c.hidden_size, Min::One);
  c.intermediate_size = f.integer("intermediate_size", c.intermediate_size, Min::One);
  c.moe_intermediate_size = f.integer("moe_intermediate_size", c.moe_intermediate_size, Min::One);
  c.num_hidden_layers = f.integer("num_hidden_layers", c.num_hidden_layers, Min::One);
  c.num_attention_heads = f.integer("num_attention_heads", c.num_attention_heads, Min::One);
  // HF: num_key_value_heads None means num_attention_heads.
  c.num_key_value_heads = f.nullable_integer("num_key_value_heads", c.num_key_value_heads, Min::One)
                              .value_or(c.num_attention_heads);
  c.n_shared_experts = f.nullable_integer("n_shared_experts", c.n_shared_experts, Min::Zero).value_or(0);
  c.n_routed_experts = f.nullable_integer("n_routed_experts", c.n_routed_experts, Min::Zero).value_or(0);
  c.num_experts_per_tok = f.nullable_integer("num_experts_per_tok", c.num_experts_per_tok, Min::Zero).value_or(0);
  c.n_group = f.nullable_integer("n_group", c.n_group, Min::One).value_or(1);
  c.topk_group = f.nullable_integer("topk_group", c.topk_group, Min::One).value_or(1);
  c.first_k_dense_replace = f.integer("first_k_dense_replace", c.first_k_dense_replace, Min::Zero);
  c.moe_layer_freq = f.integer("moe_layer_freq", c.moe_layer_freq, Min::One);
  c.kv_lora_rank = f.integer("kv_lora_rank", c.kv_lora_rank, Min::One);
  c.q_lora_rank = f.nullable_integer("q_lora_rank", c.q_lora_rank, Min::One);
  c.qk_rope_head_dim = f.integer("qk_rope_head_dim", c.qk_rope_head_dim, Min::One);
  c.qk_nope_head_dim = f.integer("qk_nope_head_dim", c.qk_nope_head_dim, Min::One);
  c.v_head_dim = f.integer("v_head_dim", c.v_head_dim, Min::One);
  c.routed_scaling_factor = f.positive_number("routed_scaling_factor", c.routed_scaling_factor);
  c.rms_norm_eps = f.positive_number("rms_norm_eps", c.rms_norm_eps);
  c.rope_theta = f.positive_number("rope_theta", c.rope_theta);
  c.topk_method = f.choice("topk_method", c.topk_method, {"greedy", "group_limited_greedy", "noaux_tc"});
  c.scoring_func = f.choice("scoring_func", c.scoring_func, {"softmax", "sigmoid"});
  c.norm_topk_prob = f.boolean("norm_topk_prob", c.norm_topk_prob);
  c.max_position_embeddings = f.integer("max_position_embeddings", c.max_position_embeddings, Min::One);
  if (f.present("rope_scaling")) {
    c.rope_scaling = parse_rope_scaling(root["rope_scaling"], path);
  } else if (f.present("rope_parameters")) {  // transformers 5 writes rope_theta and the scaling here
    const json& r = root["rope_parameters"];
    if (!r.is_object()) user_error(path, ": field \"rope_parameters\" must be an object or null, got ", brief(r));
    Fields rf(r, path, "rope_parameters.");
    c.rope_theta = rf.positive_number("rope_theta", c.rope_theta);
    if (rf.string("rope_type", "default") != "default") c.rope_scaling = parse_rope_scaling(r, path);
  }
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", c.tie_word_embeddings);
  c.bos_token_id = f.nullable_integer("bos_token_id", c.bos_token_id, Min::Zero);
  c.eos_token_id = f.nullable_integer("eos_token_id", c.eos_token_id, Min::Zero);
  // Newer transformers write "dtype" instead of "torch_dtype".
  c.torch_dtype = f.present("torch_dtype") ? f.string("torch_dtype", "")
                  : f.present("dtype")     ? f.string("dtype", "")
                                           : "";
  if (f.present("quantization_config"))
    c.quantization_config = parse_quantization(root["quantization_config"], path);
  c.num_nextn_predict_layers = f.integer("num_nextn_predict_layers", c.num_nextn_predict_layers, Min::Zero);
  if (v32) {
    c.index_topk = f.integer("index_topk", c.index_topk, Min::One);
    c.index_head_dim = f.integer("index_head_dim", c.index_head_dim, Min::One);
    c.index_n_heads = f.integer("index_n_heads", c.index_n_heads, Min::One);
  }
  check_consistency(c, path);
  return c;
}

}  // namespace

nlohmann::json read_json_file(const std::string& path) {
  MappedFile file = MappedFile::open(path);
  std::span<const uint8_t> bytes = file.bytes();
  if (bytes.size() > kMaxJsonBytes)
    user_error(path, ": ", bytes.size(), " bytes, over the ", kMaxJsonBytes, "-byte limit for a JSON file");
  return parse_json_text(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path);
}

DeepSeekConfig parse_deepseek_config(std::string_view json_text, const std::string& path) {
  if (json_text.size() > kMaxJsonBytes)
    user_error(path, ": ", json_text.size(), " bytes, over the ", kMaxJsonBytes, "-byte limit for a JSON file");
  return parse_config_json(parse_json_text(json_text, path), path);
}

DeepSeekConfig load_deepseek_config(const std::string& dir_or_file) {
  std::error_code ec;
  std::string path = std::filesystem::is_directory(dir_or_file, ec)
                         ? (std::filesystem::path(dir_or_file) / "config.json").string()
                         : dir_or_file;
  return parse_config_json(read_json_file(path), path);
}

}  // namespace moat::hf
