#include "backends/cpu/llvm_verify.h"

#include <llvm/IR/Verifier.h>
#include <llvm/IRReader/IRReader.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/raw_ostream.h>

#include "backends/cpu/llvm_parse.h"

namespace moat::backends::cpu {

std::unique_ptr<llvm::Module> parse_llvm_ir(llvm::LLVMContext& context, std::string_view ll_text,
                                            std::string& error) {
  error.clear();
  llvm::SMDiagnostic diagnostic;
  // The parser reads up to a NUL terminator, which Artifact bytes do not have: copy.
  std::unique_ptr<llvm::MemoryBuffer> buffer =
      llvm::MemoryBuffer::getMemBufferCopy(llvm::StringRef(ll_text.data(), ll_text.size()), "kernel.ll");
  std::unique_ptr<llvm::Module> module = llvm::parseIR(buffer->getMemBufferRef(), diagnostic, context);
  if (!module) {
    llvm::raw_string_ostream out(error);
    out << diagnostic.getLineNo() << ":" << (diagnostic.getColumnNo() + 1) << ": error: " << diagnostic.getMessage();
    if (!diagnostic.getLineContents().empty()) out << "\n  " << diagnostic.getLineContents();
    out.flush();
    return nullptr;
  }
  llvm::raw_string_ostream out(error);
  if (llvm::verifyModule(*module, &out)) {
    out.flush();
    while (!error.empty() && error.back() == '\n') error.pop_back();
    if (error.empty()) error = "the LLVM verifier rejects the module";
    return nullptr;
  }
  return module;
}

std::string verify_llvm_ir(std::string_view ll_text) {
  llvm::LLVMContext context;
  std::string error;
  parse_llvm_ir(context, ll_text, error);
  return error;
}

}  // namespace moat::backends::cpu
