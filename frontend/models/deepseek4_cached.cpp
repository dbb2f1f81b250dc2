// DeepSeek-V4's attention for T new tokens at positions P..P+T-1 over the cache
// (deepseek4_cache_layout): the pieces of DeepSeekV4PassBuilder that only a cached pass
// has. P is known at run time only: every row index below is graph arithmetic on the
// "positions" input (i32, non-negative operands for every division).
//
// Each query attends, with one bias row of 0 / -inf, to
//   the ring "window.L" as it was before this pass (of R = ring_rows() rows, row r
//     holds the token at position r + R floor((P - 1 - r) / R), if that is >= 0), those
//     within the window (a row a cut-back pass wrote past P is taken for the token R
//     before, outside the window: the spare rows keep rewinds exact);
//   this pass's own rows, causal and within the window;
//   the compressed rows "compressed.L" after this pass wrote the blocks it completes
//     (row j: block j, visible once its last token (j + 1) ratio - 1 is at or before the
//     query), ratio 4: the indexer's top-k of them ("index.L" scored as in a whole
//     sequence).
// A block completing in this pass pools tokens of this pass and of the pooling state
// "state.L" (the last overlap * ratio tokens' projections and kRewindSlack more, token p
// in row p % rows).
//
// Rows are those of the pass's sequence: where the parts hold several sequences' (a
// batched session), its block of each, gathered for reading and written at the block's
// offset (part_row, sequence_rows).
//
// Reads before writes: the ring and the state are read at their old values, so their
// write_rows nodes are built after every node that reads the old rows (the JIT stores
// in place when every other reader of a cache input runs before the write:
// jit/lower.cpp's writes_in_place). The compressed and index parts are written first
// and read only as written.
#include <algorithm>
#include <cmath>

#include "frontend/models/deepseek4_graph.h"
#include "ir/shape.h"
#include "support/strings.h"

namespace moat::models {

using ir::Dim;
using ir::DType;
using ir::NodeId;
using ir::Op;

NodeId DeepSeekV4PassBuilder::cache_input(const std::string& name, const CachePart& part) {
  const int64_t rows = part.rows(context()) * pass_.sequences;
  return b_.input(name, {part.dtype(pass_.cache_dtype), {Dim::of(rows), Dim::of(part.width)}});
}

NodeId DeepSeekV4PassBuilder::part_row(const std::string& part, NodeId row) {
  if (sequence_ < 0) return row;
  NodeId offset = b_.mul(sequence_, i32(static_cast<double>(block_rows(part))));
  if (b_.type(row).shape.size() == 2) offset = b_.reshape(offset, {b_.type(offset).shape[0], Dim::of(1)});
  return b_.add(row, offset);
}

NodeId DeepSeekV4PassBuilder::sequence_rows(NodeId x, const std::string& part) {
  if (sequence_ < 0) return x;
  NodeId rows = b_.iota(DType::i32, Dim::of(block_rows(part)));
  if (token_per_sequence()) rows = b_.broadcast(rows, {Dim::of(t_), Dim::of(block_rows(part))});
  return b_.gather(x, part_row(part, rows));
}

NodeId DeepSeekV4PassBuilder::pool_slots(NodeId pooled_in, NodeId token, NodeId block, const std::string& prefix,
                                         int64_t ratio, int64_t width) {
  const int64_t overlap = ratio == 4 ? 2 : 1, slots = overlap * ratio;
  const Dim nc = b_.type(block).shape[0], ns = Dim::of(slots), w = Dim::of(width);
  NodeId kv = b_.slice(pooled_in, 2, 0, width), scores = b_.slice(pooled_in, 2, overlap * width, (overlap + 1) * width);
  if (overlap == 2) {
    NodeId previous = b_.reshape(b_.binary(Op::cmp_lt, b_.iota(DType::i32, ns), i32(static_cast<double>(ratio))),
                                 {Dim::of(1), ns, Dim::of(1)});
    kv = b_.select(previous, kv, b_.slice(pooled_in, 2, width, 2 * width));
    scores = b_.select(previous, scores, b_.slice(pooled_in, 2, 3 * width, 4 * width));
  }
  NodeId exists = b_.reshape(b_.binary(Op::cmp_le, i32(0), token), {nc, ns, Dim::of(1)});  // before token 0: nothing
  kv = b_.select(exists, kv, f32(0));
  scores = b_.select(exists, scores, f32(-kInf));
  NodeId weights = b_.permute(b_.softmax(b_.permute(scores, {0, 2, 1})), {0, 2, 1});  // over the slots
  NodeId pooled = b_.reshape(b_.reduce(Op::reduce_sum, b_.mul(kv, weights), 1), {nc, w});
  pooled = b_.reshape(norm(pooled, prefix + "norm.weight"), {nc, Dim::of(1), w});
  pooled = rope_tail(pooled, b_.mul(block, i32(static_cast<double>(ratio))), true);
  return b_.reshape(pooled, {nc, w});
}

// The blocks that may complete in this pass: candidates j = P / ratio + c for c <
// ceil(T / ratio); a candidate whose last token is past P + T - 1 is not complete, and
// its row (clamped to the part's last, spare row) is one no query sees before the block
// completes and is written again.
DeepSeekV4PassBuilder::NewBlocks DeepSeekV4PassBuilder::pool_new_blocks(NodeId hn, const std::string& prefix,
                                                                        int64_t ratio, int64_t width,
                                                                        const std::string& state_part) {
  const int64_t overlap = ratio == 4 ? 2 : 1, slots = overlap * ratio;
  const int64_t held = DeepSeekV4HParams::state_rows(ratio);
  const int64_t candidates = (t_ + ratio - 1) / ratio;
  const Dim nc = Dim::of(candidates), ns = Dim::of(slots);
  NodeId state_in = cache_inputs_.at(state_part);
  NodeId state = sequence_rows(state_in, state_part);  // f32[held, 2 overlap width]: projections | gates
  // This pass's tokens as the state holds them: [kv | gate + ape of the token's slot].
  NodeId gate = b_.add(linear(hn, prefix + "wgate.weight"), b_.gather(weight(prefix + "ape"), mod_by(positions_, ratio)));
  NodeId fresh = b_.concat({linear(hn, prefix + "wkv.weight"), gate}, 1);  // [T, 2 overlap width]
  NodeId recent = b_.concat({state, fresh}, 0);                             // [held + T, ...]

  NodeId start = b_.slice(positions_, 0, 0, 1);  // P, [1]
  NodeId block = b_.add(div_by(start, ratio), b_.iota(DType::i32, nc));  // [nc]
  // Slot s of block j pools the token at (j - overlap + 1) ratio + s: ratio 4's first
  // four slots are the previous block's tokens (their first halves), the last four this
  // block's (second halves); ratio 128's slots are this block's tokens.
  NodeId first_token = b_.mul(b_.sub(block, i32(static_cast<double>(overlap - 1))), i32(static_cast<double>(ratio)));
  NodeId token = b_.add(b_.reshape(first_token, {nc, Dim::of(1)}), b_.iota(DType::i32, ns));  // [nc, slots]
  NodeId in_pass = b_.binary(Op::cmp_le, start, token);
  NodeId row = b_.select(in_pass, b_.add(b_.sub(token, start), i32(static_cast<double>(held))),
                         mod_by(b_.binary(Op::max, token, i32(0)), held));
  row = b_.binary(Op::min, row, i32(static_cast<double>(held + t_ - 1)));  // candidates that do not complete
  NodeId pooled = pool_slots(b_.gather(recent, row), token, block, prefix, ratio, width);

  // The state keeps this pass's last `held` tokens: built after the pooling read it.
  const int64_t kept = std::min(t_, held);
  NodeId state_rows = b_.slice(fresh, 0, t_ - kept, t_);
  NodeId state_at = part_row(state_part, mod_by(b_.slice(positions_, 0, t_ - kept, t_), held));
  return {pooled, block, b_.write_rows(state_in, state_rows, state_at)};
}

NodeId DeepSeekV4PassBuilder::write_compressed(const std::string& part, const NewBlocks& blocks) {
  NodeId cache = cache_inputs_.at(part);
  NodeId at = part_row(part, b_.binary(Op::min, blocks.at, i32(static_cast<double>(block_rows(part) - 1))));
  NodeId written = b_.write_rows(cache, b_.cast(blocks.rows, b_.type(cache).dtype), at);
  updated_[part] = written;
  return sequence_rows(written, part);
}

DeepSeekV4PassBuilder::CompressedKeys DeepSeekV4PassBuilder::compressed_keys(int64_t l, NodeId hn, NodeId q_latent) {
  const std::string p = cat("layers.", l, ".attn.");
  const int64_t ratio = h_.compress_ratio[static_cast<size_t>(l)];
  auto pool = [&](const std::string& prefix, int64_t r, int64_t width, const std::string& state_part) {
    return token_per_sequence() ? pool_token_blocks(hn, prefix, r, width, state_part)
                                : pool_new_blocks(hn, prefix, r, width, state_part);
  };
  const NewBlocks blocks = pool(p + "compressor.", ratio, h_.head_dim, cat("state.", l));
  updated_[cat("state.", l)] = blocks.state;
  NodeId compressed = write_compressed(cat("compressed.", l), blocks);
  NodeId visible = blocks_visible(b_.iota(DType::i32, Dim::of(block_rows(cat("compressed.", l)))), ratio);  // [T, rows]
  NodeId keep = visible;
  if (ratio == 4) {
    const NewBlocks index_blocks = pool(p + "indexer.compressor.", 4, h_.index_head, cat("index_state.", l));
    updated_[cat("index_state.", l)] = index_blocks.state;
    keep = indexer_keep(hn, q_latent, l, to_f32(write_compressed(cat("index.", l), index_blocks)), visible);
  }
  return {to_f32(compressed), keep};
}

NodeId DeepSeekV4PassBuilder::cached_attention(int64_t l, NodeId hn, NodeId q, NodeId q_latent, NodeId kv) {
  const std::string p = cat("layers.", l, ".attn.");
  const int64_t ratio = h_.compress_ratio[static_cast<size_t>(l)], d = h_.head_dim, window = h_.window;
  const int64_t ring_rows = h_.ring_rows();
  const Dim t = Dim::of(t_), one = Dim::of(1);
  const std::string ring_part = cat("window.", l);
  NodeId ring_in = cache_inputs_.at(ring_part);
  NodeId ring = sequence_rows(ring_in, ring_part);  // [ring_rows, D]
  NodeId start = b_.slice(positions_, 0, 0, 1);
  NodeId query = b_.reshape(positions_, {t, one});
  NodeId oldest = b_.sub(query, i32(static_cast<double>(window)));  // a key must be after this
  NodeId ring_row = b_.iota(DType::i32, Dim::of(ring_rows));
  NodeId behind = b_.add(b_.sub(b_.sub(start, i32(1)), ring_row), i32(static_cast<double>(ring_rows)));  // >= 0
  NodeId ring_token =
      b_.add(ring_row, b_.mul(b_.sub(div_by(behind, ring_rows), i32(1)), i32(static_cast<double>(ring_rows))));
  NodeId ring_seen = both(b_.binary(Op::cmp_le, i32(0), ring_token), b_.binary(Op::cmp_lt, oldest, ring_token));
  ring_seen = b_.broadcast(ring_seen, {t, Dim::of(ring_rows)});
  NodeId own_seen = both(b_.binary(Op::cmp_le, positions_, query), b_.binary(Op::cmp_lt, oldest, positions_));  // [T, T]

  std::vector<NodeId> keys{to_f32(b_.reshape(ring, {Dim::of(ring_rows), one, Dim::of(d)})), kv};
  std::vector<NodeId> seen{ring_seen, own_seen};
  if (ratio > 0) {
    const CompressedKeys compressed = compressed_keys(l, hn, q_latent);  // [rows, D]
    const int64_t rows = b_.type(compressed.keys).shape[0].value;
    keys.push_back(b_.reshape(compressed.keys, {Dim::of(rows), one, Dim::of(d)}));
    seen.push_back(compressed.keep);
  }
  NodeId bias = b_.select(b_.concat(seen, 1), f32(0), f32(-kInf));
  NodeId all_keys = b_.concat(keys, 0);
  NodeId out = b_.attention(q, all_keys, all_keys, positions_, 1.0 / std::sqrt(static_cast<double>(d)), false,
                            std::nullopt, bias, weight(p + "attn_sink"));  // [T, H, D]

  // The ring keeps this pass's last `ring_rows` tokens: built after the attention read it.
  const int64_t kept = std::min(t_, ring_rows);
  NodeId fresh_rows =
      b_.cast(b_.reshape(b_.slice(kv, 0, t_ - kept, t_), {Dim::of(kept), Dim::of(d)}), b_.type(ring).dtype);
  NodeId fresh_at = part_row(ring_part, mod_by(b_.slice(positions_, 0, t_ - kept, t_), ring_rows));
  updated_[ring_part] = b_.write_rows(ring_in, fresh_rows, fresh_at);
  return out;
}

}  // namespace moat::models
