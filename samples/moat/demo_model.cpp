#include "samples/moat/demo_model.h"

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "support/error.h"

namespace moat::cli {

std::string demo_model_path() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("MOAT_DEMO_MODEL"); env && *env) {
    if (!fs::is_regular_file(env)) user_error("MOAT_DEMO_MODEL=", env, " is not a file; point it at a GGUF model or unset it");
    return env;
  }
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path().parent_path().parent_path() / "models" / kDemoModelFile);  // <repo>/build/bin/moat
    candidates.push_back(exe.parent_path().parent_path() / "share" / "moatless" / kDemoModelFile);    // <prefix>/bin/moat
  }
  candidates.push_back(fs::path(MOAT_SOURCE_DIR) / "models" / kDemoModelFile);
  std::string looked;
  for (const fs::path& p : candidates) {
    if (fs::is_regular_file(p, ec)) return p.string();
    looked += (looked.empty() ? "" : ", ") + p.string();
  }
  user_error("no -m MODEL given, and the demo model is not where it should be (looked in: ", looked,
             "); give -m MODEL or set MOAT_DEMO_MODEL");
}

}  // namespace moat::cli
