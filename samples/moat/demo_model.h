// The model `moat run` uses without -m: the trained demo model shipped in the
// repository (models/kjv-tiny.gguf, see docs/demo_model.md).
#pragma once

#include <string>

namespace moat::cli {

inline constexpr const char* kDemoModelFile = "kjv-tiny.gguf";

// The demo model's path: $MOAT_DEMO_MODEL, else models/ of the source tree this binary
// was built from (found from the executable's location, then from the build's source
// directory). UserError listing where it looked when there is none.
std::string demo_model_path();

}  // namespace moat::cli
