// DeepSeek-V4 (V4-Flash, V4-Pro) as a model of the runtime (frontend/model.h): its
// weights and hyperparameters, its passes (deepseek4.h) and its cache of several parts
// per layer (deepseek4_cache_layout), from a llama.cpp `deepseek4` GGUF or a Hugging
// Face folder of model_type "deepseek_v4".
#pragma once

#include <string>
#include <vector>

#include "frontend/model.h"
#include "frontend/models/deepseek4.h"
#include "frontend/models/deepseek4_hparams.h"

namespace moat::models {

struct DeepSeekV4Model : Model {
  std::string path;
  std::string format;  // "gguf" | "safetensors"
  DeepSeekV4HParams hparams;
  DeepSeekV4Weights weights;
  int32_t eos = -1;  // end-of-sequence token id; -1 when unknown
  bool draft_loaded = false;  // the first MTP layer, as layer n_layer (LoadOptions::draft)

  int64_t vocab_size() const override { return hparams.n_vocab; }
  int64_t training_context() const override { return hparams.n_ctx_train; }
  int32_t eos_token() const override { return eos; }
  const std::map<std::string, ir::HostTensor>& tensors() const override { return weights.tensors; }
  std::vector<CachePart> cache_layout() const override { return deepseek4_cache_layout(hparams, 0, hparams.n_layer); }
  ir::Graph pass_graph(const PassSpec& pass) const override { return deepseek4_pass_graph(hparams, weights, pass); }
  ModelSize size() const override;
  // What the MTP layer takes: the hyper-connection streams, hc_mult * n_embd per token.
  int64_t hidden_size() const override { return hparams.hc_mult * hparams.n_embd; }
  int64_t layers() const override { return hparams.n_layer; }
  bool has_draft() const override { return draft_loaded; }
  std::vector<CachePart> draft_cache_layout() const override {
    if (!draft_loaded) return {};
    return deepseek4_cache_layout(hparams, hparams.n_layer, hparams.n_layer + 1);
  }
  std::string why_no_draft() const override;
  // The window ring and the pooling state are overwritten as tokens arrive; their spare
  // rows keep a cut back by up to kRewindSlack tokens exact (deepseek4_hparams.h).
  int64_t cache_rewind_limit() const override { return DeepSeekV4HParams::kRewindSlack; }
  // A batched pass holds one sequence's tokens or one token of each of several (deepseek4_graph.h).
  int64_t batch_tokens_per_sequence() const override { return 1; }
  std::vector<std::string> load_notes() const override { return weights.notes; }
};

// Whether `path` (a GGUF file, a folder or its config.json) holds a DeepSeek-V4 model:
// architecture "deepseek4" or model_type "deepseek_v4". False for what it cannot read
// (the family's own loader then says what is wrong).
bool is_deepseek4(const std::string& path);

// UserError naming the file for anything missing or malformed.
DeepSeekV4Model load_deepseek4(const std::string& path, const LoadOptions& options = {});

}  // namespace moat::models
