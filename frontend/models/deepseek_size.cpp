// What a DeepSeek model's weights weigh, and how many of their bytes one decoded token
// reads: every non-expert weight (attention, norms, routers, shared experts, the output
// matrix) in full; of the token-embedding table one row (all of it when it doubles as
// the output matrix); of each MoE layer's routed experts (`*_exps` tensors, stacked
// [n_expert, ...]) the n_expert_used of n_expert that the router picks. A loaded MTP
// layer (the draft module) counts in the size, not in a decoded token's bytes.
#include "frontend/models/deepseek_weights.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "support/strings.h"

namespace moat::models {

namespace {

// "671.0B", "15.7B", "176.1K": llama-bench's parameter counts.
std::string params_label(uint64_t params) {
  const char* units[] = {"", "K", "M", "B", "T"};
  double value = static_cast<double>(params);
  int unit = 0;
  while (value >= 1000 && unit < 4) {
    value /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit ? "%.1f%s" : "%.0f%s", value, units[unit]);
  return text;
}

std::string upper(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

}  // namespace

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
  auto dominant = std::max_element(bytes_by_dtype.begin(), bytes_by_dtype.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
  size.label = cat(h.sparse() ? "deepseek32 " : "deepseek2 ", params_label(size.params));
  if (dominant != bytes_by_dtype.end()) size.label = cat(size.label, " ", upper(ir::dtype_name(dominant->first)));
  return size;
}

}  // namespace moat::models
