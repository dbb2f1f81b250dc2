// DeepSeek-V4's attention for one new token of each of T sequences (a decode step of a
// batched session): the pieces of DeepSeekV4PassBuilder for PassSpec::batched passes
// that are not one sequence's. Token t is at position p_t of sequence s_t, and each part
// holds sequence s's rows as its block s (deepseek4_graph.h); everything per token.
//
// Each token attends, as deepseek4_cached.cpp's pass of one token would, to
//   its sequence's ring "window.L" as it was before this pass (row r holds the token at
//     r + R floor((p_t - 1 - r) / R) when that is >= 0, seen within the window),
//   itself,
//   its sequence's compressed rows after this pass wrote the block p_t completes (block
//     j seen once (j + 1) ratio - 1 <= p_t; ratio 4: the indexer's top-k of them).
// The keys are laid out per token, [ring | compressed | itself] (W rows), one block of
// W rows per token; the attention reads token t's block only (key starts t W, bound
// t W + W - 1) and a bias of 0 / -inf masks what it does not see.
//
// A token pools the block it is in (p_t / ratio): complete when p_t is its last token,
// else a row no query sees before the block completes and is pooled again. Its slots'
// tokens before p_t come from the sequence's pooling state, the token itself from this
// pass. Every row a pass writes is a distinct one: one token per sequence.
#include <cmath>

#include "frontend/models/deepseek4_graph.h"
#include "ir/shape.h"
#include "support/strings.h"

namespace moat::models {

using ir::Dim;
using ir::DType;
using ir::NodeId;
using ir::Op;

DeepSeekV4PassBuilder::NewBlocks DeepSeekV4PassBuilder::pool_token_blocks(NodeId hn, const std::string& prefix,
                                                                          int64_t ratio, int64_t width,
                                                                          const std::string& state_part) {
  const int64_t overlap = ratio == 4 ? 2 : 1, slots = overlap * ratio;
  const int64_t held = DeepSeekV4HParams::state_rows(ratio);
  const Dim t = Dim::of(t_), ns = Dim::of(slots), one = Dim::of(1), row_width = Dim::of(2 * overlap * width);
  NodeId state = cache_inputs_.at(state_part);  // f32[sequences x held, 2 overlap width]: projections | gates
  NodeId gate = b_.add(linear(hn, prefix + "wgate.weight"), b_.gather(weight(prefix + "ape"), mod_by(positions_, ratio)));
  NodeId fresh = b_.concat({linear(hn, prefix + "wkv.weight"), gate}, 1);  // [T, 2 overlap width]

  NodeId block = div_by(positions_, ratio);  // [T]
  NodeId first_token = b_.mul(b_.sub(block, i32(static_cast<double>(overlap - 1))), i32(static_cast<double>(ratio)));
  NodeId token = b_.add(b_.reshape(first_token, {t, one}), b_.iota(DType::i32, ns));  // [T, slots]
  // Slots before the token: the state's rows; the token itself: this pass's row. Slots
  // after it (a block it does not complete) read whatever the state holds.
  NodeId from_state = b_.gather(state, part_row(state_part, mod_by(b_.binary(Op::max, token, i32(0)), held)));
  NodeId itself = b_.reshape(b_.binary(Op::cmp_eq, token, b_.reshape(positions_, {t, one})), {t, ns, one});
  NodeId pooled_in = b_.select(itself, b_.broadcast(b_.reshape(fresh, {t, one, row_width}), {t, ns, row_width}), from_state);
  NodeId pooled = pool_slots(pooled_in, token, block, prefix, ratio, width);

  // The state keeps the token: built after the pooling read the state.
  NodeId state_at = part_row(state_part, mod_by(positions_, held));
  return {pooled, block, b_.write_rows(state, fresh, state_at)};
}

NodeId DeepSeekV4PassBuilder::token_attention(int64_t l, NodeId hn, NodeId q, NodeId q_latent, NodeId kv) {
  const std::string p = cat("layers.", l, ".attn.");
  const int64_t ratio = h_.compress_ratio[static_cast<size_t>(l)], d = h_.head_dim, window = h_.window;
  const int64_t ring_rows = h_.ring_rows();
  const Dim t = Dim::of(t_), one = Dim::of(1), dd = Dim::of(d);
  const std::string ring_part = cat("window.", l);
  NodeId ring_in = cache_inputs_.at(ring_part);
  NodeId ring = sequence_rows(ring_in, ring_part);  // [T, ring_rows, D]
  NodeId query = b_.reshape(positions_, {t, one});
  NodeId ring_row = b_.iota(DType::i32, Dim::of(ring_rows));
  NodeId behind = b_.add(b_.sub(b_.sub(query, i32(1)), ring_row), i32(static_cast<double>(ring_rows)));  // [T, R] >= 0
  NodeId ring_token =
      b_.add(ring_row, b_.mul(b_.sub(div_by(behind, ring_rows), i32(1)), i32(static_cast<double>(ring_rows))));
  NodeId ring_seen = both(b_.binary(Op::cmp_le, i32(0), ring_token),
                          b_.binary(Op::cmp_lt, b_.sub(query, i32(static_cast<double>(window))), ring_token));

  std::vector<NodeId> keys{to_f32(ring)};
  std::vector<NodeId> seen{ring_seen};
  if (ratio > 0) {
    const CompressedKeys compressed = compressed_keys(l, hn, q_latent);  // [T, rows, D]
    keys.push_back(compressed.keys);
    seen.push_back(compressed.keep);
  }
  keys.push_back(kv);  // [T, 1, D]: the token itself
  seen.push_back(b_.broadcast(b_.scalar(DType::boolean, 1), {t, one}));
  NodeId own_keys = b_.concat(keys, 1);  // [T, W, D]
  const int64_t w = b_.type(own_keys).shape[1].value;
  NodeId all_keys = b_.reshape(own_keys, {Dim::of(t_ * w), one, dd});
  // Token t's bias over every token's block: its own block's seen rows 0, the rest -inf.
  NodeId own_bias = b_.reshape(b_.select(b_.concat(seen, 1), f32(0), f32(-kInf)), {t, one, Dim::of(w)});
  NodeId same = b_.reshape(b_.binary(Op::cmp_eq, b_.reshape(b_.iota(DType::i32, t), {t, one}), b_.iota(DType::i32, t)),
                           {t, t, one});
  NodeId bias = b_.reshape(b_.select(same, b_.broadcast(own_bias, {t, t, Dim::of(w)}), f32(-kInf)), {t, Dim::of(t_ * w)});
  NodeId key_start = b_.mul(b_.iota(DType::i32, t), i32(static_cast<double>(w)));
  NodeId key_end = b_.add(key_start, i32(static_cast<double>(w - 1)));
  NodeId out = b_.attention(q, all_keys, all_keys, key_end, 1.0 / std::sqrt(static_cast<double>(d)), true, key_start,
                            bias, weight(p + "attn_sink"));  // [T, H, D]

  // The ring keeps the token: built after the attention read it.
  NodeId fresh_rows = b_.cast(b_.reshape(kv, {t, dd}), b_.type(ring_in).dtype);
  updated_[ring_part] = b_.write_rows(ring_in, fresh_rows, part_row(ring_part, mod_by(positions_, ring_rows)));
  return out;
}

}  // namespace moat::models
