// The weights of a DeepSeek model under llama.cpp's GGUF tensor names ("blk.3.attn_q_a.weight"),
// whatever file they came from: the graph builder reads this one naming.
//
// GGUF tensors and Hugging Face tensors whose layout already matches are borrowed from
// the file mappings (never copied). Where the layouts differ the tensor is made once at
// load, in f32: the unsplit kv_b projection (HF `kv_b_proj`, legacy GGUF `attn_kv_b`)
// becomes `attn_k_b` [H, kv_lora, nope] and `attn_v_b` [H, v, kv_lora] as llama.cpp's
// converter splits it; HF's per-expert matrices are stacked into `ffn_*_exps`
// [E, rows, cols] (in their own dtype, or f32 for FP8 experts, since the moe op takes
// no block scales). An FP8 weight W keeps its blocks and gets "W.scale" (f32 block
// scales, HF `weight_scale_inv`, block size in `fp8_block`).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frontend/model.h"
#include "frontend/models/deepseek_hparams.h"
#include "ir/tensor.h"

namespace moat::models {

// A loaded model; the Model interface's methods are in deepseek.cpp (graphs, cache) and
// deepseek_size.cpp (sizes).
struct DeepSeekModel : Model {
  std::string path;
  std::string format;  // "gguf" | "safetensors"
  DeepSeekHParams hparams;
  std::map<std::string, ir::HostTensor> weights;
  std::vector<int64_t> fp8_block = {128, 128};   // rows, cols of an FP8 scale block
  int32_t eos = -1;                              // end-of-sequence token id; -1 when unknown
  std::vector<std::string> notes;                // what loading skipped or converted
  std::vector<std::shared_ptr<const void>> keep_alive;  // the file mappings weights borrow

  bool has(const std::string& name) const { return weights.count(name) != 0; }
  // UserError naming the model file and the tensor when absent.
  const ir::HostTensor& weight(const std::string& name) const;

  int64_t vocab_size() const override { return hparams.n_vocab; }
  int64_t training_context() const override { return hparams.n_ctx_train; }
  int32_t eos_token() const override { return eos; }
  const std::map<std::string, ir::HostTensor>& tensors() const override { return weights; }
  std::vector<CachePart> cache_layout() const override;  // per layer: "cache.L" of kv_lora + rope
  ir::Graph pass_graph(const PassSpec& pass) const override;
  ModelSize size() const override;
  // The MTP layer (layer n_layer, llama.cpp's blk.N.nextn.* with its attention and MoE
  // tensors) as the draft module, and its own latent cache "cache.N".
  bool has_draft() const override { return hparams.n_mtp > 0; }
  std::vector<CachePart> draft_cache_layout() const override;
  int64_t hidden_size() const override { return hparams.n_embd; }
  int64_t layers() const override { return hparams.n_layer; }
  std::string why_no_draft() const override;
  std::vector<std::string> load_notes() const override { return notes; }
  int64_t mtp_in_file = 0;  // MTP layers the file has (loaded or not)
};

// A GGUF file (llama.cpp's deepseek2 architecture) or a Hugging Face folder
// (config.json + safetensors, sharded or not). UserError naming the file for anything
// missing, malformed or of another architecture.
DeepSeekModel load_deepseek(const std::string& path, const LoadOptions& options = {});

// GGUF tensor name of layer `layer`: blk_name(3, "attn_q_a") = "blk.3.attn_q_a.weight".
std::string blk_name(int64_t layer, const char* tensor);

}  // namespace moat::models
