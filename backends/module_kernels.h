// Shared by the backends' Module implementations: a kernel as its name and the
// driver's handle, the kernels of a loaded module by name, and their lookup.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "backends/device.h"
#include "support/error.h"
#include "support/strings.h"

namespace moat::backends {

// A kernel of a module: its name and the driver's handle to it (a CUfunction, a host
// function pointer), owned by the module.
template <class Handle>
class NamedKernel final : public Kernel {
 public:
  NamedKernel(std::string name, Handle handle) : name_(std::move(name)), handle_(handle) {}
  const std::string& name() const override { return name_; }
  Handle handle() const { return handle_; }

 private:
  std::string name_;
  Handle handle_;
};

template <class Handle>
using KernelMap = std::map<std::string, NamedKernel<Handle>, std::less<>>;

// The kernels `names` of a loaded module: `lookup(name, Handle&)` says whether the
// module has it; for the first it has not, `missing(name)` is called, which must throw
// (after unloading the module).
template <class Handle, class Lookup, class Missing>
KernelMap<Handle> find_kernels(const std::vector<std::string>& names, Lookup&& lookup, Missing&& missing) {
  KernelMap<Handle> kernels;
  for (const std::string& name : names) {
    Handle handle{};
    if (!lookup(name, handle)) missing(name);
    kernels.try_emplace(name, name, handle);
  }
  return kernels;
}

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
