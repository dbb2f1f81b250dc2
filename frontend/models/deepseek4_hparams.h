// The hyperparameters of a DeepSeek-V4 model (V4-Flash, V4-Pro), from a GGUF file's
// metadata (llama.cpp's `deepseek4` keys) or a Hugging Face config.json (model_type
// "deepseek_v4"), and the layout of its cache: one struct, so that what reads them
// never knows which file format the model came from.
//
// V4 is not MLA: every layer attends with one shared key = value head of head_dim
// (MQA) to a sliding window of the last `window` tokens and, per its compress ratio,
// to compressed rows: ratio 4 pools blocks of 4 tokens (with overlap) and an indexer
// picks each query's index_topk of them; ratio 128 pools blocks of 128 tokens, all
// attended; ratio 0 has the window only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frontend/gguf.h"
#include "frontend/hf_config_v4.h"
#include "frontend/model.h"

namespace moat::models {

struct DeepSeekV4HParams {
  int64_t n_layer = 0, n_embd = 0, n_vocab = 0, n_ctx_train = 0;  // tokens (context)
  int64_t n_mtp = 0;  // MTP layers the file has after the n_layer decoder layers
  int64_t n_head = 0, head_dim = 0, rope_dim = 0;  // RoPE on the last rope_dim of a head
  int64_t q_lora_rank = 0, o_groups = 0, o_lora_rank = 0;
  int64_t window = 0;  // tokens of the sliding window
  std::vector<int64_t> compress_ratio;  // per decoder layer, then per MTP layer: 0, 4 or 128
  int64_t index_heads = 0, index_head = 0, index_topk = 0;
  double rope_theta = 10000, compress_rope_theta = 160000;
  // YaRN of the compressing layers (factor 1: none); its attention factor is 1.
  double rope_factor = 1, yarn_beta_fast = 32, yarn_beta_slow = 1;
  int64_t yarn_orig_ctx = 0;
  int64_t hc_mult = 0, hc_sinkhorn_iters = 0;  // hyper-connection streams, Sinkhorn steps
  double hc_eps = 1e-6;
  int64_t n_expert = 0, n_expert_used = 0, n_expert_shared = 0, n_ff_expert = 0;
  int64_t n_hash_layers = 0;  // the first layers route by the token -> experts table
  std::string scoring = "sqrtsoftplus";
  bool norm_topk = true;
  double routed_scale = 1, swiglu_limit = 0, rms_eps = 1e-6;

  // Decoder layers (of n_layer) compressing by `ratio`.
  int64_t layers_with_ratio(int64_t ratio) const;
  // Rows of the window ring: the window and kRewindSlack spare rows.
  int64_t ring_rows() const { return window + kRewindSlack; }
  // Rows of a `ratio` layer's pooling state: the tokens one block pools (ratio 4: with
  // the previous block's, 8; 128: 128) and kRewindSlack spare rows.
  static int64_t state_rows(int64_t ratio) { return (ratio == 4 ? 2 : 1) * ratio + kRewindSlack; }

  // Tokens a pass may write past a length that a cut back to it still finds intact
  // (Model::cache_rewind_limit): the ring and the pooling state hold this many rows more
  // than they need, so the rows a token x overwrites (x - ring_rows(), x -
  // state_rows()) are ones no query from position x - kRewindSlack on reads. A speculative
  // pass rejects at most its drafts (--draft <= kRewindSlack), a chat's next turn cuts
  // back the end-of-turn tokens that differ.
  static constexpr int64_t kRewindSlack = 16;
};

// llama.cpp's deepseek4 metadata, or a DeepSeek-V4 config.json. UserError naming the
// file and key when a key is missing or a value out of range.
DeepSeekV4HParams hparams_from_gguf_v4(const gguf::File& file);
DeepSeekV4HParams hparams_from_hf_v4(const hf::DeepSeekV4Config& config);

// The cache of decoder layers `first`..`end`-1, per layer L in this order (rows of one
// sequence; a session of several holds a block of them per sequence):
//   "window.L"       the last `window` tokens' key = value rows (head_dim), a ring of
//                    ring_rows(): token p in row p % ring_rows();
//   "compressed.L"   ratio 4 or 128: a row of head_dim per block of `ratio` tokens,
//                    and a spare row;
//   "index.L"        ratio 4: the indexer's key per block (index_head), a spare row;
//   "state.L"        ratio 4 or 128, f32: the running block's pooling inputs, per
//                    token its projected row and its gate scores (ratio 4: both
//                    halves of the overlapping pair, 2 * 2 * head_dim, for the last
//                    8 tokens; 128: 2 * head_dim for the last 128) and the spare
//                    rows, state_rows(ratio) in all: token p in row p % rows;
//   "index_state.L"  ratio 4, f32: the same for the indexer (2 * 2 * index_head).
// The parts are llama.cpp's (llama-kv-cache-dsv4), with kRewindSlack spare rows in
// place of its padding.
std::vector<CachePart> deepseek4_cache_layout(const DeepSeekV4HParams& h, int64_t first, int64_t end);

}  // namespace moat::models
