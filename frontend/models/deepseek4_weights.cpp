// DeepSeek-V4's weights under DeepSeek's released names (frontend/models/deepseek4.h),
// from a Hugging Face folder (those names, experts one tensor each) or a llama.cpp
// deepseek4 GGUF (its names, experts stacked), so that the graph never knows which.
#include <cstdio>

#include "frontend/gguf.h"
#include "frontend/models/deepseek4.h"
#include "frontend/safetensors.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::models {

using ir::DType;

namespace {

// Per-expert matrices "prefix.{e}.name.weight" stacked into one [E, rows, cols] f32 tensor.
ir::HostTensor stack_experts(const safetensors::Model& st, const std::string& prefix, const std::string& name, int64_t experts,
                             const std::string& folder) {
  std::vector<float> values;
  std::vector<int64_t> shape;
  for (int64_t e = 0; e < experts; ++e) {
    const std::string full = cat(prefix, e, ".", name, ".weight");
    const safetensors::TensorInfo* t = st.find(full);
    if (!t) user_error(folder, ": no tensor ", full, " (is this a complete DeepSeek-V4 checkpoint?)");
    const std::optional<DType> dtype = safetensors::to_ir_dtype(t->dtype);
    if (!dtype) user_error(folder, ": tensor ", full, " has dtype ", safetensors::dtype_name(t->dtype), ", which moatless does not read here");
    const std::vector<float> one = ir::HostTensor::borrowed(*dtype, t->shape, t->data).to_f32();
    values.insert(values.end(), one.begin(), one.end());
    shape = t->shape;
  }
  shape.insert(shape.begin(), experts);
  return ir::HostTensor::from_f32(shape, values);
}

// llama.cpp's deepseek4 tensor names (llama-arch.cpp) -> DeepSeek's: per layer "blk.N."
// + the first -> "layers.N." + the second; the globals as they are.
struct NamePair {
  const char* gguf;
  const char* deepseek;
};
constexpr NamePair kGlobals[] = {
    {"token_embd.weight", "embed.weight"},     {"output.weight", "head.weight"},
    {"output_norm.weight", "norm.weight"},     {"output_hc_fn.weight", "hc_head_fn"},
    {"output_hc_base.weight", "hc_head_base"}, {"output_hc_scale.weight", "hc_head_scale"},
};
constexpr NamePair kLayer[] = {
    {"attn_norm.weight", "attn_norm.weight"},
    {"ffn_norm.weight", "ffn_norm.weight"},
    {"attn_sinks.weight", "attn.attn_sink"},
    {"attn_q_a.weight", "attn.wq_a.weight"},
    {"attn_q_a_norm.weight", "attn.q_norm.weight"},
    {"attn_q_b.weight", "attn.wq_b.weight"},
    {"attn_kv.weight", "attn.wkv.weight"},
    {"attn_kv_a_norm.weight", "attn.kv_norm.weight"},
    {"attn_output_a.weight", "attn.wo_a.weight"},
    {"attn_output_b.weight", "attn.wo_b.weight"},
    {"hc_attn_fn.weight", "hc_attn_fn"},
    {"hc_attn_base.weight", "hc_attn_base"},
    {"hc_attn_scale.weight", "hc_attn_scale"},
    {"hc_ffn_fn.weight", "hc_ffn_fn"},
    {"hc_ffn_base.weight", "hc_ffn_base"},
    {"hc_ffn_scale.weight", "hc_ffn_scale"},
    {"attn_compressor_kv.weight", "attn.compressor.wkv.weight"},
    {"attn_compressor_gate.weight", "attn.compressor.wgate.weight"},
    {"attn_compressor_ape.weight", "attn.compressor.ape"},
    {"attn_compressor_norm.weight", "attn.compressor.norm.weight"},
    {"indexer.proj.weight", "attn.indexer.weights_proj.weight"},
    {"indexer.attn_q_b.weight", "attn.indexer.wq_b.weight"},
    {"indexer_compressor_kv.weight", "attn.indexer.compressor.wkv.weight"},
    {"indexer_compressor_gate.weight", "attn.indexer.compressor.wgate.weight"},
    {"indexer_compressor_ape.weight", "attn.indexer.compressor.ape"},
    {"indexer_compressor_norm.weight", "attn.indexer.compressor.norm.weight"},
    {"ffn_gate_inp.weight", "ffn.gate.weight"},
    {"ffn_gate_tid2eid.weight", "ffn.gate.tid2eid"},
    {"exp_probs_b.bias", "ffn.gate.bias"},
    {"ffn_gate_exps.weight", "ffn.experts.w1"},
    {"ffn_up_exps.weight", "ffn.experts.w3"},
    {"ffn_down_exps.weight", "ffn.experts.w2"},
    {"ffn_gate_shexp.weight", "ffn.shared_experts.w1.weight"},
    {"ffn_up_shexp.weight", "ffn.shared_experts.w3.weight"},
    {"ffn_down_shexp.weight", "ffn.shared_experts.w2.weight"},
};

// tid2eid as i32 expert ids, each checked to name an expert.
ir::HostTensor expert_table(const ir::HostTensor& table, const DeepSeekV4HParams& h, const std::string& where) {
  const std::vector<int64_t> ids = table.to_i64();
  for (int64_t id : ids)
    if (id < 0 || id >= h.n_expert) user_error(where, " holds expert ", id, " of ", h.n_expert);
  return ir::HostTensor::from_i64(table.shape(), ids, DType::i32);
}

}  // namespace

DeepSeekV4Weights load_deepseek4_hf_weights(const std::string& folder, const DeepSeekV4HParams& h) {
  auto st = std::make_shared<safetensors::Model>(safetensors::Model::open(folder));
  DeepSeekV4Weights w;
  w.keep_alive.push_back(st);
  for (const safetensors::TensorInfo& t : st->tensors()) {
    std::string name = t.name.rfind("model.", 0) == 0 ? t.name.substr(6) : t.name;
    if (name.find(".ffn.experts.") != std::string::npos || name.rfind("mtp.", 0) == 0) continue;  // stacked below; the MTP layer not run
    const std::optional<DType> dtype = safetensors::to_ir_dtype(t.dtype);
    if (!dtype) user_error(folder, ": tensor ", t.name, " has dtype ", safetensors::dtype_name(t.dtype), ", which moatless does not read here");
    ir::HostTensor tensor = ir::HostTensor::borrowed(*dtype, t.shape, t.data);
    if (name.ends_with("tid2eid")) {  // int64 in the releases: i32 expert ids
      tensor = expert_table(tensor, h, cat(folder, ": ", t.name));
    }
    w.tensors.emplace(std::move(name), std::move(tensor));
  }
  for (int64_t l = 0; l < h.n_layer; ++l)
    for (const char* m : {"w1", "w2", "w3"})
      w.tensors[cat("layers.", l, ".ffn.experts.", m)] = stack_experts(*st, cat("layers.", l, ".ffn.experts."), m, h.n_expert, folder);
  return w;
}

DeepSeekV4Weights load_deepseek4_gguf_weights(const std::string& path, const DeepSeekV4HParams& h) {
  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  DeepSeekV4Weights w;
  w.keep_alive.push_back(file);
  std::map<std::string, std::string> deepseek_name;
  for (const NamePair& n : kGlobals) deepseek_name[n.gguf] = n.deepseek;
  for (int64_t l = 0; l < h.n_layer; ++l)
    for (const NamePair& n : kLayer) deepseek_name[cat("blk.", l, ".", n.gguf)] = cat("layers.", l, ".", n.deepseek);
  for (const gguf::TensorInfo& t : file->tensors()) {
    auto name = deepseek_name.find(t.name);
    if (name == deepseek_name.end()) {
      int64_t layer = -1;
      if (std::sscanf(t.name.c_str(), "blk.%ld.", &layer) == 1 && layer >= h.n_layer) continue;  // an MTP layer: not run
      user_error(path, ": tensor ", t.name, " is not one of DeepSeek-V4's (llama.cpp deepseek4 names)");
    }
    const std::optional<DType> dtype = gguf::to_ir_dtype(t.type);
    if (!dtype)
      user_error(path, ": tensor ", t.name, " has type ", gguf::ggml_type_name(t.type), ", which moatless does not compute with (it takes ",
                 gguf::supported_ggml_types(), ")");
    ir::HostTensor tensor = ir::HostTensor::borrowed(*dtype, t.shape(), t.data);
    if (name->second.ends_with("tid2eid")) tensor = expert_table(tensor, h, cat(path, ": ", t.name));
    w.tensors.emplace(name->second, std::move(tensor));
  }
  return w;
}

}  // namespace moat::models
