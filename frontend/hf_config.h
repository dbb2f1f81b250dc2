// Reader of a Hugging Face config.json for the DeepSeek-V2 / V2-Lite / V3 / R1 family
// (model_type "deepseek_v2" or "deepseek_v3") and DeepSeek-V3.2 ("deepseek_v32").
//
// Absent fields take the defaults of DeepSeek's own configuration_deepseek.py for that
// model_type (DeepseekV2Config / DeepseekV3Config), so a config.json means what it
// means to transformers. Wrong types and out-of-range values are UserErrors naming
// the file and the field.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moat::hf {

// "rope_scaling": {"type": "yarn", ...}. DeepSeek uses YaRN; linear and dynamic are
// read too so that the caller can reject them by name.
struct RopeScaling {
  std::string type;                                // "yarn" | "linear" | "dynamic"
  double factor = 1;
  int64_t original_max_position_embeddings = 0;    // tokens; yarn defaults to 4096
  double beta_fast = 32, beta_slow = 1, mscale = 1, mscale_all_dim = 0;
};

// "quantization_config" (DeepSeek-V3's FP8 release: fp8 / e4m3 / [128, 128] / dynamic).
struct QuantizationConfig {
  std::string quant_method;
  std::string fmt;
  std::vector<int64_t> weight_block_size;  // [rows, cols] of one scale block
  std::string activation_scheme;
};

struct DeepSeekConfig {
  std::string model_type;  // "deepseek_v2" | "deepseek_v3" | "deepseek_v32"
  std::vector<std::string> architectures;
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, moe_intermediate_size = 0;
  int64_t num_hidden_layers = 0, num_attention_heads = 0, num_key_value_heads = 0;
  // MoE. n_routed_experts == 0: a dense model (null in config.json). A null n_group /
  // topk_group reads as 1 / 1: one group, always selected (no group limit).
  int64_t n_shared_experts = 0, n_routed_experts = 0, num_experts_per_tok = 0;
  int64_t n_group = 1, topk_group = 1, first_k_dense_replace = 0, moe_layer_freq = 1;
  // MLA. q_lora_rank nullopt: queries are projected directly (V2-Lite).
  int64_t kv_lora_rank = 0;
  std::optional<int64_t> q_lora_rank;
  int64_t qk_rope_head_dim = 0, qk_nope_head_dim = 0, v_head_dim = 0;
  double routed_scaling_factor = 1, rms_norm_eps = 1e-6, rope_theta = 10000;
  std::string topk_method;   // "greedy" | "group_limited_greedy" | "noaux_tc"
  std::string scoring_func;  // "softmax" | "sigmoid"
  bool norm_topk_prob = false;
  int64_t max_position_embeddings = 0;  // tokens
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  std::optional<int64_t> bos_token_id, eos_token_id;
  std::string torch_dtype;  // "bfloat16", ...; empty when absent
  std::optional<QuantizationConfig> quantization_config;
  int64_t num_nextn_predict_layers = 0;  // MTP layers (V3); not counted in num_hidden_layers
  // DeepSeek-V3.2's sparse-attention indexer (deepseek_v32 only).
  int64_t index_n_heads = 0, index_head_dim = 0, index_topk = 0;
};

// "rope_scaling" (or transformers 5's "rope_parameters" when not "default") and
// "quantization_config" objects; `path` prefixes error messages.
RopeScaling parse_rope_scaling(const nlohmann::json& value, const std::string& path);
QuantizationConfig parse_quantization(const nlohmann::json& value, const std::string& path);

// Parses config.json text; `path` prefixes error messages.
DeepSeekConfig parse_deepseek_config(std::string_view json_text, const std::string& path);
// Reads `dir_or_file` (a model folder: its config.json).
DeepSeekConfig load_deepseek_config(const std::string& dir_or_file);
// Reads a JSON file; UserError "<path>: not valid JSON: ... line L, column C ..." when bad.
nlohmann::json read_json_file(const std::string& path);

}  // namespace moat::hf
