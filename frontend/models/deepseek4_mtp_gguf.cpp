// DeepSeek-V4's first MTP layer from llama.cpp's separate MTP GGUF (deepseek4.h:
// load_deepseek4_gguf_mtp). llama.cpp's converter (conversion/deepseek.py, --mtp) writes
// the release's mtp.0.* as block n_layer of an otherwise main-model-shaped deepseek4 file:
//   blk.<n>.<layer tensor>          the block, under the decoder layers' names
//   blk.<n>.nextn.eh_proj.weight    [D, 2D]: e_proj and h_proj side by side (input columns
//                                   0..D-1 take the embedding, D..2D-1 the hidden state)
//   blk.<n>.nextn.enorm / hnorm / shared_head_norm   the two input norms and its own norm
//   output_hc_{fn,base,scale}       the MTP's own head mix (not the model's)
//   token_embd, output, output_norm the model's, kept beside it (not read: the model's own)
#include <cstring>
#include <map>

#include "frontend/gguf.h"
#include "frontend/models/deepseek4.h"
#include "ir/dtype.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::models {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// Columns [first, first + cols) of every row of a [rows, n] matrix of whole blocks.
ir::HostTensor column_block(const ir::HostTensor& m, int64_t first, int64_t cols, const std::string& where) {
  const ir::DType t = m.dtype();
  const int64_t rows = m.shape()[0], n = m.shape()[1], per_block = ir::dtype_block_elems(t);
  if (first % per_block != 0 || cols % per_block != 0)
    user_error(where, ": its halves of ", cols, " columns are not whole ", ir::dtype_name(t), " blocks of ", per_block);
  const auto block_bytes = static_cast<size_t>(ir::dtype_block_bytes(t));
  const size_t row_bytes = static_cast<size_t>(n / per_block) * block_bytes, part = static_cast<size_t>(cols / per_block) * block_bytes;
  const size_t skip = static_cast<size_t>(first / per_block) * block_bytes;
  std::vector<uint8_t> out(static_cast<size_t>(rows) * part);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(out.data() + static_cast<size_t>(r) * part, m.bytes().data() + static_cast<size_t>(r) * row_bytes + skip, part);
  return ir::HostTensor::from_bytes(t, {rows, cols}, std::move(out));
}

}  // namespace

int64_t load_deepseek4_gguf_mtp(const std::string& path, const DeepSeekV4HParams& h, DeepSeekV4Weights& w) {
  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  if (file->architecture() != "deepseek4")
    user_error(path, ": a DeepSeek-V4 MTP file is a deepseek4 GGUF (llama.cpp's convert_hf_to_gguf.py --mtp), this one's "
               "architecture is \"", file->architecture(), "\"");
  const DeepSeekV4HParams m = hparams_from_gguf_v4(*file);
  if (m.n_mtp < 1)
    user_error(path, ": no MTP layer (deepseek4.nextn_predict_layers is 0): it is not an MTP file (convert_hf_to_gguf.py --mtp)");
  auto same = [&](const char* what, int64_t mine, int64_t model) {
    if (mine != model)
      user_error(path, ": the MTP file's ", what, " is ", mine, " and the model's ", model, ": it belongs to another model");
  };
  // Every size a weight's shape follows, and what the layer computes with.
  same("decoder layers", m.n_layer, h.n_layer);
  same("embedding width", m.n_embd, h.n_embd);
  same("vocabulary", m.n_vocab, h.n_vocab);
  same("hyper-connection streams", m.hc_mult, h.hc_mult);
  same("heads", m.n_head, h.n_head);
  same("head width", m.head_dim, h.head_dim);
  same("rotated head width", m.rope_dim, h.rope_dim);
  same("query rank", m.q_lora_rank, h.q_lora_rank);
  same("output groups", m.o_groups, h.o_groups);
  same("output rank", m.o_lora_rank, h.o_lora_rank);
  same("window", m.window, h.window);
  same("routed experts", m.n_expert, h.n_expert);
  same("experts per token", m.n_expert_used, h.n_expert_used);
  same("shared experts", m.n_expert_shared, h.n_expert_shared);
  same("expert width", m.n_ff_expert, h.n_ff_expert);
  same("indexer heads", m.index_heads, h.index_heads);
  same("indexer head width", m.index_head, h.index_head);
  if (static_cast<int64_t>(m.compress_ratio.size()) <= h.n_layer)
    user_error(path, ": deepseek4.attention.compress_ratios lists ", m.compress_ratio.size(), " layers, not the MTP layer ",
               h.n_layer, " too (llama.cpp refuses it as well)");
  w.keep_alive.push_back(file);
  const std::string blk = cat("blk.", h.n_layer, "."), layer = cat("layers.", h.n_layer, ".");
  int64_t read = 0;
  std::map<std::string, std::vector<std::string>> unused;  // why -> tensor names
  for (const gguf::TensorInfo& t : file->tensors()) {
    if (t.name == "token_embd.weight" || t.name == "output.weight" || t.name == "output_norm.weight")
      continue;  // the model's, which the draft pass reads from the model
    if (const std::optional<std::string> why = unused_by_deepseek4(*file, t)) {
      unused[*why].push_back(t.name);
      continue;
    }
    const std::optional<ir::DType> dtype = gguf::to_ir_dtype(t.type);
    if (!dtype)
      user_error(path, ": tensor ", t.name, " has type ", gguf::ggml_type_name(t.type), ", which moatless does not compute with (it takes ",
                 gguf::supported_ggml_types(), ")");
    const ir::HostTensor tensor = ir::HostTensor::borrowed(*dtype, t.shape(), t.data);
    std::string name;
    if (t.name == "output_hc_fn.weight" || t.name == "output_hc_base.weight" || t.name == "output_hc_scale.weight") {
      name = layer + "hc_head_" + t.name.substr(10, t.name.size() - 10 - 7);  // the MTP's own head mix
    } else if (t.name.rfind(blk, 0) != 0) {
      user_error(path, ": tensor ", t.name, " is not one of the MTP layer's (", blk, "*) in llama.cpp's deepseek4 names");
    } else if (const std::string suffix = t.name.substr(blk.size()); suffix == "nextn.eh_proj.weight") {
      if (t.shape().size() != 2 || t.shape()[0] != h.n_embd || t.shape()[1] != 2 * h.n_embd)
        user_error(path, ": ", t.name, " is ", shape_text(t.shape()), ", not [", h.n_embd, ", ", 2 * h.n_embd, "]");
      w.tensors[layer + "e_proj.weight"] = column_block(tensor, 0, h.n_embd, path + ": " + t.name);
      w.tensors[layer + "h_proj.weight"] = column_block(tensor, h.n_embd, h.n_embd, path + ": " + t.name);
      ++read;
      continue;
    } else if (suffix == "nextn.enorm.weight" || suffix == "nextn.hnorm.weight") {
      name = layer + suffix.substr(6);
    } else if (suffix == "nextn.shared_head_norm.weight") {
      name = layer + "norm.weight";
    } else if (const std::optional<std::string> deepseek = deepseek4_layer_tensor_name(suffix)) {
      name = layer + *deepseek;
    } else {
      user_error(path, ": tensor ", t.name, " is not one of DeepSeek-V4's MTP layer (llama.cpp deepseek4 names)");
    }
    w.tensors[name] = tensor;
    ++read;
  }
  for (const char* needed : {"e_proj.weight", "enorm.weight", "hnorm.weight", "norm.weight", "hc_head_fn", "attn.wq_a.weight"})
    if (!w.tensors.count(layer + needed)) user_error(path, ": the MTP layer has no ", layer + needed, " (", read, " tensors read)");
  for (const auto& [why, names] : unused)
    w.notes.push_back(cat(path, ": ", names.size(), names.size() == 1 ? " tensor (" : " tensors (", names.front(),
                          names.size() > 1 ? ", ..." : "", ") left unused: ", why));
  return m.compress_ratio[static_cast<size_t>(h.n_layer)];
}

}  // namespace moat::models
