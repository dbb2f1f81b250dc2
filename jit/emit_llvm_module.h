// Internal to jit/: the LLVM module of a kernel, before it is printed (.ll), written as
// bitcode (SPIR 1.2) or translated to SPIR-V.
#pragma once

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <memory>

#include "jit/emit_llvm.h"
#include "jit/kir.h"

namespace moat::jit {

enum class LlvmFlavour : uint8_t { cpu, spir };

// A verified module (InternalError naming the kernel otherwise) in `ctx`.
// `cpu`: the host's features (the cpu flavour only).
std::unique_ptr<llvm::Module> build_llvm_module(const Kernel& kernel, LlvmFlavour flavour, llvm::LLVMContext& ctx,
                                                const CpuFeatures& cpu = {});

}  // namespace moat::jit
