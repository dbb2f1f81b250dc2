// The DeepSeek-V2 / V2-Lite / V3 / R1 forward pass as a Tensor IR graph (llama.cpp's
// deepseek2 and DeepSeek's inference/model.py are the references for the maths).
//
// One graph evaluates T new tokens at positions P..P+T-1 over a cache window of C rows
// (static T and C; P is a run-time input, so one graph serves every P < C - T + 1 and
// decode compiles once per window size, not once per token):
//   inputs   "tokens" i32[T], "positions" i32[T], and when C > 0, "past" i32[1] = P and
//            per layer L "cache.L" f32[C, kv_lora + rope]: the latent rows of the P
//            earlier tokens, then anything (rows >= P are replaced by the new tokens' and
//            masked beyond them: key j is seen by a query at position p only if j <= p)
//   params   every weight, by its GGUF name (deepseek_weights.h)
//   outputs  logits f32[T, n_vocab], then per layer the latent rows of the new tokens
//            f32[T, kv_lora + rope] (the caller appends them to its cache)
// Attention: `expanded` (keys and values of every head made from the latents; prefill)
// or `absorbed` (queries projected into the latent space, attention over the latents
// with one shared key head; decode). Both compute the same function.
#pragma once

#include "frontend/models/deepseek_weights.h"
#include "ir/graph.h"

namespace moat::models {

enum class AttentionForm { expanded, absorbed };

// Which positions get logits: every one (scoring, --logits-out) or only the last (what
// generation needs: the output matrix, often the largest, is then read for one row).
enum class LogitRows { all, last };

// The form of a first pass over an empty cache: expanded (fewer operations), unless the
// model's attn_k_b is block-quantised: the expanded form multiplies by it untransposed,
// which quantised matmuls do not do (blocks run along its rows).
AttentionForm first_pass_form(const DeepSeekModel& model);

// `window` = C: 0 for a first pass without a cache, else >= P + T.
// Outputs: the logits [tokens or 1, vocab], then each layer's new latent rows [tokens, kv_lora + rope].
ir::Graph build_deepseek_graph(const DeepSeekModel& model, int64_t tokens, int64_t window, AttentionForm form,
                               LogitRows logit_rows = LogitRows::all);

}  // namespace moat::models
