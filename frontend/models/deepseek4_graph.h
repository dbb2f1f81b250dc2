// The builder of DeepSeek-V4's passes (internal to frontend/models/deepseek4*.cpp): one
// class for the pass over a whole sequence (deepseek4.cpp: no cache, positions 0..T-1)
// and the pass of T new tokens over the cache (deepseek4_cached.cpp: the parts of
// deepseek4_cache_layout, positions P..P+T-1 with P known at run time only).
//
// Shapes are static (T and the cache's context); every position-dependent choice (which
// ring row holds which token, which blocks complete in this pass) is graph arithmetic
// on the "positions" input, so one graph serves every P.
//
// Parts of several sequences (PassSpec::sequences > 1, a batched session): sequence s's
// rows of a part are its block s x part.rows(context) ..; a token's sequence is its
// "key_starts" / context. A pass of one sequence (PassSpec::one_sequence) gathers its
// block's rows where the pass of a lone sequence reads the part; a pass of several
// (deepseek4_batched.cpp) holds one token of each, and each token reads its own block.
#pragma once

#include <limits>
#include <map>
#include <string>
#include <vector>

#include "frontend/model.h"
#include "frontend/models/deepseek4.h"
#include "frontend/models/deepseek4_blocks.h"
#include "ir/builder.h"

namespace moat::models {

class DeepSeekV4PassBuilder {
 public:
  // `pass.cache_rows` 0: the whole-sequence pass; else the cache's context in tokens
  // (times pass.sequences, of which the parts hold the rows).
  DeepSeekV4PassBuilder(ir::Builder& b, const DeepSeekV4HParams& h, const DeepSeekV4Weights& w, const PassSpec& pass)
      : b_(b), h_(h), w_(w), pass_(pass), t_(pass.tokens) {}

  // Adds the inputs ("tokens", "positions" when `with_positions`, the cache parts; a
  // draft pass's "hidden") and returns the logits f32[T or 1, vocab]; the updated parts
  // are then updated_parts(), and with pass.hidden the streams hidden().
  ir::NodeId build(bool with_positions);
  const std::vector<ir::NodeId>& indexer_choices() const { return choices_; }
  // The cache parts written by the pass, in deepseek4_cache_layout's order.
  std::vector<ir::NodeId> updated_parts() const;
  // pass.hidden: every new token's hyper-connection streams after the last block, before
  // the head collapses them, f32[T, hc_mult * n_embd] (stream-major).
  ir::NodeId hidden() const { return hidden_; }

 private:
  static constexpr double kInf = std::numeric_limits<double>::infinity();  // -kInf: a masked score
  bool cached() const { return pass_.cache_rows > 0; }
  // The context of each sequence whose rows the parts hold.
  int64_t context() const { return pass_.cache_rows / pass_.sequences; }
  // One token of each of T sequences (a batched decode step), not one sequence's T tokens.
  bool token_per_sequence() const { return pass_.batched && !pass_.one_sequence; }
  ir::NodeId weight(const std::string& name);
  ir::NodeId to_f32(ir::NodeId x);
  ir::NodeId f32(double v) { return b_.scalar(ir::DType::f32, v); }
  ir::NodeId i32(double v) { return b_.scalar(ir::DType::i32, v); }
  // x . W^T; an FP8 W with its block scales "name.scale".
  ir::NodeId linear(ir::NodeId x, const std::string& name);
  ir::NodeId norm(ir::NodeId x, const std::string& name) { return b_.rms_norm(x, weight(name), h_.rms_eps); }
  HyperWeights hyper(const std::string& prefix);
  ir::NodeId both(ir::NodeId a, ir::NodeId c) { return b_.select(a, c, a); }  // bool a && c
  // x mod k and x / k for x >= 0 (i32).
  ir::NodeId div_by(ir::NodeId x, int64_t k) { return b_.div(x, i32(static_cast<double>(k))); }
  ir::NodeId mod_by(ir::NodeId x, int64_t k) { return b_.sub(x, b_.mul(div_by(x, k), i32(static_cast<double>(k)))); }

  // Layers the pass runs: the decoder layers, or a draft pass's MTP layer (n_layer).
  int64_t first_layer() const { return pass_.draft ? h_.n_layer : 0; }
  int64_t end_layer() const { return pass_.draft ? h_.n_layer + 1 : h_.n_layer; }
  // The MTP layer's input streams [T, N, D] from the next tokens and "hidden" (deepseek4.h).
  ir::NodeId draft_streams();
  ir::NodeId rope_tail(ir::NodeId x, ir::NodeId positions, bool compress);
  ir::NodeId attention(int64_t l, ir::NodeId hn);
  ir::NodeId output_projection(int64_t l, ir::NodeId out);
  ir::NodeId ffn(int64_t l, ir::NodeId hn);
  // Indexer scores [T, S] of each query for S index keys [S, index_head], -inf where
  // `visible` [T, S] is false, and the kept keys: the top index_topk of the visible.
  ir::NodeId indexer_keep(ir::NodeId hn, ir::NodeId q_latent, int64_t l, ir::NodeId keys, ir::NodeId visible);

  // The whole sequence (deepseek4.cpp).
  ir::NodeId compress_sequence(ir::NodeId hn, const std::string& prefix, int64_t ratio, int64_t width);
  ir::NodeId blocks_visible(ir::NodeId block_ids, int64_t ratio);
  ir::NodeId sequence_attention(int64_t l, ir::NodeId hn, ir::NodeId q, ir::NodeId q_latent, ir::NodeId kv);

  // Over the cache (deepseek4_cached.cpp).
  ir::NodeId cache_input(const std::string& name, const CachePart& part);
  int64_t block_rows(const std::string& part) const { return parts_.at(part).rows(context()); }
  // The part's row of row `row` (i32, any shape; per token [T] or [T, k] when each token
  // is of another sequence) of the sequence's block: `row` itself when the parts hold
  // one sequence.
  ir::NodeId part_row(const std::string& part, ir::NodeId row);
  // The rows of the pass's sequence's block of `x` (part `part`, as read or written):
  // [block_rows, width], x itself when the parts hold one sequence; per token
  // [T, block_rows, width] with token_per_sequence().
  ir::NodeId sequence_rows(ir::NodeId x, const std::string& part);
  // Pooled, normalised and rotated rows [nc, width] of blocks `block` i32[nc], whose
  // slots' tokens `token` i32[nc, slots] have kv | gate rows `pooled_in` [nc, slots,
  // 2 overlap width] (a token before 0 pools nothing).
  ir::NodeId pool_slots(ir::NodeId pooled_in, ir::NodeId token, ir::NodeId block, const std::string& prefix,
                        int64_t ratio, int64_t width);
  struct NewBlocks {
    ir::NodeId rows;   // f32[candidates, width]: pooled, normalised, rotated
    ir::NodeId at;     // i32[candidates]: the compressed row each goes to
    ir::NodeId state;  // the pooling state with this pass's tokens written
  };
  NewBlocks pool_new_blocks(ir::NodeId hn, const std::string& prefix, int64_t ratio, int64_t width,
                            const std::string& state_part);
  ir::NodeId write_compressed(const std::string& part, const NewBlocks& blocks);
  ir::NodeId cached_attention(int64_t l, ir::NodeId hn, ir::NodeId q, ir::NodeId q_latent, ir::NodeId kv);
  // Layer l's compressed rows after the pass wrote the blocks it completes (f32 [rows, D],
  // per token [T, rows, D]), and which of them each query sees, bool [T, rows]: complete,
  // and for ratio 4 the indexer's top-k.
  struct CompressedKeys {
    ir::NodeId keys, keep;
  };
  CompressedKeys compressed_keys(int64_t l, ir::NodeId hn, ir::NodeId q_latent);

  // One token of each of T sequences (deepseek4_batched.cpp): the blocks the tokens
  // complete, and the attention of each token over its own sequence's rows.
  NewBlocks pool_token_blocks(ir::NodeId hn, const std::string& prefix, int64_t ratio, int64_t width,
                              const std::string& state_part);
  ir::NodeId token_attention(int64_t l, ir::NodeId hn, ir::NodeId q, ir::NodeId q_latent, ir::NodeId kv);

  ir::Builder& b_;
  const DeepSeekV4HParams& h_;
  const DeepSeekV4Weights& w_;
  const PassSpec pass_;
  const int64_t t_;
  ir::NodeId tokens_ = -1, positions_ = -1, hidden_ = -1;
  ir::NodeId sequence_ = -1;  // parts of several sequences: i32[T] each token's (token_per_sequence) or [1]
  std::map<std::string, ir::NodeId> params_;
  std::map<std::string, CachePart> parts_;          // the layout, by input name
  std::map<std::string, ir::NodeId> cache_inputs_;  // by part name
  std::map<std::string, ir::NodeId> updated_;       // by part name: the part after this pass
  std::vector<ir::NodeId> choices_;                 // per ratio-4 layer: i32[T, blocks]
};

}  // namespace moat::models
