// DeepSeek-V4's weights under DeepSeek's released names (frontend/models/deepseek4.h),
// from a Hugging Face folder (those names, experts one tensor each) or a llama.cpp
// deepseek4 GGUF (its names, experts stacked), so that the graph never knows which.
#include <cmath>
#include <cstdio>
#include <optional>

#include "frontend/gguf.h"
#include "frontend/models/deepseek4.h"
#include "frontend/safetensors.h"
#include "ir/quant.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::models {

using ir::DType;

namespace {

// "[2, 128]"
std::string dims_text(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) out += cat(i ? ", " : "", dims[i]);
  return out + "]";
}

// An FP8 matrix [rows, cols] (bytes row-major) times its f32 block scales, into dst.
void fp8_matrix_f32(const uint8_t* bytes, const std::vector<float>& scales, int64_t rows, int64_t cols,
                    const std::vector<int64_t>& block, float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    ir::dequantize_fp8_block_row(bytes + r * cols, scales.data(), r, cols, block[0], block[1], dst + r * cols);
}

// UE8M0 block scales (F8_E8M0 or U8 exponent bytes b: 2^(b - 127)), or float scales, as f32.
ir::HostTensor scales_f32(const safetensors::TensorInfo& t, const std::string& folder) {
  if (t.dtype == safetensors::DType::F8_E8M0 || t.dtype == safetensors::DType::U8) {
    std::vector<float> values(t.data.size());
    for (size_t i = 0; i < values.size(); ++i) values[i] = std::ldexp(1.0f, static_cast<int>(t.data[i]) - 127);
    return ir::HostTensor::from_f32(t.shape, values);
  }
  const std::optional<DType> dtype = safetensors::to_ir_dtype(t.dtype);
  if (!dtype || !ir::is_float(*dtype) || *dtype == DType::f8_e4m3)
    user_error(folder, ": scales ", t.name, " have dtype ", safetensors::dtype_name(t.dtype), "; DeepSeek-V4's are F8_E8M0 (or float)");
  return ir::HostTensor::from_f32(t.shape, ir::HostTensor::borrowed(*dtype, t.shape, t.data).to_f32());
}

// "X.scale" of weight "X.weight", or null.
const safetensors::TensorInfo* scale_of(const safetensors::Model& st, const std::string& weight_name) {
  return weight_name.ends_with(".weight") ? st.find(weight_name.substr(0, weight_name.size() - 7) + ".scale") : nullptr;
}

// One expert's MXFP4 matrix (DeepSeek's release, compressed-tensors' "mxfp4-pack-quantized"
// layout: codes [rows, cols / 2], element 2i in the low nibble and 2i + 1 in the high;
// an E8M0 exponent per 32 elements of a row) appended as ggml's block_mxfp4 rows: per 32
// elements the exponent byte, then 16 bytes holding element j (low) and j + 16 (high).
// The 4-bit codes and the exponent carry over unchanged (ggml's table is doubled and its
// scale halved: the same values). Bits move; nothing is rounded.
void append_mxfp4(const safetensors::TensorInfo& codes, const safetensors::TensorInfo& scale, int64_t rows, int64_t cols,
                  std::vector<uint8_t>& out) {
  const int64_t groups = cols / 32;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* packed = codes.data.data() + r * (cols / 2) + g * 16;
      auto code = [&](int64_t k) { return static_cast<uint8_t>(k % 2 ? packed[k / 2] >> 4 : packed[k / 2] & 0x0f); };
      out.push_back(scale.data[static_cast<size_t>(r * groups + g)]);
      for (int64_t j = 0; j < 16; ++j) out.push_back(static_cast<uint8_t>(code(j) | code(j + 16) << 4));
    }
}

// Per-expert matrices "prefix.{e}.name.weight" stacked into one [E, rows, cols] tensor:
// MXFP4 experts (I8 / U8 codes with E8M0 scales) as mxfp4, kept compressed; FP8 ones
// dequantised with their block scales, and float ones, as f32 (the moe op takes no
// block scales).
ir::HostTensor stack_experts(const safetensors::Model& st, const std::string& prefix, const std::string& name, int64_t experts,
                             const std::vector<int64_t>& fp8_block, const std::string& folder) {
  std::vector<float> values;
  std::vector<uint8_t> blocks;
  std::vector<int64_t> shape;
  bool mxfp4 = false;
  for (int64_t e = 0; e < experts; ++e) {
    const std::string full = cat(prefix, e, ".", name, ".weight");
    const safetensors::TensorInfo* t = st.find(full);
    if (!t) user_error(folder, ": no tensor ", full, " (is this a complete DeepSeek-V4 checkpoint?)");
    const safetensors::TensorInfo* scale = scale_of(st, full);
    const bool packed = t->dtype == safetensors::DType::I8 || t->dtype == safetensors::DType::U8;
    if (e > 0 && packed != mxfp4) user_error(folder, ": ", full, " is stored unlike expert 0 of its layer");
    mxfp4 = packed;
    if (packed) {
      if (!scale || t->shape.size() != 2) user_error(folder, ": MXFP4 expert ", full, " needs 2-D codes and its .scale");
      const int64_t rows = t->shape[0], cols = 2 * t->shape[1];
      if (cols % 32 != 0 || scale->shape != std::vector<int64_t>{rows, cols / 32} || scale->data.size() != static_cast<size_t>(rows * cols / 32))
        user_error(folder, ": MXFP4 expert ", full, " has codes [", rows, ", ", cols / 2, "] and scales ", dims_text(scale->shape),
                   "; expected scales [", rows, ", ", cols / 32, "] (one per 32 elements)");
      append_mxfp4(*t, *scale, rows, cols, blocks);
      shape = {rows, cols};
      continue;
    }
    const std::optional<DType> dtype = safetensors::to_ir_dtype(t->dtype);
    if (!dtype) user_error(folder, ": tensor ", full, " has dtype ", safetensors::dtype_name(t->dtype), ", which moatless does not read here");
    const ir::HostTensor w = ir::HostTensor::borrowed(*dtype, t->shape, t->data);
    if (*dtype == DType::f8_e4m3) {
      if (!scale || t->shape.size() != 2) user_error(folder, ": FP8 expert ", full, " needs its .scale");
      const int64_t rows = t->shape[0], cols = t->shape[1];
      const std::vector<int64_t> grid = {(rows + fp8_block[0] - 1) / fp8_block[0], (cols + fp8_block[1] - 1) / fp8_block[1]};
      if (scale->shape != grid)
        user_error(folder, ": the scales of ", full, " are ", dims_text(scale->shape), "; blocks of ", fp8_block[0], " x ",
                   fp8_block[1], " need ", dims_text(grid));
      const size_t at = values.size();
      values.resize(at + static_cast<size_t>(rows * cols));
      fp8_matrix_f32(t->data.data(), scales_f32(*scale, folder).to_f32(), rows, cols, fp8_block, values.data() + at);
    } else {
      const std::vector<float> one = w.to_f32();
      values.insert(values.end(), one.begin(), one.end());
    }
    shape = t->shape;
  }
  shape.insert(shape.begin(), experts);
  return mxfp4 ? ir::HostTensor::from_bytes(DType::mxfp4, shape, std::move(blocks)) : ir::HostTensor::from_f32(shape, values);
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

}  // namespace

std::optional<std::string> deepseek4_layer_tensor_name(std::string_view gguf_suffix) {
  for (const NamePair& n : kLayer)
    if (gguf_suffix == n.gguf) return std::string(n.deepseek);
  return std::nullopt;
}

namespace {

// tid2eid as i32 expert ids, each checked to name an expert.
ir::HostTensor expert_table(const ir::HostTensor& table, const DeepSeekV4HParams& h, const std::string& where) {
  const std::vector<int64_t> ids = table.to_i64();
  for (int64_t id : ids)
    if (id < 0 || id >= h.n_expert) user_error(where, " holds expert ", id, " of ", h.n_expert);
  return ir::HostTensor::from_i64(table.shape(), ids, DType::i32);
}

}  // namespace

// Why llama.cpp's deepseek4 graph leaves tensor `t` unused, if it is one it loads and
// then leaves: the routing bias for image tokens (exp_probs_b_vl, vision input), and the
// ".scale" / ".input_scale" companions llama.cpp's loader accepts beside every weight
// (NVFP4's per-tensor or per-expert second scale), which its deepseek4 graph does not
// multiply by. moatless computes what llama.cpp computes, and the note says so.
std::optional<std::string> unused_by_deepseek4(const gguf::File& file, const gguf::TensorInfo& t) {
  if (t.name.ends_with(".exp_probs_b_vl.bias")) return "the routing bias for image tokens, not used for text";
  for (const char* suffix : {".input_scale", ".scale"}) {
    if (!t.name.ends_with(suffix)) continue;
    if (!file.find_tensor(t.name.substr(0, t.name.size() - std::string(suffix).size()) + ".weight")) return std::nullopt;
    if (std::string(suffix) == ".input_scale") return std::string("activation scales, which llama.cpp does not apply either");
    const std::optional<DType> dtype = gguf::to_ir_dtype(t.type);
    bool ones = dtype.has_value();
    if (ones)
      for (float v : ir::HostTensor::borrowed(*dtype, t.shape(), t.data).to_f32()) ones = ones && v == 1.0f;
    if (ones) return std::string("weight scales of 1");
    return std::string("weight scales other than 1, which llama.cpp's deepseek4 graph does not apply either (the logits are llama.cpp's)");
  }
  return std::nullopt;
}


DeepSeekV4Weights load_deepseek4_hf_weights(const std::string& folder, const DeepSeekV4HParams& h,
                                            const std::vector<int64_t>& fp8_block, bool draft) {
  if (fp8_block.size() != 2 || fp8_block[0] < 1 || fp8_block[1] < 1)
    user_error(folder, ": quantization_config.weight_block_size must be two positive sizes, got ", dims_text(fp8_block));
  auto st = std::make_shared<safetensors::Model>(safetensors::Model::open(folder));
  DeepSeekV4Weights w;
  w.keep_alive.push_back(st);
  w.fp8_block = fp8_block;
  const bool with_mtp = draft && h.n_mtp > 0;
  const std::string mtp = "mtp.0.", mtp_layer = cat("layers.", h.n_layer, ".");
  int64_t skipped_mtp = 0;
  for (const safetensors::TensorInfo& t : st->tensors()) {
    std::string name = t.name.rfind("model.", 0) == 0 ? t.name.substr(6) : t.name;
    if (name.rfind("mtp.", 0) == 0) {
      if (!with_mtp || name.rfind(mtp, 0) != 0) {
        ++skipped_mtp;
        continue;
      }
      name = mtp_layer + name.substr(mtp.size());  // the MTP layer as layer n_layer
    }
    if (name.find(".ffn.experts.") != std::string::npos) continue;  // stacked below
    if (name.ends_with(".scale") && st->find(t.name.substr(0, t.name.size() - 6) + ".weight")) continue;  // with its weight
    const std::optional<DType> dtype = safetensors::to_ir_dtype(t.dtype);
    if (!dtype) user_error(folder, ": tensor ", t.name, " has dtype ", safetensors::dtype_name(t.dtype), ", which moatless does not read here");
    ir::HostTensor tensor = ir::HostTensor::borrowed(*dtype, t.shape, t.data);
    if (name.ends_with("tid2eid")) {  // int64 in the releases: i32 expert ids
      tensor = expert_table(tensor, h, cat(folder, ": ", t.name));
    }
    if (*dtype == DType::f8_e4m3) {  // kept in FP8; its UE8M0 block scales beside it as "X.weight.scale" f32
      const safetensors::TensorInfo* scale = scale_of(*st, t.name);
      if (!scale || t.shape.size() != 2) user_error(folder, ": FP8 tensor ", t.name, " has no block scales (", t.name, " -> .scale)");
      const std::vector<int64_t> grid = {(t.shape[0] + fp8_block[0] - 1) / fp8_block[0], (t.shape[1] + fp8_block[1] - 1) / fp8_block[1]};
      if (scale->shape != grid)
        user_error(folder, ": the scales of ", t.name, " are ", dims_text(scale->shape), "; blocks of ", fp8_block[0], " x ",
                   fp8_block[1], " need ", dims_text(grid));
      w.tensors.emplace(name + ".scale", scales_f32(*scale, folder));
    }
    w.tensors.emplace(std::move(name), std::move(tensor));
  }
  if (skipped_mtp > 0)
    w.notes.push_back(cat(skipped_mtp, " tensors of MTP layers (mtp.*) not loaded: ",
                          with_mtp ? "only the first MTP layer drafts" : "loaded only to draft (--spec mtp)"));
  for (int64_t l = 0; l < h.n_layer + (with_mtp ? 1 : 0); ++l) {
    const std::string source = l < h.n_layer ? cat("layers.", l, ".") : mtp;
    for (const char* m : {"w1", "w2", "w3"})
      w.tensors[cat("layers.", l, ".ffn.experts.", m)] =
          stack_experts(*st, source + "ffn.experts.", m, h.n_expert, fp8_block, folder);
    // The grouped output projection splits wo_a's rows per group: an FP8 wo_a whose
    // groups do not hold whole scale blocks is dequantised (tiny models only).
    const std::string wo_a = cat("layers.", l, ".attn.wo_a.weight");
    auto it = w.tensors.find(wo_a);
    if (it != w.tensors.end() && it->second.dtype() == DType::f8_e4m3 && h.o_lora_rank % fp8_block[0] != 0) {
      const int64_t rows = it->second.shape()[0], cols = it->second.shape()[1];
      std::vector<float> values(static_cast<size_t>(rows * cols));
      fp8_matrix_f32(it->second.bytes().data(), w.tensors.at(wo_a + ".scale").to_f32(), rows, cols, fp8_block, values.data());
      it->second = ir::HostTensor::from_f32({rows, cols}, values);
      w.tensors.erase(wo_a + ".scale");
    }
  }
  return w;
}

DeepSeekV4Weights load_deepseek4_gguf_weights(const std::string& path, const DeepSeekV4HParams& h) {
  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  if (h.n_mtp > 0 && !file->find_tensor("blk.0.attn_norm.weight"))  // llama.cpp's own test of an MTP-only file
    user_error(path, " holds DeepSeek-V4's MTP layer only (llama.cpp's convert_hf_to_gguf.py --mtp): give the model's GGUF "
               "with -m and this one with --draft-model FILE");
  DeepSeekV4Weights w;
  w.keep_alive.push_back(file);
  std::map<std::string, std::string> deepseek_name;
  std::map<std::string, std::vector<std::string>> unused;  // why -> tensor names
  for (const NamePair& n : kGlobals) deepseek_name[n.gguf] = n.deepseek;
  for (int64_t l = 0; l < h.n_layer; ++l)
    for (const NamePair& n : kLayer) deepseek_name[cat("blk.", l, ".", n.gguf)] = cat("layers.", l, ".", n.deepseek);
  for (const gguf::TensorInfo& t : file->tensors()) {
    auto name = deepseek_name.find(t.name);
    if (name == deepseek_name.end()) {
      int64_t layer = -1;
      if (std::sscanf(t.name.c_str(), "blk.%ld.", &layer) == 1 && layer >= h.n_layer) continue;  // an MTP layer: not run
      if (const std::optional<std::string> why = unused_by_deepseek4(*file, t)) {
        unused[*why].push_back(t.name);
        continue;
      }
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
  for (const auto& [why, names] : unused)
    w.notes.push_back(cat(names.size(), names.size() == 1 ? " tensor (" : " tensors (", names.front(),
                          names.size() > 1 ? ", ..." : "", ") left unused: ", why));
  return w;
}

}  // namespace moat::models
