// Loads host object files (Artifact format "o") into the process with ORC LLJIT and
// finds kernel symbols. One JIT per CPU device; each loaded artifact is its own
// library (ORC JITDylib), so two artifacts may define the same kernel name.
#pragma once

#include <memory>
#include <string_view>

#include "backends/cpu/kernel_abi.h"
#include "backends/device.h"

namespace moat::backends::cpu {

// A loaded object file; unloads it when destroyed (kernel pointers die with it).
class JitLibrary {
 public:
  virtual ~JitLibrary() = default;
  // The kernel's entry point; nullptr when the library has no such symbol.
  virtual KernelFn find(std::string_view name) const = 0;
};

class CpuJit {
 public:
  virtual ~CpuJit() = default;
  // Links `binary` (format "o") and resolves every kernel it lists; undefined external
  // symbols resolve against the process (libm, libc). UserError naming the kernels when
  // the object does not link or a listed kernel is missing.
  virtual std::unique_ptr<JitLibrary> load(const Artifact& binary) = 0;
};

// Libraries keep the JIT alive, so they may outlive the returned pointer.
std::shared_ptr<CpuJit> make_cpu_jit();

}  // namespace moat::backends::cpu
