// What a DeepSeek model's weights weigh, and how many of their bytes one decoded token
// reads: every non-expert weight (attention, norms, routers, shared experts, the output
// matrix) in full; of the token-embedding table one row (all of it when it doubles as
// the output matrix); of each MoE layer's routed experts (`*_exps` tensors, stacked
// [n_expert, ...]) the n_expert_used of n_expert that the router picks. A loaded MTP
// layer (the draft module) counts in the size, not in a decoded token's bytes.
#include "frontend/models/deepseek_weights.h"

#include <map>

#include "support/strings.h"

namespace moat::models {

ModelSize DeepSeekModel::size() const {
  const DeepSeekHParams& h = hparams;
  const bool tied = !has("output.weight");  // the embedding table is also the output matrix
  ModelSize size;
  std::map<ir::DType, uint64_t> bytes_by_dtype;
  const std::string mtp_prefix = cat("blk.", h.n_layer, ".");
  for (const auto& [name, tensor] : weights) {
    const uint64_t bytes = tensor.bytes().size();
    size.bytes += bytes;
    size.params += static_cast<uint64_t>(tensor.numel());
    bytes_by_dtype[tensor.dtype()] += bytes;
    if (h.n_mtp > 0 && name.rfind(mtp_prefix, 0) == 0) continue;  // the draft module: not read by a model pass
    if (name.find("_exps") != std::string::npos && h.n_expert > 0)
      size.decode_bytes_per_token += bytes / static_cast<uint64_t>(h.n_expert) * static_cast<uint64_t>(h.n_expert_used);
    else if (name == "token_embd.weight" && !tied && h.n_vocab > 0)
      size.decode_bytes_per_token += bytes / static_cast<uint64_t>(h.n_vocab);
    else
      size.decode_bytes_per_token += bytes;
  }
  // The dtype holding most bytes names the file's type, as llama-bench's "Q4_K - Medium".
  size.label = size_label(h.sparse() ? "deepseek32" : "deepseek2", bytes_by_dtype, size.params);
  return size;
}

}  // namespace moat::models
