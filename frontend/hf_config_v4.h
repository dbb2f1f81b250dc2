// Reader of a Hugging Face config.json for DeepSeek-V4 (model_type "deepseek_v4":
// V4-Flash, V4-Pro), in DeepSeek's released form (compress_ratios, num_hash_layers,
// qk_rope_head_dim, rope_scaling) or transformers 5's (layer_types, mlp_layer_types,
// partial_rotary_factor, rope_parameters {main, compress}).
//
// Absent fields take the defaults of transformers' DeepseekV4Config, so a config.json
// means what it means to transformers. Wrong types, out-of-range values and
// inconsistent sizes are UserErrors naming the file and the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/hf_config.h"

namespace moat::hf {

struct DeepSeekV4Config {
  std::vector<std::string> architectures;
  int64_t vocab_size = 129280, hidden_size = 4096, num_hidden_layers = 43;
  // Attention: num_attention_heads query heads of head_dim, one shared key = value head
  // (MQA), RoPE on the last qk_rope_head_dim of each; queries from a q_lora_rank latent;
  // the output projected per group of heads (o_groups groups to o_lora_rank each).
  int64_t num_attention_heads = 64, head_dim = 512, qk_rope_head_dim = 64, q_lora_rank = 1024;
  int64_t o_groups = 8, o_lora_rank = 1024;
  int64_t sliding_window = 128;  // tokens every layer attends to uncompressed
  // Per layer, then per MTP layer where the file says: 0 (the sliding window only), 4
  // (blocks of 4 tokens pooled with overlap, chosen per query by the indexer) or 128
  // (blocks of 128 tokens pooled, all attended).
  std::vector<int64_t> compress_ratios;
  int64_t index_n_heads = 64, index_head_dim = 128, index_topk = 512;
  double rope_theta = 10000;             // the window-only layers'
  double compress_rope_theta = 160000;   // the compressing layers' (with rope_scaling)
  std::optional<RopeScaling> rope_scaling;
  // Hyper-connections: hc_mult residual streams, mixed by Sinkhorn-normalised weights.
  int64_t hc_mult = 4, hc_sinkhorn_iters = 20;
  double hc_eps = 1e-6;
  int64_t n_routed_experts = 256, num_experts_per_tok = 6, n_shared_experts = 1, moe_intermediate_size = 2048;
  int64_t num_hash_layers = 3;  // the first layers route by a token -> experts table
  std::string scoring_func = "sqrtsoftplus";  // "sqrtsoftplus" | "softmax" | "sigmoid"
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.5;
  double swiglu_limit = 10;  // gate clamped above, up clamped to +-limit (0: none)
  int64_t max_position_embeddings = 1048576;  // tokens
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  std::optional<int64_t> bos_token_id = 0, eos_token_id = 1;
  std::string torch_dtype;   // "bfloat16", ...; empty when absent
  std::string expert_dtype;  // "fp4" in the releases (MXFP4 experts); empty when absent
  std::optional<QuantizationConfig> quantization_config;
  int64_t num_nextn_predict_layers = 1;  // MTP layers; not counted in num_hidden_layers
};

DeepSeekV4Config parse_deepseek_v4_config(std::string_view json_text, const std::string& path);
// Reads `dir_or_file` (a model folder: its config.json).
DeepSeekV4Config load_deepseek_v4_config(const std::string& dir_or_file);
// The "model_type" of a config.json ("" when absent), to choose its reader.
std::string config_model_type(const std::string& dir_or_file);

}  // namespace moat::hf
