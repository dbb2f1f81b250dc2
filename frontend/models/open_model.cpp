// open_model (frontend/model.h): the one place that maps a file to its family.
#include "frontend/model.h"

#include "frontend/models/deepseek4_model.h"
#include "frontend/models/deepseek_weights.h"
#include "support/error.h"

namespace moat::models {

std::unique_ptr<Model> open_model(const std::string& path, const LoadOptions& options) {
  if (is_deepseek4(path)) return std::make_unique<DeepSeekV4Model>(load_deepseek4(path, options));
  // DeepSeek-V2 / V2-Lite / V3 / R1 / V3.2: load_deepseek names the file and what it
  // lacks when it is of another architecture.
  if (!options.draft_file.empty())
    user_error(options.draft_file, ": a separate draft file goes with a DeepSeek-V4 GGUF (llama.cpp's mtp-*.gguf); ", path,
               " keeps its MTP layers (blk.N.nextn.*) itself");
  return std::make_unique<DeepSeekModel>(load_deepseek(path, options));
}

}  // namespace moat::models
