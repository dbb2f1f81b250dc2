#include "backends/cpu/llvm_host.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/Support/Host.h>
#include <llvm/Support/TargetSelect.h>

#include <dlfcn.h>

#include <algorithm>
#include <vector>

#include "support/strings.h"

namespace moat::backends::cpu {

namespace {

// Loads glibc's vector math library for the whole process (RTLD_GLOBAL: the JIT's
// process symbol search finds its functions). Its entry points exist for x86-64 only.
std::string load_vector_math(const std::string& triple) {
  if (triple.rfind("x86_64", 0) != 0) return "";
  return dlopen("libmvec.so.1", RTLD_NOW | RTLD_GLOBAL) ? "libmvec" : "";
}

HostTarget detect() {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::InitializeNativeTargetAsmParser();
  HostTarget host;
  host.triple = llvm::sys::getProcessTriple();
  host.cpu = llvm::sys::getHostCPUName().str();
  host.llvm_version = LLVM_VERSION_STRING;
  llvm::StringMap<bool> features;
  std::vector<std::string> flags;
  if (llvm::sys::getHostCPUFeatures(features))
    for (const auto& entry : features) flags.push_back((entry.getValue() ? "+" : "-") + entry.getKey().str());
  std::sort(flags.begin(), flags.end(), [](const std::string& a, const std::string& b) {
    return a.substr(1) < b.substr(1);
  });
  host.features = join(flags, ",");
  host.vector_math = load_vector_math(host.triple);
  return host;
}

}  // namespace

const HostTarget& host_target() {
  static const HostTarget host = detect();
  return host;
}

}  // namespace moat::backends::cpu
