// Checks LLVM IR text without exposing LLVM: for tests and for jit/'s LLVM emitter.
#pragma once

#include <string>
#include <string_view>

namespace moat::backends::cpu {

// "" when `ll_text` parses and passes the LLVM verifier; else the parser's message
// ("<line>:<column>: error: ...") or the verifier's.
std::string verify_llvm_ir(std::string_view ll_text);

}  // namespace moat::backends::cpu
