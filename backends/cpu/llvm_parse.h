// Parsing + verifying LLVM IR text (internal to backends/cpu; includes LLVM headers,
// so only .cpp files of this folder may include it).
#pragma once

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <memory>
#include <string>
#include <string_view>

namespace moat::backends::cpu {

// The module, or nullptr with `error` set to the parser's or the verifier's message.
std::unique_ptr<llvm::Module> parse_llvm_ir(llvm::LLVMContext& context, std::string_view ll_text,
                                            std::string& error);

}  // namespace moat::backends::cpu
