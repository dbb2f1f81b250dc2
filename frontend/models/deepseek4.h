// DeepSeek-V4's forward graph over a whole sequence in one pass (positions 0..T-1, no
// cache): hyper-connections around every block; MQA with attention sinks over a
// sliding window of raw rows and, per the layer's compress ratio, pooled rows (ratio
// 4: each query's indexer top-k of them; 128: every one it can see); inverse RoPE on the
// output and the grouped output projection; sqrt-softplus MoE (hash-routed first layers)
// with clamped SwiGLU. As transformers' modeling_deepseek_v4 computes it; the cached
// passes keep the cache parts of deepseek4_hparams.h (frontend/models/deepseek4_cached.cpp).
//
// Weights are DeepSeek's released names ("layers.3.attn.wq_a.weight"; experts stacked
// by the loader into "layers.L.ffn.experts.{w1,w2,w3}" [E, ...], tid2eid as i32).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/model.h"
#include "frontend/models/deepseek4_hparams.h"
#include "ir/graph.h"
#include "ir/tensor.h"

namespace moat::models {

struct DeepSeekV4Weights {
  // An FP8 (f8_e4m3) weight "X.weight" has its block scales beside it, "X.weight.scale"
  // f32 [ceil(rows / fp8_block[0]), ceil(cols / fp8_block[1])] (UE8M0 powers of two in
  // DeepSeek's release); routed experts may be mxfp4.
  std::map<std::string, ir::HostTensor> tensors;
  std::vector<int64_t> fp8_block = {128, 128};
  std::vector<std::shared_ptr<const void>> keep_alive;  // the mapped files tensors borrow from
  std::vector<std::string> notes;  // tensors of the file left unused, and why (Model::load_notes)
};

// A Hugging Face folder's weights in DeepSeek's released layout (f32 / f16 / bf16; FP8
// E4M3 with UE8M0 block scales of `fp8_block` kept in FP8; MXFP4 routed experts kept as
// mxfp4, FP8 ones dequantised), or a llama.cpp deepseek4 GGUF's under the same names
// (frontend/models/deepseek4_weights.cpp); UserError naming a missing, unknown or
// unreadable tensor.
// `draft`: the first MTP layer ("mtp.0.*") too, as layer n_layer ("layers.<n_layer>.*");
// otherwise, and for further MTP layers, those tensors are skipped.
DeepSeekV4Weights load_deepseek4_hf_weights(const std::string& folder, const DeepSeekV4HParams& h,
                                            const std::vector<int64_t>& fp8_block = {128, 128}, bool draft = false);
DeepSeekV4Weights load_deepseek4_gguf_weights(const std::string& path, const DeepSeekV4HParams& h);
// The first MTP layer from llama.cpp's separate MTP GGUF (its converter's --mtp export,
// "mtp-*.gguf": the layer as blk.<n_layer>.*, nextn.eh_proj = [e_proj | h_proj] along
// the input, nextn.{enorm,hnorm,shared_head_norm}, the MTP's hc_head under the root
// names), added to `w` as layer n_layer ("layers.<n_layer>.*", e_proj and h_proj split
// apart); returns its compress ratio. UserError naming the file for one of another
// model (its layers, widths or vocabulary) or one without the layer.
int64_t load_deepseek4_gguf_mtp(const std::string& path, const DeepSeekV4HParams& h, DeepSeekV4Weights& w);
// Why llama.cpp's deepseek4 graph leaves tensor `t` of `file` unused (a note), if it is
// one its loader accepts and its graph leaves: nullopt for any other.
std::optional<std::string> unused_by_deepseek4(const gguf::File& file, const gguf::TensorInfo& t);
// DeepSeek's name of a layer tensor from llama.cpp's name after "blk.N." ("attn_q_a.weight"
// -> "attn.wq_a.weight"), nullopt for one that is not in a deepseek4 layer.
std::optional<std::string> deepseek4_layer_tensor_name(std::string_view gguf_suffix);

// Inputs "tokens" i32[T] (positions 0..T-1); output the logits f32[T, vocab], and with
// `indexer_choices` then, per ratio-4 layer in order, the blocks its indexer keeps for
// each query: i32[T, blocks], 1 where kept (what a test compares with the reference's).
ir::Graph deepseek4_sequence_graph(const DeepSeekV4HParams& h, const DeepSeekV4Weights& w, int64_t tokens,
                                   bool indexer_choices = false);

// The model interface's pass (frontend/model.h) of T new tokens: inputs "tokens",
// "positions" i32[T] (consecutive, P..P+T-1) and, with pass.cache_rows (the context) > 0,
// the parts of deepseek4_cache_layout(h, 0, n_layer) for that context; outputs the
// logits, then the parts updated (the ring's and the pooling state's rows of this pass's
// tokens, the compressed and indexer rows of the blocks they complete). Without a cache:
// a first pass (positions 0..T-1), as deepseek4_sequence_graph. A batched pass (parts of
// pass.sequences sequences, input "key_starts" = each token's sequence x the context, and
// with LogitRows::last "logit_rows") holds one sequence's tokens (pass.one_sequence) or
// one token of each of T sequences.
//
// pass.hidden: the hyper-connection streams after the last layer, before the head
// collapses them, f32[T, hc_mult * n_embd], after the parts (what the MTP layer takes).
// pass.draft: the MTP layer (DeepSeek's MTPBlock; weights "layers.<n_layer>.*", loaded
// from the release's "mtp.0.*"): inputs "tokens" (the token after each position),
// "hidden" f32[T, hc_mult * n_embd] (the model's streams at each position, or an earlier
// draft pass's) and the parts of deepseek4_cache_layout(h, n_layer, n_layer + 1):
//   x_k    = e_proj enorm(embed(token)) + h_proj hnorm(hidden_k)   for each stream k
//   X      = the V4 block of the MTP layer (its compress ratio: 0, the window only)
//   logits = head(norm_mtp(hc_head_mtp(X)))                        (the model's head)
// and its output streams X as the hidden output (the next draft step's input).
ir::Graph deepseek4_pass_graph(const DeepSeekV4HParams& h, const DeepSeekV4Weights& w, const PassSpec& pass);

}  // namespace moat::models
