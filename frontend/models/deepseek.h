// The DeepSeek-V2 / V2-Lite / V3 / R1 forward pass as a Tensor IR graph (llama.cpp's
// deepseek2 and DeepSeek's inference/model.py are the references for the maths).
//
// One graph evaluates T new tokens at positions P..P+T-1 (static shapes: a graph is
// built per shape, as plans are specialised per shape anyway):
//   inputs   "tokens" i32[T], "positions" i32[T], and when P > 0, per layer L
//            "cache.L" f32[P, kv_lora + rope]: the latent KV cache rows of the P earlier
//            tokens
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

ir::Graph build_deepseek_graph(const DeepSeekModel& model, int64_t tokens, int64_t past, AttentionForm form);

}  // namespace moat::models
