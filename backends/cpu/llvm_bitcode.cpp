#include "backends/cpu/llvm_bitcode.h"

#include <llvm/ADT/SmallVector.h>
#include <llvm/Bitcode/BitcodeWriter.h>
#include <llvm/Support/raw_ostream.h>

#include "backends/cpu/llvm_parse.h"
#include "support/error.h"

namespace moat::backends::cpu {

std::vector<uint8_t> assemble_llvm_bitcode(std::string_view ll_text) {
  llvm::LLVMContext context;
  std::string error;
  std::unique_ptr<llvm::Module> module = parse_llvm_ir(context, ll_text, error);
  if (!module) user_error("LLVM IR does not assemble to bitcode: ", error);
  llvm::SmallVector<char, 0> bitcode;
  llvm::raw_svector_ostream out(bitcode);
  llvm::WriteBitcodeToFile(*module, out);
  return {bitcode.begin(), bitcode.end()};
}

}  // namespace moat::backends::cpu
