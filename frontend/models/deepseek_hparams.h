// The hyperparameters of a DeepSeek-V2 / V2-Lite / V3 / R1 / V3.2 model, from a GGUF file's
// metadata (llama.cpp's `deepseek2` / `deepseek32` keys) or from a Hugging Face config.json: one struct,
// so the graph builder never knows which file format a model came from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "frontend/gguf.h"
#include "frontend/hf_config.h"
#include "ir/dtype.h"

namespace moat::models {

struct DeepSeekHParams {
  int64_t n_layer = 0, n_embd = 0, n_vocab = 0, n_ctx_train = 0;  // tokens (context)
  // MTP layers loaded after the n_layer decoder layers (0 or 1: the first of the file's;
  // more depths reuse it, as llama.cpp and vLLM do). Not counted in n_layer.
  int64_t n_mtp = 0;
  int64_t n_head = 0;
  int64_t q_lora_rank = 0;  // 0: queries projected directly (V2-Lite)
  int64_t kv_lora_rank = 0, qk_nope = 0, qk_rope = 0, v_head = 0;
  int64_t n_ff = 0;          // dense FFN width (the first n_dense layers)
  int64_t n_dense = 0;       // leading dense layers (first_k_dense_replace)
  int64_t n_expert = 0, n_expert_used = 0, n_expert_shared = 0, n_ff_expert = 0;
  int64_t n_group = 1, n_group_used = 1;
  std::string scoring = "softmax";  // softmax | sigmoid
  std::string method = "greedy";    // greedy | group_limited_greedy | noaux_tc
  bool norm_topk = false;
  double routed_scale = 1.0;
  double rms_eps = 1e-6;
  double rope_theta = 10000.0;
  // RoPE scaling as llama.cpp applies it to deepseek2 (llama-context.cpp, models/deepseek2.cpp):
  // none; linear (positions divided by rope_factor); yarn (NTK-by-parts over yarn_orig_ctx
  // tokens, rope_factor the context extension). yarn_log_mul = 0.1 * mscale_all_dim (the
  // GGUF key's value). rope_attn_factor: rope.scaling.attn_factor, a multiplier of cos/sin.
  enum class RopeScaling { none, linear, yarn };
  RopeScaling rope_scaling = RopeScaling::none;
  double rope_factor = 1.0;
  double rope_attn_factor = 1.0;
  double yarn_beta_fast = 32.0, yarn_beta_slow = 1.0, yarn_log_mul = 0.0;
  int64_t yarn_orig_ctx = 0;
  // Attention temperature (Mistral-Large-3 files, deepseek2 keys
  // attention.temperature_scale / temperature_length): queries at position p are
  // multiplied by 1 + attn_temp_scale * ln(floor(p / attn_temp_length) + 1). 0: off.
  double attn_temp_scale = 0.0;
  int64_t attn_temp_length = 0;
  // DeepSeek Sparse Attention (V3.2's lightning indexer): index_heads query heads of
  // index_head floats, one key of index_head floats per token (LayerNorm with bias), RoPE
  // on the first qk_rope of each (rotating halves, not pairs); each query attends to its
  // index_topk best-scored keys. index_topk 0: dense MLA (V2, V3).
  int64_t index_heads = 0, index_head = 0, index_topk = 0;
  double index_norm_eps = 1e-6;

  int64_t qk_head() const { return qk_nope + qk_rope; }
  bool sparse() const { return index_topk > 0; }
  // Floats per token and layer in the latent KV cache: the compressed kv plus the shared
  // rope key.
  int64_t latent_width() const { return kv_lora_rank + qk_rope; }
  // Bytes of cache per token, all layers and a loaded MTP layer: rows of latent_width()
  // elements of `cache`, and with sparse attention rows of index_head indexer keys.
  uint64_t cache_bytes_per_token(ir::DType cache = ir::DType::f32) const {
    const int64_t width = latent_width() + (sparse() ? index_head : 0);
    return static_cast<uint64_t>(width / ir::dtype_block_elems(cache) * ir::dtype_block_bytes(cache) * (n_layer + n_mtp));
  }
  // The attention scale: 1 / sqrt(qk_head), times mscale^2 under YaRN (DeepSeek's
  // inference/model.py; llama.cpp's kq_scale, whose rule this follows for every scaling).
  double attention_scale() const;
  // RoPE's cos / sin multiplier as ggml takes it (ggml's rope multiplies it once more by
  // 1 + 0.1 ln(factor) under YaRN): llama.cpp's yarn_attn_factor.
  double rope_cos_sin_factor() const;
  // 1 / rope_factor, or 1 without scaling.
  double rope_freq_scale() const { return rope_scaling == RopeScaling::none ? 1.0 : 1.0 / rope_factor; }
};

// llama.cpp's deepseek2 or deepseek32 metadata. UserError naming the file and key when a key is
// missing or out of range; the routing method, which GGUF does not record, is inferred
// (bias tensor present -> noaux_tc; groups > 1 -> group_limited_greedy; else greedy)
// unless `method_override` is given.
DeepSeekHParams hparams_from_gguf(const gguf::File& file, bool has_bias, const std::string& method_override = "");
// An integer key that llama.cpp also takes as a per-layer array (get_key_or_arr): an
// array whose elements are all equal is that value (nullopt when absent); one that
// varies per layer is a UserError naming the key, as moatless builds every layer alike.
std::optional<int64_t> find_layer_uniform(const gguf::File& f, const std::string& key);
DeepSeekHParams hparams_from_hf(const hf::DeepSeekConfig& config, const std::string& path);

}  // namespace moat::models
