// Kernels of a loaded GPU module, shared by backends/cuda and backends/hip: a kernel is
// its name and the driver's function handle (owned by the module).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "backends/device.h"

namespace moat::backends::gpu {

template <class Function>
class GpuKernel final : public Kernel {
 public:
  GpuKernel(std::string name, Function function) : name_(std::move(name)), function_(function) {}
  const std::string& name() const override { return name_; }
  Function function() const { return function_; }

 private:
  std::string name_;
  Function function_;  // owned by the module
};

template <class Function>
using KernelMap = std::map<std::string, GpuKernel<Function>, std::less<>>;

// The kernels `names` of a module: `lookup(name, Function&)` says whether the module
// has it; for the first it has not, `missing(name)` is called, which must throw
// (after unloading the module).
template <class Function, class Lookup, class Missing>
KernelMap<Function> find_kernels(const std::vector<std::string>& names, Lookup&& lookup, Missing&& missing) {
  KernelMap<Function> kernels;
  for (const std::string& name : names) {
    Function function{};
    if (!lookup(name, function)) missing(name);
    kernels.try_emplace(name, name, function);
  }
  return kernels;
}

}  // namespace moat::backends::gpu
