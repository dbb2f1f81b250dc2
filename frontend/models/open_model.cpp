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
  auto model = std::make_unique<DeepSeekModel>(load_deepseek(path, options));
  if (!options.draft_file.empty())
    user_error(options.draft_file, ": a separate draft file is read only beside a DeepSeek-V4 GGUF (llama.cpp's mtp-*.gguf); ",
               path, " is not one (its MTP layers, if any, are in the file itself)");
  return model;
}

}  // namespace moat::models
