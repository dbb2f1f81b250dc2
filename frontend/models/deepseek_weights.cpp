// Loading a DeepSeek model's weights from GGUF or from a Hugging Face folder into
// llama.cpp's tensor names. The name table below is the one place both namings meet.
#include "frontend/models/deepseek_weights.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <filesystem>

#include "frontend/gguf.h"
#include "frontend/hf_config.h"
#include "frontend/safetensors.h"
#include "ir/quant.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::models {

namespace {

// Per-layer tensors whose layout is the same in both files: GGUF name, HF name (under
// "model.layers.N."), both followed by ".weight".
struct NamePair {
  const char* gguf;
  const char* hf;
};
constexpr NamePair kLayerTensors[] = {
    {"attn_norm", "input_layernorm"},
    {"attn_q", "self_attn.q_proj"},
    {"attn_q_a", "self_attn.q_a_proj"},
    {"attn_q_a_norm", "self_attn.q_a_layernorm"},
    {"attn_q_b", "self_attn.q_b_proj"},
    {"attn_kv_a_mqa", "self_attn.kv_a_proj_with_mqa"},
    {"attn_kv_a_norm", "self_attn.kv_a_layernorm"},
    {"attn_output", "self_attn.o_proj"},
    {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},
    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
    {"ffn_gate_inp", "mlp.gate"},
    {"ffn_gate_shexp", "mlp.shared_experts.gate_proj"},
    {"ffn_up_shexp", "mlp.shared_experts.up_proj"},
    {"ffn_down_shexp", "mlp.shared_experts.down_proj"},
    // DeepSeek-V3.2's sparse-attention indexer (llama.cpp's deepseek32 names)
    {"indexer.attn_q_b", "self_attn.indexer.wq_b"},
    {"indexer.attn_k", "self_attn.indexer.wk"},
    {"indexer.k_norm", "self_attn.indexer.k_norm"},
    {"indexer.proj", "self_attn.indexer.weights_proj"},
};
// Whole-model tensors: GGUF name, HF name.
constexpr NamePair kGlobalTensors[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};
// The MTP layer's own tensors (HF under "model.layers.N.", both followed by ".weight").
// embed_tokens and shared_head.head are optional: the model's embedding and output
// matrix otherwise (DeepSeek-V3 shares them).
constexpr NamePair kMtpTensors[] = {
    {"nextn.eh_proj", "eh_proj"},
    {"nextn.enorm", "enorm"},
    {"nextn.hnorm", "hnorm"},
    {"nextn.shared_head_norm", "shared_head.norm"},
    {"nextn.shared_head_head", "shared_head.head"},
    {"nextn.embed_tokens", "embed_tokens"},
};
// Layer tensors made at load: the kv_b split (GGUF current layout), the score bias,
// the stacked experts.
constexpr const char* kKvB = "attn_kv_b";                 // legacy GGUF; HF self_attn.kv_b_proj
constexpr const char* kKB = "attn_k_b";                   // [H, kv_lora, nope]
constexpr const char* kVB = "attn_v_b";                   // [H, v, kv_lora]
constexpr const char* kBiasHf = "mlp.gate.e_score_correction_bias";
constexpr const char* kExperts[3][2] = {{"ffn_gate_exps", "gate_proj"}, {"ffn_up_exps", "up_proj"}, {"ffn_down_exps", "down_proj"}};

// Every element of a 2-D weight as f32; FP8 with its block scales.
std::vector<float> matrix_f32(const ir::HostTensor& w, const ir::HostTensor* scale, const std::vector<int64_t>& block) {
  if (!scale) return w.to_f32();
  const int64_t rows = w.shape()[0], cols = w.shape()[1];
  std::vector<float> out(static_cast<size_t>(rows * cols));
  std::vector<float> scales = scale->to_f32();
  for (int64_t r = 0; r < rows; ++r)
    ir::dequantize_fp8_block_row(w.bytes().data() + r * cols, scales.data(), r, cols, block[0], block[1],
                                 out.data() + r * cols);
  return out;
}

// kv_b [H * (nope + v), kv_lora] -> k_b [H, kv_lora, nope] (transposed per head), v_b [H, v, kv_lora].
void split_kv_b(DeepSeekModel& m, int64_t layer, const std::vector<float>& kv_b) {
  const DeepSeekHParams& h = m.hparams;
  const int64_t nope = h.qk_nope, v = h.v_head, lora = h.kv_lora_rank, heads = h.n_head;
  if (static_cast<int64_t>(kv_b.size()) != heads * (nope + v) * lora)
    user_error(m.path, ": layer ", layer, "'s kv_b projection has ", kv_b.size(), " elements, expected ", heads, " x (",
               nope, " + ", v, ") x ", lora);
  std::vector<float> k(static_cast<size_t>(heads * lora * nope)), vb(static_cast<size_t>(heads * v * lora));
  for (int64_t hd = 0; hd < heads; ++hd) {
    const float* base = kv_b.data() + hd * (nope + v) * lora;
    for (int64_t i = 0; i < nope; ++i)
      for (int64_t c = 0; c < lora; ++c) k[static_cast<size_t>((hd * lora + c) * nope + i)] = base[i * lora + c];
    for (int64_t i = 0; i < v; ++i)
      for (int64_t c = 0; c < lora; ++c) vb[static_cast<size_t>((hd * v + i) * lora + c)] = base[(nope + i) * lora + c];
  }
  m.weights[blk_name(layer, kKB)] = ir::HostTensor::from_f32({heads, lora, nope}, k);
  m.weights[blk_name(layer, kVB)] = ir::HostTensor::from_f32({heads, v, lora}, vb);
}

// llama.cpp's converter may fuse the experts' gate and up projections
// (--fuse-gate-up-exps): blk.N.ffn_gate_up_exps.weight [E, 2F, D], gate rows first in
// each expert. The MoE takes them apart: each becomes its own [E, F, D] tensor (a copy
// of the expert weights' bytes, made once at load).
void split_fused_gate_up(DeepSeekModel& m) {
  for (int64_t l = 0; l < m.hparams.n_layer + m.hparams.n_mtp; ++l) {
    auto fused = m.weights.find(blk_name(l, "ffn_gate_up_exps"));
    if (fused == m.weights.end()) continue;
    const ir::HostTensor& t = fused->second;
    const std::vector<int64_t>& shape = t.shape();
    if (shape.size() != 3 || shape[1] % 2 != 0)
      user_error(m.path, ": ", fused->first, " has shape [", shape.size() > 0 ? shape[0] : 0, ", ...]; expected [experts, "
                 "2 x expert FFN width, embedding width]");
    const int64_t experts = shape[0], width = shape[1] / 2;
    const size_t half = static_cast<size_t>(ir::tensor_bytes(t.dtype(), {width, shape[2]}));
    std::vector<uint8_t> gate(half * static_cast<size_t>(experts)), up(gate.size());
    for (int64_t e = 0; e < experts; ++e) {
      const uint8_t* expert = t.bytes().data() + 2 * half * static_cast<size_t>(e);
      std::memcpy(gate.data() + half * static_cast<size_t>(e), expert, half);
      std::memcpy(up.data() + half * static_cast<size_t>(e), expert + half, half);
    }
    m.weights[blk_name(l, "ffn_gate_exps")] = ir::HostTensor::from_bytes(t.dtype(), {experts, width, shape[2]}, std::move(gate));
    m.weights[blk_name(l, "ffn_up_exps")] = ir::HostTensor::from_bytes(t.dtype(), {experts, width, shape[2]}, std::move(up));
    m.weights.erase(fused);
    if (l == m.hparams.n_dense) m.notes.push_back("fused ffn_gate_up_exps split into gate and up experts (copied at load)");
  }
}

// Records the file's MTP layers: the first becomes the draft module when `load`.
void note_mtp(DeepSeekModel& m, int64_t in_file, bool load) {
  m.mtp_in_file = in_file;
  if (in_file == 0) return;
  if (!load) {
    m.notes.push_back("skipped " + std::to_string(in_file) + " MTP layer(s); --spec mtp drafts with them");
    return;
  }
  m.hparams.n_mtp = 1;
  m.notes.push_back("MTP layer " + std::to_string(m.hparams.n_layer) + " loaded as the draft module" +
                    (in_file > 1 ? " (the first of " + std::to_string(in_file) + "; further draft steps reuse it)" : ""));
}

// llama.cpp's loader takes an optional "X.scale" beside any weight "X.weight" (NVFP4's
// second-level scale: [1] per tensor, or [n_expert] per expert of a stacked expert
// tensor) and "X.input_scale" (an activation scale no graph applies). Its deepseek2 graph
// multiplies the products of attn_output and the MTP layer's eh_proj / shared head by
// their scales; deepseek32's also those of the dense, shared and routed FFN weights
// (src/models/deepseek2.cpp, deepseek32.cpp). moat does the same: such a scale other than
// 1 is folded into its weight, which becomes an f32 copy (refused on a quantised weight);
// the other companions are left unused, with a note.
bool llamacpp_applies_scale(const std::string& arch, const std::string& weight) {
  static const std::set<std::string> deepseek2 = {"attn_output", "nextn.eh_proj", "nextn.shared_head_head"};
  static const std::set<std::string> deepseek32 = {
      "attn_output", "nextn.eh_proj", "nextn.shared_head_head", "ffn_gate", "ffn_up", "ffn_down", "ffn_gate_exps",
      "ffn_up_exps", "ffn_down_exps", "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp"};
  int64_t layer = -1;
  int used = 0;
  if (std::sscanf(weight.c_str(), "blk.%ld.%n", &layer, &used) != 1 || used == 0) return false;  // output.weight: MTP only
  const std::string kind = weight.substr(static_cast<size_t>(used), weight.size() - static_cast<size_t>(used) - 7);  // no ".weight"
  return (arch == "deepseek32" ? deepseek32 : deepseek2).count(kind) > 0;
}

void fold_weight_scales(DeepSeekModel& m, const std::string& arch) {
  std::vector<std::string> folded, unapplied, input_scales;
  for (auto it = m.weights.begin(); it != m.weights.end();) {
    const std::string& name = it->first;
    const std::string suffix = name.ends_with(".input_scale") ? ".input_scale" : name.ends_with(".scale") ? ".scale" : "";
    const std::string weight = suffix.empty() ? "" : name.substr(0, name.size() - suffix.size()) + ".weight";
    auto w = suffix.empty() ? m.weights.end() : m.weights.find(weight);
    if (w == m.weights.end()) {
      ++it;
      continue;
    }
    const std::vector<float> scale = it->second.to_f32();
    const bool ones = std::all_of(scale.begin(), scale.end(), [](float v) { return v == 1.0f; });
    if (suffix == ".input_scale") {
      input_scales.push_back(name);
    } else if (!llamacpp_applies_scale(arch, weight)) {
      if (!ones) unapplied.push_back(name);
    } else if (!ones) {
      const std::vector<int64_t> shape = w->second.shape();
      if (scale.size() != 1 && (shape.size() != 3 || shape[0] != static_cast<int64_t>(scale.size())))
        user_error(m.path, ": ", name, " holds ", scale.size(), " scales; ", weight, " of ", shape.size(),
                   " dimensions takes one, or one per expert");
      if (ir::is_quantised(w->second.dtype()))
        user_error(m.path, ": ", name, " scales the ", ir::dtype_name(w->second.dtype()), " weight ", weight,
                   "; moatless applies such second-level scales to float weights only");
      std::vector<float> values = w->second.to_f32();
      const size_t per_scale = values.size() / scale.size();
      for (size_t i = 0; i < values.size(); ++i) values[i] *= scale[i / per_scale];
      w->second = ir::HostTensor::from_f32(shape, values);
      folded.push_back(name);
    }
    it = m.weights.erase(it);
  }
  auto note = [&](const std::vector<std::string>& names, const std::string& what) {
    if (!names.empty())
      m.notes.push_back(cat(names.size(), " ", names.size() == 1 ? "tensor" : "tensors", " (", names.front(),
                            names.size() > 1 ? ", ..." : "", ") ", what));
  };
  note(folded, "folded into their weights (f32 copies), as llama.cpp's " + arch + " graph multiplies by them");
  note(unapplied, "left unused: weight scales other than 1 that llama.cpp's " + arch + " graph does not apply either");
  note(input_scales, "left unused: activation scales, which llama.cpp does not apply either");
}

DeepSeekModel load_gguf(const std::string& path, const LoadOptions& options) {
  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  DeepSeekModel m;
  m.path = path;
  m.format = "gguf";
  m.keep_alive.push_back(file);
  bool has_bias = false;
  for (const gguf::TensorInfo& t : file->tensors())
    if (t.name.find("exp_probs_b") != std::string::npos) has_bias = true;
  m.hparams = hparams_from_gguf(*file, has_bias, options.routing_method);
  m.eos = static_cast<int32_t>(file->find_i64("tokenizer.ggml.eos_token_id").value_or(-1));
  // MTP (multi-token prediction) layers follow the decoder layers (block_count counts
  // them); the first is the draft module when asked for.
  const std::string nextn_key = file->architecture() + ".nextn_predict_layers";
  const int64_t nextn = file->find_i64(nextn_key).value_or(0);
  if (nextn < 0 || nextn >= m.hparams.n_layer)
    user_error(path, ": ", nextn_key, " is ", nextn, " of ", m.hparams.n_layer, " blocks");
  m.hparams.n_layer -= nextn;
  note_mtp(m, nextn, options.draft);
  for (const gguf::TensorInfo& t : file->tensors()) {
    int64_t layer = -1;
    if (std::sscanf(t.name.c_str(), "blk.%ld.", &layer) == 1 && layer >= m.hparams.n_layer + m.hparams.n_mtp) continue;  // MTP
    std::optional<ir::DType> dtype = gguf::to_ir_dtype(t.type);
    if (!dtype)
      user_error(path, ": tensor ", t.name, " has type ", gguf::ggml_type_name(t.type),
                 ", which this runtime does not compute with (it takes ", gguf::supported_ggml_types(), ")");
    m.weights[t.name] = ir::HostTensor::borrowed(*dtype, t.shape(), t.data);
  }
  fold_weight_scales(m, file->architecture());
  split_fused_gate_up(m);
  // The legacy unsplit layout: split kv_b as the current converter does.
  for (int64_t l = 0; l < m.hparams.n_layer + m.hparams.n_mtp; ++l) {
    auto kv_b = m.weights.find(blk_name(l, kKvB));
    if (kv_b == m.weights.end() || m.has(blk_name(l, kKB))) continue;
    split_kv_b(m, l, kv_b->second.to_f32());
    m.weights.erase(kv_b);
    if (l == 0) m.notes.push_back("legacy attn_kv_b split into attn_k_b / attn_v_b (f32)");
  }
  return m;
}

DeepSeekModel load_hf(const std::string& path, const LoadOptions& options) {
  const hf::DeepSeekConfig config = hf::load_deepseek_config(path);
  auto st = std::make_shared<safetensors::Model>(safetensors::Model::open(path));
  DeepSeekModel m;
  m.path = path;
  m.format = "safetensors";
  m.keep_alive.push_back(st);
  m.hparams = hparams_from_hf(config, path);
  m.eos = static_cast<int32_t>(config.eos_token_id.value_or(-1));
  if (config.quantization_config && config.quantization_config->weight_block_size.size() == 2)
    m.fp8_block = config.quantization_config->weight_block_size;
  note_mtp(m, config.num_nextn_predict_layers, options.draft);

  auto tensor = [&](const safetensors::TensorInfo& t) {
    std::optional<ir::DType> dtype = safetensors::to_ir_dtype(t.dtype);
    if (!dtype) user_error(path, ": tensor ", t.name, " has dtype ", safetensors::dtype_name(t.dtype), ", which this runtime does not compute with");
    return ir::HostTensor::borrowed(*dtype, t.shape, t.data);
  };
  auto scale_of = [&](const std::string& weight_name) -> std::optional<ir::HostTensor> {
    const std::string scale_name = weight_name.substr(0, weight_name.size() - std::string("weight").size()) + "weight_scale_inv";
    if (const safetensors::TensorInfo* s = st->find(scale_name)) return tensor(*s);
    return std::nullopt;
  };
  // A weight under its GGUF name, with its FP8 block scales when it has them.
  auto add = [&](const std::string& gguf_name, const safetensors::TensorInfo& t) {
    m.weights[gguf_name] = tensor(t);
    if (std::optional<ir::HostTensor> s = scale_of(t.name)) m.weights[gguf_name + ".scale"] = *s;
  };

  for (const NamePair& g : kGlobalTensors)
    if (const safetensors::TensorInfo* t = st->find(g.hf)) add(g.gguf, *t);
  const int64_t layers = m.hparams.n_layer + m.hparams.n_mtp;  // the MTP layer is model.layers.<n_layer>
  for (int64_t l = 0; l < layers; ++l) {
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    for (const NamePair& n : kLayerTensors)
      if (const safetensors::TensorInfo* t = st->find(prefix + n.hf + ".weight")) add(blk_name(l, n.gguf), *t);
    if (l >= m.hparams.n_layer)
      for (const NamePair& n : kMtpTensors)
        if (const safetensors::TensorInfo* t = st->find(prefix + n.hf + ".weight")) add(blk_name(l, n.gguf), *t);
    if (const safetensors::TensorInfo* t = st->find(prefix + "self_attn.indexer.k_norm.bias"))
      m.weights["blk." + std::to_string(l) + ".indexer.k_norm.bias"] = tensor(*t);
    if (const safetensors::TensorInfo* t = st->find(prefix + kBiasHf))
      m.weights["blk." + std::to_string(l) + ".exp_probs_b.bias"] = tensor(*t);
    if (const safetensors::TensorInfo* t = st->find(prefix + "self_attn.kv_b_proj.weight")) {
      std::optional<ir::HostTensor> s = scale_of(t->name);
      split_kv_b(m, l, matrix_f32(tensor(*t), s ? &*s : nullptr, m.fp8_block));
    }
    if (l < m.hparams.n_dense || m.hparams.n_expert == 0) continue;
    for (const auto& [gguf_name, hf_name] : kExperts) {
      // experts e = 0..E-1 stacked into [E, rows, cols]
      std::vector<uint8_t> bytes;
      std::vector<float> floats;
      ir::DType dtype = ir::DType::f32;
      std::vector<int64_t> shape;
      for (int64_t e = 0; e < m.hparams.n_expert; ++e) {
        const std::string name = prefix + "mlp.experts." + std::to_string(e) + "." + hf_name + ".weight";
        const safetensors::TensorInfo* t = st->find(name);
        if (!t) user_error(path, ": tensor ", name, " is missing (", m.hparams.n_expert, " experts per layer from config.json)");
        ir::HostTensor w = tensor(*t);
        if (e == 0) shape = w.shape();
        if (w.shape() != shape) user_error(path, ": tensor ", name, " has another shape than expert 0's");
        std::optional<ir::HostTensor> s = scale_of(name);
        if (s) {
          std::vector<float> v = matrix_f32(w, &*s, m.fp8_block);
          floats.insert(floats.end(), v.begin(), v.end());
        } else {
          if (e == 0) dtype = w.dtype();
          if (w.dtype() != dtype) user_error(path, ": tensor ", name, " has another dtype than expert 0's");
          bytes.insert(bytes.end(), w.bytes().begin(), w.bytes().end());
        }
      }
      std::vector<int64_t> stacked{m.hparams.n_expert};
      stacked.insert(stacked.end(), shape.begin(), shape.end());
      m.weights[blk_name(l, gguf_name)] = floats.empty() ? ir::HostTensor::from_bytes(dtype, stacked, std::move(bytes))
                                                          : ir::HostTensor::from_f32(stacked, floats);
    }
  }
  return m;
}

}  // namespace

std::string blk_name(int64_t layer, const char* tensor) {
  return "blk." + std::to_string(layer) + "." + tensor + ".weight";
}

const ir::HostTensor& DeepSeekModel::weight(const std::string& name) const {
  auto it = weights.find(name);
  if (it == weights.end()) user_error(path, ": the model has no tensor ", name, " (is the file complete?)");
  return it->second;
}

DeepSeekModel load_deepseek(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return load_hf(path, options);
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) return load_gguf(path, options);
  if (path.size() >= 12 && path.compare(path.size() - 12, 12, "config.json") == 0)
    return load_hf(std::filesystem::path(path).parent_path().string(), options);
  // Anything else: GGUF if it starts with the magic, else say what is expected.
  if (std::filesystem::is_regular_file(path, ec)) return load_gguf(path, options);
  user_error(path, ": not found; give a GGUF file or a Hugging Face model folder (config.json + safetensors)");
}

}  // namespace moat::models
