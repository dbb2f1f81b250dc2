// The DeepSeek-V2 / V2-Lite / V3 / R1 forward pass as a Tensor IR graph (llama.cpp's
// deepseek2 and DeepSeek's inference/model.py are the references for the maths).
//
// One graph evaluates T new tokens at run-time positions over a latent cache of R rows
// (static T and R; how many rows are filled is not part of the graph, so one graph
// serves every cache length: a query at position p sees keys 0..p):
//   inputs   "tokens" i32[T], "positions" i32[T], and when R > 0 per layer L
//            "cache.L" [R, kv_lora + rope] (f32, f16 or bf16): row j holds the latent of
//            the token at position j
//   params   every weight, by its GGUF name (deepseek_weights.h)
//   outputs  logits f32[T or 1, n_vocab], then (R > 0) per layer the cache with the new
//            tokens' rows written at their positions (write_rows: the JIT updates the
//            cache buffer in place, and a device-resident cache is never copied)
// A draft pass (the MTP layer N = n_layer, DeepSeek-V3 section 2.2, as vLLM and llama.cpp
// run it): inputs "tokens" (the token after each position), "positions", "hidden"
// f32[T, D] (the model's final normalised hidden state at each position) and "cache.N";
//   x = eh_proj([enorm(embed(token)); hnorm(hidden)]), one MLA + MoE block,
//   h = shared_head_norm(x), logits = head(h)
// with the model's embedding and output matrix unless the layer has its own. Outputs the
// logits, the cache, and with `hidden` h (the hidden state of a further draft step).
// Attention: `expanded` (keys and values of every head made from the latents of the new
// tokens only: a first pass, positions 0..T-1) or `absorbed` (queries projected into the
// latent space, attention over the whole cache with one shared key head; decode and
// later chunks). Both compute the same function.
#pragma once

#include "frontend/models/deepseek_weights.h"
#include "ir/graph.h"

namespace moat::models {

enum class AttentionForm { expanded, absorbed };

// The form of a first pass over an empty cache: expanded (fewer operations), unless the
// model's attn_k_b is block-quantised: the expanded form multiplies by it untransposed,
// which quantised matmuls do not do (blocks run along its rows).
AttentionForm first_pass_form(const DeepSeekModel& model);

// The cache a pass reads and writes: rows (0: no cache, the absorbed form attends to the
// new tokens only) and the element type of its rows.
struct PassShape {
  int64_t cache_rows = 0;
  ir::DType cache_dtype = ir::DType::f32;
  bool batched = false;  // several sequences (PassSpec::batched)
  int64_t outputs = 1;   // batched with LogitRows::last: rows of logits
  bool hidden = false;   // also output the final normalised hidden states [T, D] (PassSpec::hidden)
  bool draft = false;    // the MTP layer's pass (PassSpec::draft)
};

// The name of layer `layer`'s cache input ("cache.3"), and of its sparse-attention
// indexer keys ("index.3", V3.2).
std::string cache_input_name(int64_t layer);
std::string index_cache_input_name(int64_t layer);
// The cache parts of layers first..end-1 (an MTP layer's too): per layer the latent
// (kv_lora + rope per token) and, with sparse attention, the indexer's keys.
std::vector<CachePart> deepseek_cache_layout(const DeepSeekHParams& h, int64_t first, int64_t end);

ir::Graph build_deepseek_graph(const DeepSeekModel& model, int64_t tokens, const PassShape& pass, AttentionForm form,
                               LogitRows logit_rows = LogitRows::all);

}  // namespace moat::models
