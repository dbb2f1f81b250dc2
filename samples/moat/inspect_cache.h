// What a model's cache takes, from the model interface's layout (frontend/model.h), for
// `moat inspect`: bytes per token of context, bytes that do not grow with it, and the
// totals at a few contexts (one sequence, f16 rows: moat run's default).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "frontend/model.h"

namespace moat::cli {

struct CacheSummary {
  std::string family;      // "deepseek2" (V2/V3), "deepseek32" (V3.2), "deepseek4" (V4)
  std::string layout;      // each distinct part shape once: "window 128 x 512, ..."
  double bytes_per_token = 0;
  uint64_t fixed_bytes = 0;  // rows that do not grow with the context (windows, block state)
  std::vector<std::pair<int64_t, uint64_t>> at;  // (context tokens, cache bytes)
};

// The summary of the DeepSeek model at `path` (GGUF file or Hugging Face folder or
// config.json) for `architecture` (as inspect read it); nullopt for other families.
// UserError when its hyperparameters cannot be read.
std::optional<CacheSummary> summarize_cache(const std::string& path, bool gguf, const std::string& architecture);
// Summary for a layout: per token, fixed and at each of `contexts` (and at
// `model_context` tokens when it is not among them).
CacheSummary summarize_layout(const std::vector<models::CachePart>& layout, ir::DType cache, int64_t model_context);

}  // namespace moat::cli
