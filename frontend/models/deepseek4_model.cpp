// Opening a DeepSeek-V4 model, and what its weights weigh (frontend/models/deepseek4_model.h).
#include "frontend/models/deepseek4_model.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "frontend/gguf.h"
#include "frontend/hf_config_v4.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::models {

namespace {

std::string config_json_of(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return (std::filesystem::path(path) / "config.json").string();
  return path.ends_with("config.json") ? path : "";
}

std::string folder_of(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) ? path : std::filesystem::path(path).parent_path().string();
}

}  // namespace

bool is_deepseek4(const std::string& path) {
  try {
    if (const std::string config = config_json_of(path); !config.empty()) {
      std::ifstream in(config);
      const nlohmann::json root = nlohmann::json::parse(in, nullptr, false);
      return root.is_object() && root.value("model_type", "") == "deepseek_v4";
    }
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return false;
    return gguf::File::open(path).architecture() == "deepseek4";
  } catch (const UserError&) {
    return false;
  }
}

DeepSeekV4Model load_deepseek4(const std::string& path, const LoadOptions& options) {
  DeepSeekV4Model m;
  m.path = path;
  if (!config_json_of(path).empty() && !options.draft_file.empty())
    user_error(options.draft_file, ": a separate MTP file goes with a DeepSeek-V4 GGUF (llama.cpp's mtp-*.gguf); a Hugging "
               "Face folder (", path, ") keeps its MTP layers (mtp.*) in its own safetensors");
  if (!config_json_of(path).empty()) {
    const std::string folder = folder_of(path);
    const hf::DeepSeekV4Config config = hf::load_deepseek_v4_config(folder);
    m.format = "safetensors";
    m.hparams = hparams_from_hf_v4(config);
    m.eos = static_cast<int32_t>(config.eos_token_id.value_or(-1));
    std::vector<int64_t> fp8_block = {128, 128};
    if (config.quantization_config && config.quantization_config->weight_block_size.size() == 2)
      fp8_block = config.quantization_config->weight_block_size;
    m.draft_loaded = options.draft && m.hparams.n_mtp > 0;
    // The releases list a compress ratio per MTP layer after the decoder layers' (0: the
    // window only); transformers' form (layer_types) covers the decoder layers only.
    if (m.draft_loaded && static_cast<int64_t>(m.hparams.compress_ratio.size()) == m.hparams.n_layer)
      m.hparams.compress_ratio.push_back(0);
    m.weights = load_deepseek4_hf_weights(folder, m.hparams, fp8_block, m.draft_loaded);
  } else {
    const gguf::File file = gguf::File::open(path);
    m.format = "gguf";
    m.hparams = hparams_from_gguf_v4(file);
    m.eos = static_cast<int32_t>(file.find_i64("tokenizer.ggml.eos_token_id").value_or(-1));
    m.weights = load_deepseek4_gguf_weights(path, m.hparams);
    if (options.draft && !options.draft_file.empty()) {  // llama.cpp keeps V4's MTP layer in a file of its own
      const int64_t ratio = load_deepseek4_gguf_mtp(options.draft_file, m.hparams, m.weights);
      m.hparams.compress_ratio.resize(static_cast<size_t>(m.hparams.n_layer));
      m.hparams.compress_ratio.push_back(ratio);
      m.hparams.n_mtp = std::max<int64_t>(m.hparams.n_mtp, 1);
      m.draft_loaded = true;
    }
  }
  return m;
}

std::string DeepSeekV4Model::why_no_draft() const {
  if (format == "gguf")
    return "llama.cpp writes DeepSeek-V4's MTP layer to a separate GGUF (convert_hf_to_gguf.py --mtp, mtp-*.gguf): give it "
           "with --draft-model FILE (LoadOptions::draft_file)";
  if (hparams.n_mtp == 0) return "the folder has no MTP layers (num_nextn_predict_layers 0)";
  return "the MTP layer was not loaded (LoadOptions::draft)";
}

// Every weight as loaded; a decoded token reads the dense weights in full, one row of
// the embedding table and, of each layer's stacked routed experts, the share its
// router picks (n_expert_used of n_expert).
ModelSize DeepSeekV4Model::size() const {
  const DeepSeekV4HParams& h = hparams;
  ModelSize size;
  std::map<ir::DType, uint64_t> bytes_by_dtype;
  const std::string mtp_prefix = cat("layers.", h.n_layer, ".");
  for (const auto& [name, tensor] : weights.tensors) {
    const uint64_t bytes = tensor.bytes().size();
    size.bytes += bytes;
    size.params += static_cast<uint64_t>(tensor.numel());
    bytes_by_dtype[tensor.dtype()] += bytes;
    if (draft_loaded && name.rfind(mtp_prefix, 0) == 0) continue;  // the draft module: not read by a model pass
    if (name.find(".ffn.experts.w") != std::string::npos && h.n_expert > 0)
      size.decode_bytes_per_token += bytes / static_cast<uint64_t>(h.n_expert) * static_cast<uint64_t>(h.n_expert_used);
    else if ((name == "embed.weight" || name.ends_with(".gate.tid2eid")) && tensor.shape().size() >= 1 && tensor.shape()[0] > 0)
      size.decode_bytes_per_token += bytes / static_cast<uint64_t>(tensor.shape()[0]);
    else
      size.decode_bytes_per_token += bytes;
  }
  size.label = size_label("deepseek4", bytes_by_dtype, size.params);
  return size;
}

}  // namespace moat::models
