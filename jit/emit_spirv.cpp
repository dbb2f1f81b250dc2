#include "jit/emit_spirv.h"

#include <LLVMSPIRVLib.h>

#include <sstream>

#include "jit/emit_llvm_module.h"
#include "support/error.h"

namespace moat::jit {

std::vector<uint8_t> emit_spirv(const Kernel& kernel) {
  llvm::LLVMContext ctx;
  std::unique_ptr<llvm::Module> module = build_llvm_module(kernel, LlvmFlavour::spir, ctx);
  SPIRV::TranslatorOpts options(SPIRV::VersionNumber::SPIRV_1_0);
  std::ostringstream out;
  std::string error;
  MOAT_INTERNAL_CHECK(llvm::writeSpirv(module.get(), options, out, error), "kernel ", kernel.name,
                      ": the LLVM-SPIRV translator rejected the module: ", error);
  const std::string bytes = out.str();
  return {bytes.begin(), bytes.end()};
}

}  // namespace moat::jit
