// Shared by the backends' Module implementations: the lookup of a kernel by name in a
// module's name -> kernel map.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "backends/device.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::backends {

// The kernel `name`; UserError listing the module's kernels when there is none.
template <class KernelT>
Kernel& find_kernel(std::map<std::string, KernelT, std::less<>>& kernels, std::string_view name) {
  auto it = kernels.find(name);
  if (it == kernels.end()) {
    std::vector<std::string> names;
    for (const auto& entry : kernels) names.push_back(entry.first);
    user_error("no kernel '", name, "' in this module (it has: ", names.empty() ? "none" : join(names, ", "), ")");
  }
  return it->second;
}

}  // namespace moat::backends
