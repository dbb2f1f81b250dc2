#include "frontend/hf_config_v4.h"

#include <filesystem>

#include "frontend/json_fields.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::hf {

using nlohmann::json;

namespace {

constexpr size_t kMostLayers = 4096;

// transformers' layer_types -> DeepSeek's compress ratio, through compress_rates.
int64_t ratio_of_layer_type(const std::string& type, int64_t csa, int64_t hca, const std::string& path) {
  if (type == "sliding_attention") return 0;
  if (type == "compressed_sparse_attention") return csa;
  if (type == "heavily_compressed_attention") return hca;
  user_error(path, ": field \"layer_types\" holds ", quoted(type), "; DeepSeek-V4 layers are sliding_attention, "
             "compressed_sparse_attention or heavily_compressed_attention");
}

void read_compress_ratios(const json& root, const Fields& f, const std::string& path, DeepSeekV4Config* c) {
  if (f.present("compress_ratios")) {
    c->compress_ratios = f.integers("compress_ratios", Min::Zero, kMostLayers);
  } else if (f.present("layer_types")) {
    int64_t csa = f.integer("compress_rate_csa", 4, Min::One), hca = f.integer("compress_rate_hca", 128, Min::One);
    if (f.present("compress_rates")) {
      const json& rates = root["compress_rates"];
      if (!rates.is_object()) f.fail("compress_rates", "an object", rates);
      Fields r(rates, path, "compress_rates.");
      csa = r.integer("compressed_sparse_attention", csa, Min::One);
      hca = r.integer("heavily_compressed_attention", hca, Min::One);
    }
    for (const std::string& type : f.strings("layer_types")) c->compress_ratios.push_back(ratio_of_layer_type(type, csa, hca, path));
  } else {  // transformers' default schedule: 2 x 128, then 4 and 128 alternating
    for (int64_t l = 0; l < c->num_hidden_layers; ++l) c->compress_ratios.push_back(l < 2 || l % 2 == 0 ? 128 : 4);
  }
  for (int64_t ratio : c->compress_ratios)
    if (ratio != 0 && ratio != 4 && ratio != 128)
      user_error(path, ": a compress ratio of ", ratio, "; DeepSeek-V4 layers compress by 0 (none), 4 or 128");
  if (static_cast<int64_t>(c->compress_ratios.size()) < c->num_hidden_layers)
    user_error(path, ": ", c->compress_ratios.size(), " compress ratios (compress_ratios / layer_types) for ",
               c->num_hidden_layers, " layers (num_hidden_layers); the config.json is inconsistent");
}

void read_hash_layers(const Fields& f, const std::string& path, DeepSeekV4Config* c) {
  if (f.present("num_hash_layers")) {
    c->num_hash_layers = f.integer("num_hash_layers", c->num_hash_layers, Min::Zero);
  } else if (f.present("mlp_layer_types")) {  // a prefix of "hash_moe", then "moe"
    const std::vector<std::string> types = f.strings("mlp_layer_types");
    c->num_hash_layers = 0;
    for (size_t l = 0; l < types.size(); ++l) {
      if (types[l] != "hash_moe" && types[l] != "moe")
        user_error(path, ": field \"mlp_layer_types\" holds ", quoted(types[l]), "; DeepSeek-V4 has hash_moe and moe layers");
      if (types[l] == "hash_moe" && c->num_hash_layers++ != static_cast<int64_t>(l))
        user_error(path, ": field \"mlp_layer_types\": hash_moe layers must come first, as in every DeepSeek-V4");
    }
  }
  c->num_hash_layers = std::min(c->num_hash_layers, c->num_hidden_layers);
}

// rope_scaling (DeepSeek's release) or rope_parameters: {main, compress} (transformers 5).
void read_rope(const json& root, const Fields& f, const std::string& path, DeepSeekV4Config* c) {
  c->rope_theta = f.positive_number("rope_theta", c->rope_theta);
  c->compress_rope_theta = f.positive_number("compress_rope_theta", c->compress_rope_theta);
  if (f.present("rope_scaling")) c->rope_scaling = parse_rope_scaling(root["rope_scaling"], path);
  if (!f.present("rope_parameters")) return;
  const json& r = root["rope_parameters"];
  if (!r.is_object()) f.fail("rope_parameters", "an object", r);
  auto part = [&](const char* name) -> const json* { return r.contains(name) && r[name].is_object() ? &r[name] : nullptr; };
  if (const json* main = part("main")) c->rope_theta = Fields(*main, path, "rope_parameters.main.").positive_number("rope_theta", c->rope_theta);
  const json* compress = part("compress") ? part("compress") : &r;  // nested, or the scaling itself
  Fields cf(*compress, path, compress == &r ? "rope_parameters." : "rope_parameters.compress.");
  if (compress != &r) c->compress_rope_theta = cf.positive_number("rope_theta", c->compress_rope_theta);
  if (cf.string("rope_type", cf.string("type", "default")) != "default") c->rope_scaling = parse_rope_scaling(*compress, path);
}

void check_consistency(const DeepSeekV4Config& c, const std::string& path) {
  auto fail = [&](const auto&... parts) { user_error(path, ": ", parts..., "; the config.json is inconsistent"); };
  if (c.num_experts_per_tok > c.n_routed_experts)
    fail("num_experts_per_tok (", c.num_experts_per_tok, ") exceeds n_routed_experts (", c.n_routed_experts, ")");
  if (c.num_attention_heads % c.o_groups != 0)
    fail("num_attention_heads (", c.num_attention_heads, ") must be a multiple of o_groups (", c.o_groups, ")");
  if (c.qk_rope_head_dim % 2 != 0 || c.qk_rope_head_dim > c.head_dim)
    fail("the rotary part (", c.qk_rope_head_dim, ") must be even and at most head_dim (", c.head_dim, ")");
  if (c.index_head_dim % 2 != 0 || c.qk_rope_head_dim > c.index_head_dim)
    fail("index_head_dim (", c.index_head_dim, ") must be even and hold the rotary part (", c.qk_rope_head_dim, ")");
}

DeepSeekV4Config parse_root(const json& root, const std::string& path) {
  if (!root.is_object()) user_error(path, ": expected a JSON object (a Hugging Face config.json), got ", brief(root));
  Fields f(root, path, "");
  DeepSeekV4Config c;
  if (f.string("model_type", "") != "deepseek_v4")
    user_error(path, ": model_type ", quoted(f.string("model_type", "")), " is not DeepSeek-V4's (\"deepseek_v4\")");
  c.architectures = f.strings("architectures");
  c.vocab_size = f.integer("vocab_size", c.vocab_size, Min::One);
  c.hidden_size = f.integer("hidden_size", c.hidden_size, Min::One);
  c.num_hidden_layers = f.integer("num_hidden_layers", c.num_hidden_layers, Min::One);
  c.num_attention_heads = f.integer("num_attention_heads", c.num_attention_heads, Min::One);
  if (const int64_t kv = f.integer("num_key_value_heads", 1, Min::One); kv != 1)
    user_error(path, ": num_key_value_heads is ", kv, "; DeepSeek-V4 attends with one shared key/value head (1)");
  c.head_dim = f.integer("head_dim", c.head_dim, Min::One);
  c.qk_rope_head_dim = f.has_key("qk_rope_head_dim") || !f.present("partial_rotary_factor")
                           ? f.integer("qk_rope_head_dim", c.qk_rope_head_dim, Min::One)
                           : static_cast<int64_t>(static_cast<double>(c.head_dim) * f.positive_number("partial_rotary_factor", 0.125));
  c.q_lora_rank = f.integer("q_lora_rank", c.q_lora_rank, Min::One);
  c.o_groups = f.integer("o_groups", c.o_groups, Min::One);
  c.o_lora_rank = f.integer("o_lora_rank", c.o_lora_rank, Min::One);
  c.sliding_window = f.integer("sliding_window", c.sliding_window, Min::One);
  c.index_n_heads = f.integer("index_n_heads", c.index_n_heads, Min::One);
  c.index_head_dim = f.integer("index_head_dim", c.index_head_dim, Min::One);
  c.index_topk = f.integer("index_topk", c.index_topk, Min::One);
  read_compress_ratios(root, f, path, &c);
  read_rope(root, f, path, &c);
  c.hc_mult = f.integer("hc_mult", c.hc_mult, Min::One);
  c.hc_sinkhorn_iters = f.integer("hc_sinkhorn_iters", c.hc_sinkhorn_iters, Min::One);
  c.hc_eps = f.positive_number("hc_eps", c.hc_eps);
  c.n_routed_experts = f.integer("n_routed_experts", c.n_routed_experts, Min::One);
  c.num_experts_per_tok = f.integer("num_experts_per_tok", c.num_experts_per_tok, Min::One);
  c.n_shared_experts = f.integer("n_shared_experts", c.n_shared_experts, Min::Zero);
  c.moe_intermediate_size = f.integer("moe_intermediate_size", c.moe_intermediate_size, Min::One);
  read_hash_layers(f, path, &c);
  c.scoring_func = f.choice("scoring_func", c.scoring_func, {"sqrtsoftplus", "softmax", "sigmoid"});
  c.norm_topk_prob = f.boolean("norm_topk_prob", c.norm_topk_prob);
  c.routed_scaling_factor = f.positive_number("routed_scaling_factor", c.routed_scaling_factor);
  c.swiglu_limit = f.has_key("swiglu_limit") && root["swiglu_limit"] == 0 ? 0 : f.positive_number("swiglu_limit", c.swiglu_limit);
  c.max_position_embeddings = f.integer("max_position_embeddings", c.max_position_embeddings, Min::One);
  c.rms_norm_eps = f.positive_number("rms_norm_eps", c.rms_norm_eps);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", c.tie_word_embeddings);
  c.bos_token_id = f.nullable_integer("bos_token_id", c.bos_token_id, Min::Zero);
  c.eos_token_id = f.nullable_integer("eos_token_id", c.eos_token_id, Min::Zero);
  c.torch_dtype = f.present("torch_dtype") ? f.string("torch_dtype", "") : f.present("dtype") ? f.string("dtype", "") : "";
  c.expert_dtype = f.present("expert_dtype") ? f.string("expert_dtype", "") : "";
  if (f.present("quantization_config")) c.quantization_config = parse_quantization(root["quantization_config"], path);
  c.num_nextn_predict_layers = f.integer("num_nextn_predict_layers", c.num_nextn_predict_layers, Min::Zero);
  check_consistency(c, path);
  return c;
}

std::string config_path(const std::string& dir_or_file) {
  std::error_code ec;
  return std::filesystem::is_directory(dir_or_file, ec) ? (std::filesystem::path(dir_or_file) / "config.json").string()
                                                        : dir_or_file;
}

}  // namespace

DeepSeekV4Config parse_deepseek_v4_config(std::string_view json_text, const std::string& path) {
  if (json_text.size() > kMaxJsonBytes)
    user_error(path, ": ", json_text.size(), " bytes, over the ", kMaxJsonBytes, "-byte limit for a JSON file");
  return parse_root(parse_json_text(json_text, path), path);
}

DeepSeekV4Config load_deepseek_v4_config(const std::string& dir_or_file) {
  const std::string path = config_path(dir_or_file);
  return parse_root(read_json_file(path), path);
}

std::string config_model_type(const std::string& dir_or_file) {
  const std::string path = config_path(dir_or_file);
  const json root = read_json_file(path);
  return root.is_object() && root.contains("model_type") && root["model_type"].is_string() ? root["model_type"].get<std::string>()
                                                                                           : "";
}

}  // namespace moat::hf
