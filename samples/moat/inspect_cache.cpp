#include "samples/moat/inspect_cache.h"

#include <algorithm>
#include <filesystem>

#include "frontend/gguf.h"
#include "frontend/hf_config.h"
#include "frontend/hf_config_v4.h"
#include "frontend/models/deepseek.h"
#include "frontend/models/deepseek4_hparams.h"
#include "support/strings.h"

namespace moat::cli {

namespace {

bool is_v4(const std::string& a) { return a == "deepseek4" || a == "deepseek_v4" || a == "DeepseekV4ForCausalLM"; }
bool is_v2_v3(const std::string& a) {
  return a == "deepseek2" || a == "deepseek32" || a == "deepseek_v2" || a == "deepseek_v3" || a == "deepseek_v32" ||
         a == "DeepseekV2ForCausalLM" || a == "DeepseekV3ForCausalLM" || a == "DeepseekV32ForCausalLM";
}

// "window 128 x 512, compressed 1 per 4 tokens x 512, state 8 x 2048 f32": the parts'
// shapes, each distinct one once (a part's kind is its name before the layer number).
std::string describe_parts(const std::vector<models::CachePart>& layout) {
  std::vector<std::string> seen;
  for (const models::CachePart& part : layout) {
    const std::string kind = part.input.substr(0, part.input.find('.'));
    const std::string rows = part.tokens_per_row == 0   ? std::to_string(part.fixed_rows)
                             : part.tokens_per_row == 1 ? std::string("1 per token")
                                                        : cat("1 per ", part.tokens_per_row, " tokens");
    const std::string text = cat(kind, " ", rows, " x ", part.width, part.always_f32 ? " f32" : "");
    if (std::find(seen.begin(), seen.end(), text) == seen.end()) seen.push_back(text);
  }
  return join(seen, ", ");
}

}  // namespace

CacheSummary summarize_layout(const std::vector<models::CachePart>& layout, ir::DType cache, int64_t model_context) {
  CacheSummary s;
  s.layout = describe_parts(layout);
  s.bytes_per_token = models::cache_bytes_per_token(layout, cache);
  s.fixed_bytes = models::cache_bytes(layout, cache, 0);
  std::vector<int64_t> contexts{4096, 32768, 131072, 1048576};
  if (model_context > 0 && std::find(contexts.begin(), contexts.end(), model_context) == contexts.end())
    contexts.push_back(model_context);
  std::sort(contexts.begin(), contexts.end());
  for (int64_t tokens : contexts) s.at.emplace_back(tokens, models::cache_bytes(layout, cache, tokens));
  return s;
}

std::optional<CacheSummary> summarize_cache(const std::string& path, bool gguf, const std::string& architecture) {
  constexpr ir::DType kCache = ir::DType::f16;
  if (!is_v4(architecture) && !is_v2_v3(architecture)) return std::nullopt;
  CacheSummary s;
  if (is_v4(architecture)) {
    const models::DeepSeekV4HParams h = gguf ? models::hparams_from_gguf_v4(gguf::File::open(path))
                                             : models::hparams_from_hf_v4(hf::load_deepseek_v4_config(path));
    s = summarize_layout(models::deepseek4_cache_layout(h, 0, h.n_layer), kCache, h.n_ctx_train);
    s.family = "deepseek4";
  } else {
    models::DeepSeekHParams h;
    if (gguf) {
      const gguf::File file = gguf::File::open(path);
      h = models::hparams_from_gguf(file, false, "greedy");
    } else {
      h = models::hparams_from_hf(hf::load_deepseek_config(path), path);
    }
    s = summarize_layout(models::deepseek_cache_layout(h, 0, h.n_layer), kCache, h.n_ctx_train);
    s.family = h.sparse() ? "deepseek32" : "deepseek2";
  }
  return s;
}

}  // namespace moat::cli
